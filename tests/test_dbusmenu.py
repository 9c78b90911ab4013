"""The dbusmenu model (stable ids, layout, diff) and what sni.py derives from it for the wire, as tables."""
from __future__ import annotations

import pytest

from tray_alerts.dbusmenu import (EMPTY_MENU, ROOT, Changes, Ids, Node, assign_ids, build_menu, diff, escape_label,
                                  escape_markup, item_props, keyed, subtree)
from tray_alerts.traymenu import Item, separator


def noop() -> None:
    """An action that does nothing."""


def alert(event: str, *, label: str | None = None, clear: bool = True, icon: str | None = "error",
          extra: tuple[Item, ...] = ()) -> Item:
    """An alert row like traymenu.alert_row makes: a submenu with a detail line and Clear."""
    key = f"alert:{event}"
    children = (Item("Level: error", enabled=False, key=key + "/level"), *extra,
                *((Item("Clear", noop, key=key + "/clear"),) if clear else ()))
    return Item(label or f"ERROR · {event}", key=key, submenu=children, icon=icon)


def base(*alerts: Item, header: str = "1 active alert") -> list[Item]:
    return [Item(header, enabled=False, key="header"), separator("sep:top"), *alerts,
            separator("sep:app"), Item("Quit", noop, key="quit")]


# -- labels and keys -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, label", [
    ("Quit", "Quit"),
    ("disk_root", "disk__root"),          # `_` is dbusmenu's mnemonic marker: a literal one is doubled
    ("a__b", "a____b"),
    ("", ""),
    ("ERROR · api: 5xx & <slow>", "ERROR · api: 5xx & <slow>"),  # labels are not markup
])
def test_escape_label(text, label):
    assert escape_label(text) == label


@pytest.mark.parametrize("text, escaped", [
    ("CRITICAL · disk: 97%", "CRITICAL · disk: 97%"),
    ("a & b", "a &amp; b"),
    ("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;"),
])
def test_escape_markup(text, escaped):
    assert escape_markup(text) == escaped


@pytest.mark.parametrize("items, expected", [
    ([Item("A", key="a"), Item("B", key="b")], [("a", ""), ("b", "")]),
    ([Item("A", key="a", submenu=(Item("x", key="a/x"),))], [("a", ""), ("a/x", "a")]),
    # no key: its place under its parent
    ([Item("A"), Item("B", key="b", submenu=(Item("x"), Item("y")))], [("/#0", ""), ("b", ""), ("b/#0", "b"),
                                                                       ("b/#1", "b")]),
    # a key used twice: the second one is told apart
    ([Item("A", key="a"), Item("A again", key="a")], [("a", ""), ("a#2", "")]),
    # a key that is also a place-made key
    ([Item("A"), Item("B", key="/#0")], [("/#0", ""), ("/#0#2", "")]),
])
def test_keyed_rows_have_unique_keys(items, expected):
    assert [(key, parent) for key, parent, _ in keyed(items)] == expected


# -- ids -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("first, then, ids_then", [
    (["a", "b"], ["a", "b"], {"a": 1, "b": 2}),                    # same keys, same ids
    (["a", "b"], ["b", "a"], {"a": 1, "b": 2}),                    # reordered, same ids
    (["a", "b"], ["a", "c", "b"], {"a": 1, "b": 2, "c": 3}),       # a new key gets the next id
    (["a", "b"], ["b"], {"a": 1, "b": 2}),                         # a gone key keeps its id for its return
])
def test_assign_ids_keeps_one_id_per_key(first, then, ids_then):
    ids = assign_ids(then, assign_ids(first, Ids()))
    assert dict(ids.by_key) == ids_then
    assert ROOT not in ids.by_key.values()


def test_assign_ids_past_the_limit_forgets_absent_keys_but_never_reuses_their_ids():
    ids = assign_ids(["a", "b", "c"], Ids(), limit=3)
    ids = assign_ids(["c", "d"], ids, limit=3)
    assert dict(ids.by_key) == {"c": 3, "d": 4}
    ids = assign_ids(["a"], ids, limit=3)
    assert ids.by_key["a"] == 5 and ids.next_id == 6


# -- rows ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("item, icon, props", [
    (Item("Quit", noop, key="quit"), None, {"label": "Quit", "enabled": True, "visible": True}),
    (Item("1 active alert", enabled=False, key="h"), None, {"label": "1 active alert", "enabled": False,
                                                            "visible": True}),
    (separator("sep"), None, {"type": "separator"}),
    (Item("Snooze", submenu=(Item("1 hour", noop),), key="s"), None,
     {"label": "Snooze", "enabled": True, "visible": True, "children-display": "submenu"}),
    (Item("ERROR · x_y", key="a", icon="error"), b"\x89PNG", {"label": "ERROR · x__y", "enabled": True,
                                                               "visible": True, "icon-data": b"\x89PNG"}),
    (Item("ERROR · x", key="a", icon="error"), b"", {"label": "ERROR · x", "enabled": True, "visible": True}),
])
def test_item_props(item, icon, props):
    assert item_props(item, icon) == props


def test_build_menu_lays_out_rows_under_root_and_submenus():
    menu = build_menu(base(alert("disk")))
    ids = menu.ids.by_key
    assert menu.nodes[ROOT] == Node({"children-display": "submenu"},
                                    (ids["header"], ids["sep:top"], ids["alert:disk"], ids["sep:app"], ids["quit"]))
    assert menu.nodes[ids["alert:disk"]].children == (ids["alert:disk/level"], ids["alert:disk/clear"])
    assert menu.nodes[ids["alert:disk/clear"]].props["label"] == "Clear"
    assert set(menu.nodes) == {ROOT, *ids.values()}


def test_build_menu_actions_only_for_rows_that_can_be_clicked():
    def clear() -> None:
        """Clear."""

    items = [Item("header", enabled=False, key="h"), Item("off", noop, enabled=False, key="off"),
             Item("Clear", clear, key="clear"), separator("sep")]
    menu = build_menu(items)
    assert menu.actions == {menu.ids.by_key["clear"]: clear}


def test_build_menu_uses_icons_by_name():
    menu = build_menu([alert("disk", icon="error"), alert("api", icon="acknowledged")], icons={"error": b"E"})
    assert menu.nodes[menu.ids.by_key["alert:disk"]].props["icon-data"] == b"E"
    assert "icon-data" not in menu.nodes[menu.ids.by_key["alert:api"]].props


def test_build_menu_keeps_ids_when_rebuilt():
    first = build_menu(base(alert("disk")))
    second = build_menu(base(alert("api"), alert("disk", label="ERROR · disk — acknowledged 14:32")), first.ids)
    for key in ("header", "alert:disk", "alert:disk/clear", "quit"):
        assert second.ids.by_key[key] == first.ids.by_key[key]
    assert second.ids.by_key["alert:api"] not in first.ids.by_key.values()


# -- what changed ------------------------------------------------------------------------------------------------

def changes(before: list[Item], after: list[Item]) -> tuple[Changes, Ids]:
    old = build_menu(before)
    new = build_menu(after, old.ids)
    return diff(old.nodes, new.nodes), new.ids


def test_diff_of_the_same_menu_is_empty():
    found, _ = changes(base(alert("disk")), base(alert("disk")))
    assert found == Changes() and not (found.structure or found.properties)


@pytest.mark.parametrize("after, updated", [
    # a changed label: only that row's label
    (base(alert("disk", label="ERROR · disk (muted)")), {"alert:disk": {"label": "ERROR · disk (muted)"}}),
    # the header counts up: one row
    (base(alert("disk"), header="2 active alerts"), {"header": {"label": "2 active alerts"}}),
    # a row turns grey
    ([Item("1 active alert", enabled=False, key="header"), separator("sep:top"), alert("disk"),
      separator("sep:app"), Item("Quit", noop, enabled=False, key="quit")], {"quit": {"enabled": False}}),
    # a new icon
    (base(alert("disk", icon="acknowledged")), {}),  # no icons given to build_menu: nothing to show either way
])
def test_diff_of_changed_rows_is_properties_only(after, updated):
    found, ids = changes(base(alert("disk")), after)
    assert not found.structure
    assert {node: dict(props) for node, props in found.updated} == {ids.by_key[key]: props
                                                                     for key, props in updated.items()}
    assert found.removed == ()


def test_diff_reports_a_property_that_went_away():
    old = build_menu(base(alert("disk")), icons={"error": b"E"})
    new = build_menu(base(alert("disk", icon="acknowledged")), old.ids, icons={"error": b"E"})
    found = diff(old.nodes, new.nodes)
    assert found.removed == ((new.ids.by_key["alert:disk"], ("icon-data",)),)
    assert found.updated == () and not found.structure


def test_diff_treats_a_bool_and_an_int_as_different():
    found = diff({1: Node({"enabled": True})}, {1: Node({"enabled": 1})})
    assert found.updated == ((1, {"enabled": 1}),)


@pytest.mark.parametrize("before, after, parents", [
    # an alert fires: a row under the root
    (base(), base(alert("disk")), ["<root>"]),
    # it clears: the row goes
    (base(alert("disk")), base(), ["<root>"]),
    # Mute becomes "Muted until" + Unmute: a row added in the alert's submenu only
    (base(alert("disk")), base(alert("disk", extra=(Item("Unmute", noop, key="alert:disk/mute/undo"),))),
     ["alert:disk"]),
    # two alerts swap places (the worst first): the root's order changed
    (base(alert("disk"), alert("api")), base(alert("api"), alert("disk")), ["<root>"]),
    # a row in the root and one in a submenu: both parents
    (base(alert("disk")), base(alert("disk", clear=False), alert("api")), ["<root>", "alert:disk"]),
])
def test_diff_of_added_removed_or_moved_rows_names_their_parents(before, after, parents):
    found, ids = changes(before, after)
    assert found.structure
    named = {ROOT: "<root>", **{value: key for key, value in ids.by_key.items()}}
    assert sorted(named[parent] for parent in found.parents) == sorted(parents)


def test_diff_of_a_label_change_alongside_a_new_row_reports_both():
    found, ids = changes(base(alert("disk")), base(alert("disk", label="ERROR · disk (muted)"), alert("api"),
                                                    header="2 active alerts"))
    assert found.parents == (ROOT,)
    assert dict(found.updated) == {ids.by_key["header"]: {"label": "2 active alerts"},
                                   ids.by_key["alert:disk"]: {"label": "ERROR · disk (muted)"}}


def test_diff_from_the_empty_menu():
    new = build_menu(base())
    found = diff(EMPTY_MENU.nodes, new.nodes)
    assert found.parents == (ROOT,) and found.updated == ()


# -- GetLayout ---------------------------------------------------------------------------------------------------

def test_subtree_to_each_depth():
    menu = build_menu(base(alert("disk")))
    ids = menu.ids.by_key
    disk = ids["alert:disk"]
    whole = subtree(menu.nodes, ROOT, -1)
    assert [child[0] for child in whole[2]] == list(menu.nodes[ROOT].children)
    [alert_row] = [child for child in whole[2] if child[0] == disk]
    assert [child[0] for child in alert_row[2]] == [ids["alert:disk/level"], ids["alert:disk/clear"]]
    assert subtree(menu.nodes, ROOT, 0) == (ROOT, {"children-display": "submenu"}, [])
    one = subtree(menu.nodes, ROOT, 1)
    assert all(child[2] == [] for child in one[2])
    assert subtree(menu.nodes, disk, 1)[0] == disk


@pytest.mark.parametrize("names, expected", [
    ((), {"label": "Quit", "enabled": True, "visible": True}),       # none asked: all
    (("label",), {"label": "Quit"}),
    (("label", "icon-data"), {"label": "Quit"}),                     # asked but not set: left out
    (("type",), {}),
])
def test_subtree_only_the_properties_asked_for(names, expected):
    menu = build_menu(base())
    assert subtree(menu.nodes, menu.ids.by_key["quit"], 0, names)[1] == expected


def test_subtree_of_an_unknown_row_is_a_key_error():
    with pytest.raises(KeyError):
        subtree(build_menu(base()).nodes, 999, -1)


# -- what sni.py puts on the wire (pure helpers) -----------------------------------------------------------------

def test_argb32_is_network_byte_order():
    from PIL import Image

    from tray_alerts.sni import argb32

    image = Image.new("RGBA", (2, 1))
    image.putpixel((0, 0), (0x11, 0x22, 0x33, 0x44))
    image.putpixel((1, 0), (0xE0, 0x3E, 0x2D, 0xFF))
    assert argb32(image) == bytes([0x44, 0x11, 0x22, 0x33, 0xFF, 0xE0, 0x3E, 0x2D])


@pytest.mark.parametrize("side, sizes", [
    (64, [16, 22, 24, 32, 48, 64]),
    (128, [16, 22, 24, 32, 48, 64, 128]),
    (24, [16, 22, 24]),
    (10, [10]),
    (1000, [16, 22, 24, 32, 48, 64, 256]),
])
def test_pixmap_sizes(side, sizes):
    from tray_alerts.sni import pixmap_sizes

    assert pixmap_sizes(side) == sizes


def test_pixmaps_are_square_argb_of_each_size():
    from PIL import Image

    from tray_alerts.sni import pixmaps

    found = pixmaps(Image.new("RGBA", (64, 64), (0xE0, 0x3E, 0x2D, 0xFF)))
    assert [(width, height) for width, height, _ in found] == [(size, size) for size in (16, 22, 24, 32, 48, 64)]
    for width, height, data in found:
        assert len(data) == 4 * width * height
        assert data[:4] == bytes([0xFF, 0xE0, 0x3E, 0x2D])


def test_tooltip_value_escapes_the_body_only():
    from tray_alerts.sni import tooltip_value

    assert tooltip_value("tray-alerts — 2 active", ["ERROR · api: 5xx & <slow>", "WARNING · disk: 91%"]) == (
        "", [], "tray-alerts — 2 active", "ERROR · api: 5xx &amp; &lt;slow&gt;\nWARNING · disk: 91%")


def test_signals_for_only_what_changed():
    from tray_alerts.sni import Shown, signals_for

    menu = build_menu(base(alert("disk")))
    icon = ((64, 64), b"red")
    old = Shown(icon, (), ("", [], "t", "b"), "Active", menu, 3)
    assert signals_for(old, old, Changes()) == []
    names = [name for name, _ in signals_for(old, Shown(((64, 64), b"green"), (), old.tooltip, "Active", menu, 3),
                                             Changes())]
    assert names == ["NewIcon", "NewAttentionIcon"]
    assert signals_for(old, Shown(icon, (), ("", [], "t", "b2"), "Active", menu, 3), Changes()) == [
        ("NewToolTip", ())]
    assert signals_for(old, Shown(icon, (), old.tooltip, "NeedsAttention", menu, 3), Changes()) == [
        ("NewStatus", ("NeedsAttention",))]
    [(name, (updated, removed))] = signals_for(old, old, Changes(updated=((5, {"label": "x"}),),
                                                                 removed=((6, ("icon-data",)),)))
    assert name == "ItemsPropertiesUpdated"
    assert updated[0][0] == 5 and updated[0][1]["label"].signature == "s" and updated[0][1]["label"].value == "x"
    assert removed == [[6, ["icon-data"]]]
    assert signals_for(old, Shown(icon, (), old.tooltip, "Active", menu, 4), Changes(parents=(0, 7))) == [
        ("LayoutUpdated", (4, 0)), ("LayoutUpdated", (4, 7))]


def test_an_icon_drawn_per_size_reaches_the_host_as_drawn_not_shrunk():
    from tray_alerts import icons
    from tray_alerts.model import Level
    from tray_alerts.sni import argb32, fingerprint, pixmaps
    from tray_alerts.tray_view import PANEL_SIZES, IconLook, icon_images

    drawn = icon_images(IconLook(Level.WARNING, 42))
    sent = pixmaps(drawn)
    assert [(width, height) for width, height, _ in sent] == [(size, size) for size in PANEL_SIZES]
    small = icons.draw_icon(Level.WARNING, 42, 16)  # "9+" in the pixel font
    assert sent[0][2] == argb32(small.convert("RGBA"))
    assert sent[0][2] != pixmaps(icons.draw_icon(Level.WARNING, 42, 64))[0][2]  # what shrinking 64 px gave
    assert fingerprint(drawn) == fingerprint(icon_images(IconLook(Level.WARNING, 42)))
    assert fingerprint(drawn) != fingerprint(icon_images(IconLook(Level.WARNING, 43)))

"""The com.canonical.dbusmenu model as pure values: rows with stable ids, their layout, and what changed between two.

Hosts keep a menu open across refreshes only when a row keeps its id and a change is announced as narrowly as
possible, so: every `traymenu.Item.key` gets one id for as long as it is remembered (ids are never reused),
a changed row is an `ItemsPropertiesUpdated` and only an added, removed or moved row is a `LayoutUpdated`.
Nothing here does I/O; `sni.py` puts these values on the bus.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence, Union

if TYPE_CHECKING:
    from .traymenu import Item

ROOT = 0
MAX_REMEMBERED_KEYS = 20_000  # past this, keys not in the current menu are forgotten (their ids still never reused)

PropValue = Union[str, bool, int, bytes]
Props = Mapping[str, PropValue]
Action = Callable[[], None]


@dataclass(frozen=True)
class Node:
    """One dbusmenu row: its properties (defaults left out, as the spec allows) and its children's ids."""

    props: Props
    children: tuple[int, ...] = ()


@dataclass(frozen=True)
class Ids:
    """Which id each key has, and the next id to hand out (ids only ever grow, so none is reused)."""

    by_key: Mapping[str, int] = field(default_factory=dict)
    next_id: int = ROOT + 1


@dataclass(frozen=True)
class Menu:
    """A whole menu as dbusmenu sees it: rows by id (ROOT included), what clicking each does, and the ids used."""

    nodes: Mapping[int, Node]
    actions: Mapping[int, Action]
    ids: Ids


@dataclass(frozen=True)
class Changes:
    """What changed from one menu to the next: structure under `parents`, and properties of rows in both."""

    parents: tuple[int, ...] = ()
    updated: tuple[tuple[int, Props], ...] = ()
    removed: tuple[tuple[int, tuple[str, ...]], ...] = ()

    @property
    def structure(self) -> bool:
        """Rows were added, removed or moved: a LayoutUpdated (and a new revision)."""
        return bool(self.parents)

    @property
    def properties(self) -> bool:
        """Rows that stayed changed: an ItemsPropertiesUpdated."""
        return bool(self.updated or self.removed)


EMPTY_MENU = Menu({ROOT: Node({"children-display": "submenu"})}, {}, Ids())


def escape_label(text: str) -> str:
    """A label shown as written: `_` marks a mnemonic in dbusmenu, so a literal one is doubled."""
    return text.replace("_", "__")


def keyed(items: Sequence[Item]) -> list[tuple[str, str, Item]]:
    """Every row depth first as (key, parent's key, item); the root's key is "".

    A row's key is its own, else its place (`alert:x/#2`); a key seen before gets `#2`, `#3`… so all differ."""
    seen: set[str] = {""}
    rows: list[tuple[str, str, Item]] = []

    def walk(level: Sequence[Item], parent: str) -> None:
        for index, item in enumerate(level):
            key = _unique(item.key or f"{parent}/#{index}", seen)
            rows.append((key, parent, item))
            walk(item.submenu, key)

    walk(items, "")
    return rows


def _unique(key: str, seen: set[str]) -> str:
    candidate, count = key, 1
    while candidate in seen:
        count += 1
        candidate = f"{key}#{count}"
    seen.add(candidate)
    return candidate


def assign_ids(keys: Sequence[str], ids: Ids, limit: int = MAX_REMEMBERED_KEYS) -> Ids:
    """`ids` with a fresh id for every key it has not seen; past `limit` keys, those not in `keys` are dropped."""
    by_key = dict(ids.by_key)
    next_id = ids.next_id
    for key in keys:
        if key not in by_key:
            by_key[key] = next_id
            next_id += 1
    if len(by_key) > limit:
        wanted = set(keys)
        by_key = {key: value for key, value in by_key.items() if key in wanted}
    return Ids(by_key, next_id)


def item_props(item: Item, icon: bytes | None = None) -> dict[str, PropValue]:
    """The dbusmenu properties of one row (label escaped; a separator is only a type)."""
    if item.is_separator:
        return {"type": "separator"}
    props: dict[str, PropValue] = {"label": escape_label(item.text), "enabled": item.enabled, "visible": True}
    if item.submenu:
        props["children-display"] = "submenu"
    if icon:
        props["icon-data"] = icon
    return props


def build_menu(items: Sequence[Item], ids: Ids = Ids(), icons: Mapping[str, bytes] | None = None) -> Menu:
    """The menu for `items`: ids kept per key (new keys get new ids), icons from `icons` by Item.icon name."""
    rows = keyed(items)
    ids = assign_ids([key for key, _, _ in rows], ids)
    icons = icons or {}
    children: dict[int, list[int]] = {ROOT: []}
    for key, parent, _ in rows:
        children.setdefault(ids.by_key[parent] if parent else ROOT, []).append(ids.by_key[key])
    nodes: dict[int, Node] = {ROOT: Node({"children-display": "submenu"}, tuple(children[ROOT]))}
    actions: dict[int, Action] = {}
    for key, _, item in rows:
        node_id = ids.by_key[key]
        icon = icons.get(item.icon) if item.icon else None
        nodes[node_id] = Node(item_props(item, icon), tuple(children.get(node_id, ())))
        if item.action is not None and item.enabled and not item.is_separator:
            actions[node_id] = item.action
    return Menu(nodes, actions, ids)


def diff(old: Mapping[int, Node], new: Mapping[int, Node]) -> Changes:
    """What a host showing `old` must be told to show `new`."""
    parents = tuple(sorted(node_id for node_id, node in new.items()
                           if node_id in old and old[node_id].children != node.children))
    updated: list[tuple[int, Props]] = []
    removed: list[tuple[int, tuple[str, ...]]] = []
    for node_id in sorted(set(old) & set(new)):
        before, after = old[node_id].props, new[node_id].props
        changed = {name: value for name, value in after.items() if not _same(before.get(name), value)}
        gone = tuple(sorted(name for name in before if name not in after))
        if changed:
            updated.append((node_id, changed))
        if gone:
            removed.append((node_id, gone))
    return Changes(parents, tuple(updated), tuple(removed))


def _same(first: PropValue | None, second: PropValue) -> bool:
    """Equal and of one type (True == 1 in Python, not on the bus)."""
    return type(first) is type(second) and first == second


def select(props: Props, names: Sequence[str]) -> dict[str, PropValue]:
    """Only the properties asked for (all of them when `names` is empty, as the spec says)."""
    if not names:
        return dict(props)
    return {name: props[name] for name in names if name in props}


Tree = tuple[int, dict[str, PropValue], list["Tree"]]


def subtree(nodes: Mapping[int, Node], parent: int, depth: int, names: Sequence[str] = ()) -> Tree:
    """GetLayout's answer as plain values: (id, properties, children) to `depth` levels (-1: all; 0: none).

    KeyError when `parent` is not a row."""
    node = nodes[parent]
    children = [] if depth == 0 else [subtree(nodes, child, depth - 1 if depth > 0 else -1, names)
                                      for child in node.children if child in nodes]
    return parent, select(node.props, names), children


def escape_markup(text: str) -> str:
    """Text safe inside the little markup some hosts accept in a tooltip body."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

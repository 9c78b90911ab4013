"""The tray icon as a freedesktop StatusNotifierItem with a com.canonical.dbusmenu menu, served over dbus-fast.

No toolkit in the process: the panel (xfce4-panel's systray, lxqt-panel's statusnotifier, KDE…) draws the icon
and the menu from what we publish on the session bus, and tells us about clicks. Everything runs on the one
D-Bus loop thread of `session_bus`; `update()` may be called from any thread and emits only what changed, so a
menu the user has open stays open while its durations tick.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Annotated, Any, Callable, Coroutine, Sequence

from dbus_fast import Message, MessageType, Variant
from dbus_fast.annotations import DBusSignature
from dbus_fast.constants import NameFlag, PropertyAccess, RequestNameReply
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

from . import session_bus
from .threads import in_background
from .dbusmenu import (EMPTY_MENU, Changes, Menu, PropValue, Tree, build_menu, diff, escape_markup,
                       select, subtree)

if TYPE_CHECKING:
    from PIL.Image import Image

    from .traymenu import Item

log = logging.getLogger(__name__)

ITEM_PATH = "/StatusNotifierItem"
MENU_PATH = "/MenuBar"
WATCHER_PATH = "/StatusNotifierWatcher"
# KDE's names first (every host we know owns it); the freedesktop spelling is used by a few newer hosts
WATCHERS = ("org.kde.StatusNotifierWatcher", "org.freedesktop.StatusNotifierWatcher")
ITEM_INTERFACES = {"org.kde.StatusNotifierWatcher": "org.kde.StatusNotifierItem",
                   "org.freedesktop.StatusNotifierWatcher": "org.freedesktop.StatusNotifierItem"}
MENU_INTERFACE = "com.canonical.dbusmenu"
DBUS = "org.freedesktop.DBus"
STATUSES = ("Active", "NeedsAttention", "Passive")
PIXMAP_SIZES = (16, 22, 24, 32, 48, 64)
DISCONNECT_WAIT = 0.3  # seconds stop() waits for the bus to see us go
ABOUT_TO_SHOW_WAIT = 1.0  # how long AboutToShow waits for the tray's refresh before answering
_serials = count(1)

NoValue = Annotated[None, DBusSignature("")]  # a method or signal with no value
DStr = Annotated[str, DBusSignature("s")]
DBool = Annotated[bool, DBusSignature("b")]
I32 = Annotated[int, DBusSignature("i")]
U32 = Annotated[int, DBusSignature("u")]
DVariant = Annotated[Variant, DBusSignature("v")]
DPath = Annotated[str, DBusSignature("o")]
StrList = Annotated[list[str], DBusSignature("as")]
IntList = Annotated[list[int], DBusSignature("ai")]
Pixmaps = Annotated[list[Any], DBusSignature("a(iiay)")]
ToolTipValue = Annotated[list[Any], DBusSignature("(sa(iiay)ss)")]
Layout = Annotated[list[Any], DBusSignature("u(ia{sv}av)")]
GroupProps = Annotated[list[Any], DBusSignature("a(ia{sv})")]
Events = Annotated[list[Any], DBusSignature("a(isvu)")]
AboutToShowGroupReply = Annotated[list[Any], DBusSignature("aiai")]
PropsUpdated = Annotated[list[Any], DBusSignature("a(ia{sv})a(ias)")]
LayoutUpdatedArgs = Annotated[list[Any], DBusSignature("ui")]
Activation = Annotated[list[Any], DBusSignature("iu")]


# -- pure helpers ------------------------------------------------------------------------------------------------

def argb32(image: Image) -> bytes:
    """The image's pixels as ARGB32 in network byte order, what `IconPixmap` carries."""
    from PIL import Image as PILImage

    red, green, blue, alpha = image.convert("RGBA").split()
    return PILImage.merge("RGBA", (alpha, red, green, blue)).tobytes()


def pixmap_sizes(side: int) -> list[int]:
    """The square sizes to offer for a source `side` px wide: the usual panel sizes it can fill, and itself."""
    side = max(1, min(side, 256))
    return sorted({size for size in PIXMAP_SIZES if size <= side} | {side})


def pixmaps(icon: Image | Sequence[Image]) -> list[tuple[int, int, bytes]]:
    """`a(iiay)`: the icon at several sizes, so each host can pick a crisp one: pictures drawn for each size as
    given (a count drawn at 16 px reads; a 64 px one shrunk does not), or one picture scaled."""
    from PIL import Image as PILImage

    pictures = _pictures(icon)
    if len(pictures) > 1:
        return [(image.width, image.height, argb32(image.convert("RGBA"))) for image in
                sorted(pictures, key=lambda image: image.width)]
    rgba = pictures[0].convert("RGBA")
    result = []
    for size in pixmap_sizes(max(rgba.size)):
        scaled = rgba if rgba.size == (size, size) else rgba.resize((size, size), PILImage.Resampling.LANCZOS)
        result.append((size, size, argb32(scaled)))
    return result


def fingerprint(icon: Image | Sequence[Image]) -> tuple[tuple[tuple[int, int], bytes], ...]:
    """What makes two icons the same pictures (sizes and RGBA pixels)."""
    return tuple((image.size, image.convert("RGBA").tobytes()) for image in _pictures(icon))


def _pictures(icon: Image | Sequence[Image]) -> list[Image]:
    """One picture or several, as a list."""
    return list(icon) if isinstance(icon, (list, tuple)) else [icon]  # type: ignore[list-item]


def tooltip_value(title: str, lines: Sequence[str]) -> tuple[str, list[Any], str, str]:
    """`(sa(iiay)ss)`: no icon of its own (hosts show the item's), the title, the lines as an escaped body."""
    return "", [], title, "\n".join(escape_markup(line) for line in lines)


def variant(value: PropValue) -> Variant:
    """A dbusmenu property value as a D-Bus variant."""
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, int):
        return Variant("i", value)
    if isinstance(value, bytes):
        return Variant("ay", value)
    return Variant("s", value)


def wire_props(props: dict[str, PropValue]) -> dict[str, Variant]:
    return {name: variant(value) for name, value in props.items()}


def wire_tree(tree: Tree) -> list[Any]:
    """`(ia{sv}av)` with each child wrapped in a variant, as GetLayout answers."""
    node_id, props, children = tree
    return [node_id, wire_props(props), [Variant("(ia{sv}av)", wire_tree(child)) for child in children]]


@dataclass(frozen=True)
class Shown:
    """What the item shows right now (replaced whole by update(), read by the bus handlers)."""

    icon: tuple[tuple[tuple[int, int], bytes], ...] | None = None
    pixmaps: tuple[tuple[int, int, bytes], ...] = ()
    tooltip: tuple[str, list[Any], str, str] = ("", [], "", "")
    status: str = "Active"
    menu: Menu = EMPTY_MENU
    revision: int = 1


def signals_for(old: Shown, new: Shown, changes: Changes) -> list[tuple[str, tuple[Any, ...]]]:
    """The signals that tell a host about `old` -> `new`, and nothing else (none when nothing changed)."""
    signals: list[tuple[str, tuple[Any, ...]]] = []
    if new.icon != old.icon:
        signals += [("NewIcon", ()), ("NewAttentionIcon", ())]  # AttentionIconPixmap is the same picture
    if new.tooltip != old.tooltip:
        signals.append(("NewToolTip", ()))
    if new.status != old.status:
        signals.append(("NewStatus", (new.status,)))
    if changes.properties:
        signals.append(("ItemsPropertiesUpdated", (
            [[node_id, wire_props(dict(props))] for node_id, props in changes.updated],
            [[node_id, list(names)] for node_id, names in changes.removed])))
    for parent in changes.parents:
        signals.append(("LayoutUpdated", (new.revision, parent)))
    return signals


# -- the D-Bus objects -------------------------------------------------------------------------------------------

class ItemInterface(ServiceInterface):
    """org.kde.StatusNotifierItem (or its freedesktop twin) over the tray's current state."""

    def __init__(self, tray: SniTray, name: str):
        super().__init__(name)
        self.tray = tray

    @dbus_property(access=PropertyAccess.READ, name="Category")
    def category(self) -> DStr:
        return "SystemServices"

    @dbus_property(access=PropertyAccess.READ, name="Id")
    def id(self) -> DStr:
        return self.tray.item_id

    @dbus_property(access=PropertyAccess.READ, name="Title")
    def title(self) -> DStr:
        return self.tray.title

    @dbus_property(access=PropertyAccess.READ, name="Status")
    def status(self) -> DStr:
        return self.tray.shown.status

    @dbus_property(access=PropertyAccess.READ, name="WindowId")
    def window_id(self) -> I32:
        return 0

    @dbus_property(access=PropertyAccess.READ, name="IconThemePath")
    def icon_theme_path(self) -> DStr:
        return ""  # a string here (KDE's extension), unlike dbusmenu's list: xfce and lxqt read it as one

    @dbus_property(access=PropertyAccess.READ, name="IconName")
    def icon_name(self) -> DStr:
        return ""

    @dbus_property(access=PropertyAccess.READ, name="IconPixmap")
    def icon_pixmap(self) -> Pixmaps:
        return list(self.tray.shown.pixmaps)

    @dbus_property(access=PropertyAccess.READ, name="OverlayIconName")
    def overlay_icon_name(self) -> DStr:
        return ""

    @dbus_property(access=PropertyAccess.READ, name="OverlayIconPixmap")
    def overlay_icon_pixmap(self) -> Pixmaps:
        return []

    @dbus_property(access=PropertyAccess.READ, name="AttentionIconName")
    def attention_icon_name(self) -> DStr:
        return ""

    @dbus_property(access=PropertyAccess.READ, name="AttentionIconPixmap")
    def attention_icon_pixmap(self) -> Pixmaps:
        return list(self.tray.shown.pixmaps)

    @dbus_property(access=PropertyAccess.READ, name="AttentionMovieName")
    def attention_movie_name(self) -> DStr:
        return ""

    @dbus_property(access=PropertyAccess.READ, name="ToolTip")
    def tool_tip(self) -> ToolTipValue:
        return list(self.tray.shown.tooltip)

    @dbus_property(access=PropertyAccess.READ, name="ItemIsMenu")
    def item_is_menu(self) -> DBool:
        return False

    @dbus_property(access=PropertyAccess.READ, name="Menu")
    def menu(self) -> DPath:
        return MENU_PATH

    @dbus_method(name="ContextMenu")
    def context_menu(self, x: I32, y: I32) -> NoValue:
        """Hosts that have our Menu path draw the menu themselves; there is no window of ours to show."""

    @dbus_method(name="Activate")
    def activate(self, x: I32, y: I32) -> NoValue:
        self.tray.activated()

    @dbus_method(name="SecondaryActivate")
    def secondary_activate(self, x: I32, y: I32) -> NoValue:
        """Middle click: nothing of its own."""

    @dbus_method(name="Scroll")
    def scroll(self, delta: I32, orientation: DStr) -> NoValue:
        """Scrolling over the icon: nothing to do."""

    @dbus_signal(name="NewTitle")
    def new_title(self) -> NoValue:
        return None

    @dbus_signal(name="NewIcon")
    def new_icon(self) -> NoValue:
        return None

    @dbus_signal(name="NewAttentionIcon")
    def new_attention_icon(self) -> NoValue:
        return None

    @dbus_signal(name="NewOverlayIcon")
    def new_overlay_icon(self) -> NoValue:
        return None

    @dbus_signal(name="NewToolTip")
    def new_tool_tip(self) -> NoValue:
        return None

    @dbus_signal(name="NewStatus")
    def new_status(self, status: str) -> DStr:
        return status


class MenuInterface(ServiceInterface):
    """com.canonical.dbusmenu over the tray's current menu."""

    def __init__(self, tray: SniTray):
        super().__init__(MENU_INTERFACE)
        self.tray = tray

    @dbus_property(access=PropertyAccess.READ, name="Version")
    def version(self) -> U32:
        return 3

    @dbus_property(access=PropertyAccess.READ, name="TextDirection")
    def text_direction(self) -> DStr:
        return "ltr"

    @dbus_property(access=PropertyAccess.READ, name="Status")
    def status(self) -> DStr:
        return "normal"

    @dbus_property(access=PropertyAccess.READ, name="IconThemePath")
    def icon_theme_path(self) -> StrList:
        return []

    @dbus_method(name="GetLayout")
    def get_layout(self, parent_id: I32, recursion_depth: I32, property_names: StrList) -> Layout:
        """dbusmenu GetLayout: the revision and the tree under `parent_id`, `recursion_depth` deep (-1: all)."""
        shown = self.tray.shown
        try:
            tree = subtree(shown.menu.nodes, parent_id, recursion_depth, property_names)
        except KeyError:
            raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", f"no menu item {parent_id}") from None
        return [shown.revision, wire_tree(tree)]

    @dbus_method(name="GetGroupProperties")
    def get_group_properties(self, ids: IntList, property_names: StrList) -> GroupProps:
        """dbusmenu GetGroupProperties: the asked properties of these rows (none asked: all rows)."""
        nodes = self.tray.shown.menu.nodes
        wanted = ids or sorted(nodes)
        return [[node_id, wire_props(select(nodes[node_id].props, property_names))]
                for node_id in wanted if node_id in nodes]

    @dbus_method(name="GetProperty")
    def get_property(self, node_id: I32, name: DStr) -> DVariant:
        """dbusmenu GetProperty: one property of one row, or InvalidArgs."""
        node = self.tray.shown.menu.nodes.get(node_id)
        if node is None or name not in node.props:
            raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", f"no property {name!r} on menu item {node_id}")
        return variant(node.props[name])

    @dbus_method(name="Event")
    def event(self, node_id: I32, event_id: DStr, data: DVariant, timestamp: U32) -> NoValue:
        if not self.tray.menu_event(node_id, event_id):
            raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", f"no menu item {node_id}")

    @dbus_method(name="EventGroup")
    def event_group(self, events: Events) -> IntList:
        return [node_id for node_id, event_id, _, _ in events if not self.tray.menu_event(node_id, event_id)]

    @dbus_method(name="AboutToShow")
    async def about_to_show(self, node_id: I32) -> DBool:
        if node_id not in self.tray.shown.menu.nodes:
            raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", f"no menu item {node_id}")
        return await self.tray.about_to_show()

    @dbus_method(name="AboutToShowGroup")
    async def about_to_show_group(self, ids: IntList) -> AboutToShowGroupReply:
        """dbusmenu AboutToShowGroup: refresh first, then (rows to re-read, ids we do not know)."""
        nodes = self.tray.shown.menu.nodes
        known = [node_id for node_id in ids if node_id in nodes]
        changed = await self.tray.about_to_show()
        return [known if changed else [], [node_id for node_id in ids if node_id not in nodes]]

    @dbus_signal(name="ItemsPropertiesUpdated")
    def items_properties_updated(self, updated: list[Any], removed: list[Any]) -> PropsUpdated:
        return [updated, removed]

    @dbus_signal(name="LayoutUpdated")
    def layout_updated(self, revision: int, parent: int) -> LayoutUpdatedArgs:
        return [revision, parent]

    @dbus_signal(name="ItemActivationRequested")
    def item_activation_requested(self, node_id: int, timestamp: int) -> Activation:
        return [node_id, timestamp]


# -- the tray ----------------------------------------------------------------------------------------------------

class SniTray:
    """A StatusNotifierItem + dbusmenu on the session bus."""

    def __init__(self, item_id: str = "tray-alerts", title: str = "tray-alerts", *,
                 on_about_to_show: Callable[[], None] | None = None,
                 on_activate: Callable[[], None] | None = None,
                 menu_icon: Callable[[str], bytes] | None = None):
        """`on_about_to_show` runs (on a worker thread, AboutToShow waits up to a second for it) when a host is
        about to show the menu; `on_activate` on a left click; `menu_icon` turns an Item.icon name into PNG."""
        self.item_id = item_id
        self.title = title
        self.on_about_to_show = on_about_to_show
        self.on_activate = on_activate
        self.menu_icon = menu_icon
        self.shown = Shown()
        self._lock = threading.Lock()
        self._icons: dict[str, bytes] = {}
        self._bus: Any = None
        self._exported = False
        self._stopped = False
        self._name = ""
        self._registered_with: set[str] = set()  # watcher names that accepted us since they last appeared
        self._items: dict[str, ItemInterface] = {}
        self._menu_interface: MenuInterface | None = None
        self._refresher: ThreadPoolExecutor | None = None
        self._refreshing: asyncio.Future[Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: deque[tuple[str, tuple[Any, ...]]] = deque()

    # -- the interface the tray uses ----------------------------------------------------------------------------
    def start(self, timeout: float = 5.0) -> None:
        """Connect, export the item and menu, register with the watcher if one is there.

        BusUnavailable when there is no session bus (or it does not answer within `timeout`)."""
        if self._bus is not None:
            return
        self._stopped = False
        session_bus.run(self._start(timeout / 2), timeout)

    def update(self, icon: Image | Sequence[Image], tooltip_title: str, tooltip_lines: Sequence[str], status: str,
               items: Sequence[Item]) -> None:
        """Show this icon (one picture, or one drawn per size), tooltip, status and menu; emit only what changed
        (thread-safe, never waits on the bus)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        picture = fingerprint(icon)
        new_pixmaps = None if picture == self.shown.icon else tuple(pixmaps(icon))
        tooltip = tooltip_value(tooltip_title, tooltip_lines)
        icons = self._menu_icons(items)
        with self._lock:
            old = self.shown
            menu = build_menu(items, old.menu.ids, icons)
            changes = diff(old.menu.nodes, menu.nodes)
            if picture != old.icon and new_pixmaps is None:  # another update changed it meanwhile
                new_pixmaps = tuple(pixmaps(icon))
            new = Shown(picture, new_pixmaps if new_pixmaps is not None else old.pixmaps, tooltip, status, menu,
                        old.revision + (1 if changes.structure else 0))
            self.shown = new
            signals = signals_for(old, new, changes) if self._exported else []
            self._outbox.extend(signals)  # in the order the state changed, whichever thread sends them
        if signals:
            session_bus.call_soon(self._flush)

    @property
    def registered(self) -> bool:
        """Whether a watcher has accepted us right now."""
        return bool(self._registered_with) and self._bus is not None and bool(self._bus.connected)

    def stop(self) -> None:
        """Unregister (by leaving the bus: watchers drop items whose name goes) and close; idempotent."""
        self._stopped = True
        bus, self._bus = self._bus, None
        with self._lock:
            self._exported = False
            self._outbox.clear()
        self._registered_with.clear()
        if self._refresher is not None:
            self._refresher.shutdown(wait=False)
            self._refresher = None
        if bus is None:
            return
        if session_bus.on_loop_thread():
            bus.disconnect()
            return
        try:  # short: leaving the bus is what unregisters us, and Ctrl-C must end the app within 2 s
            session_bus.run(_disconnect(bus), DISCONNECT_WAIT + 0.1)
        except session_bus.BusUnavailable:
            log.debug("the session bus did not confirm our disconnect in time")

    # -- called from the D-Bus objects (on the bus loop) ----------------------------------------------------
    def activated(self) -> None:
        """A left click on the icon."""
        if self.on_activate is not None:
            in_background(self.on_activate, name="tray-activate", what="the tray's activate callback")

    def menu_event(self, node_id: int, event_id: str) -> bool:
        """A menu event; runs a clicked row's action on a thread of its own. False when there is no such row."""
        menu = self.shown.menu
        if node_id not in menu.nodes:
            return False
        action = menu.actions.get(node_id)
        if event_id == "clicked" and action is not None:
            in_background(action, name="tray-menu-action", what="a tray menu action")
        return True

    async def about_to_show(self) -> bool:
        """Let the tray refresh the menu (bounded wait); True when that changed the layout (the host re-reads)."""
        if self.on_about_to_show is None or self._stopped:
            return False
        before = self.shown.revision
        if self._refreshing is None or self._refreshing.done():
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tray-about-to-show")
            self._refreshing = asyncio.get_running_loop().run_in_executor(self._refresher, self._refresh)
        try:
            await asyncio.wait_for(asyncio.shield(self._refreshing), ABOUT_TO_SHOW_WAIT)
        except asyncio.TimeoutError:
            log.debug("the menu refresh took longer than %g s; answering without it", ABOUT_TO_SHOW_WAIT)
        return self.shown.revision != before

    # -- inside ---------------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Run on_about_to_show; a failure is logged, never raised to the host."""
        callback = self.on_about_to_show
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("refreshing the tray menu failed")

    def _menu_icons(self, items: Sequence[Item]) -> dict[str, bytes]:
        """PNG bytes for each icon name the menu uses (asked of menu_icon once per name)."""
        if self.menu_icon is None:
            return {}
        for name in _icon_names(items):
            if name not in self._icons:
                try:
                    self._icons[name] = self.menu_icon(name)
                except Exception:
                    log.exception("no menu icon for %r", name)
                    self._icons[name] = b""
        return self._icons

    async def _start(self, register_wait: float) -> None:
        """Connect, export the item and its menu, and register with each watcher that is there."""
        bus = await session_bus.connect()
        try:
            await self._export(bus)
            present = [watcher for watcher in WATCHERS if await _has_owner(bus, watcher)]
        except BaseException as error:
            bus.disconnect()
            if isinstance(error, DBusError):
                raise session_bus.BusUnavailable(f"the session bus refused the tray icon: {error}") from None
            raise
        self._bus = bus
        # a watcher that is slow to answer must not hold up start(): its answer is taken whenever it comes
        tasks = [self._spawn(self._register(bus, watcher)) for watcher in present]
        if tasks:
            await asyncio.wait(tasks, timeout=register_wait)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task on the bus loop, kept referenced until it is done."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _export(self, bus: Any) -> None:
        """Take the well-known item name (else our unique one) and export the item and menu objects."""
        name = f"org.kde.StatusNotifierItem-{os.getpid()}-{next(_serials)}"
        reply = await bus.request_name(name, NameFlag.DO_NOT_QUEUE)
        self._name = name if reply in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER) \
            else bus.unique_name
        self._items = {watcher: ItemInterface(self, interface) for watcher, interface in ITEM_INTERFACES.items()}
        for interface in self._items.values():
            bus.export(ITEM_PATH, interface)
        self._menu_interface = MenuInterface(self)
        bus.export(MENU_PATH, self._menu_interface)
        bus.add_message_handler(self._on_message)
        for watcher in WATCHERS:
            rule = (f"type='signal',sender='{DBUS}',interface='{DBUS}',member='NameOwnerChanged',"
                    f"arg0='{watcher}'")
            await _call(bus, DBUS, "/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule])
        with self._lock:
            self._exported = True

    def _on_message(self, message: Message) -> None:
        """NameOwnerChanged for a watcher: register when one appears, forget it when it goes."""
        if message.message_type != MessageType.SIGNAL or message.member != "NameOwnerChanged" \
                or message.interface != DBUS or not message.body or message.body[0] not in WATCHERS:
            return None
        watcher, _, new_owner = message.body
        self._registered_with.discard(watcher)
        if new_owner and self._bus is not None and not self._stopped:
            self._spawn(self._register(self._bus, watcher))
        return None

    async def _register(self, bus: Any, watcher: str) -> None:
        try:
            await _call(bus, watcher, WATCHER_PATH, watcher, "RegisterStatusNotifierItem", "s", [self._name])
        except DBusError as error:
            log.warning("%s did not accept the tray icon: %s", watcher, error)
            return
        except Exception as error:  # the connection went away meanwhile
            log.debug("registering with %s failed: %r", watcher, error)
            return
        self._registered_with.add(watcher)

    def _flush(self) -> None:
        """Send the signals updates queued (on the bus loop), oldest first."""
        with self._lock:
            signals = list(self._outbox)
            self._outbox.clear()
        if signals:
            self._emit(signals)

    def _emit(self, signals: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Send signals; the freedesktop twin's only while a freedesktop watcher has us."""
        if self._bus is None or not self._bus.connected or self._menu_interface is None:
            return
        menu = self._menu_interface
        senders: dict[str, list[Callable[..., Any]]] = {
            "ItemsPropertiesUpdated": [menu.items_properties_updated], "LayoutUpdated": [menu.layout_updated],
            "ItemActivationRequested": [menu.item_activation_requested]}
        for watcher, item in self._items.items():
            if watcher == WATCHERS[0] or watcher in self._registered_with:
                for name, send in (("NewIcon", item.new_icon), ("NewAttentionIcon", item.new_attention_icon),
                                   ("NewToolTip", item.new_tool_tip), ("NewStatus", item.new_status)):
                    senders.setdefault(name, []).append(send)
        for name, args in signals:
            for send in senders.get(name, []):
                try:
                    send(*args)
                except Exception:
                    log.exception("could not emit %s", name)


def _icon_names(items: Sequence[Item]) -> set[str]:
    """Every row icon name the menu uses, submenus included."""
    names: set[str] = set()
    for item in items:
        if item.icon:
            names.add(item.icon)
        names |= _icon_names(item.submenu)
    return names


async def _call(bus: Any, destination: str, path: str, interface: str, member: str, signature: str,
                body: list[Any]) -> Message:
    """A method call; DBusError when it answers with an error."""
    reply = await bus.call(Message(destination=destination, path=path, interface=interface, member=member,
                                   signature=signature, body=body))
    if reply.message_type == MessageType.ERROR:
        raise DBusError(reply.error_name or "org.freedesktop.DBus.Error.Failed",
                        str(reply.body[0]) if reply.body else "")
    return reply


async def _has_owner(bus: Any, name: str) -> bool:
    reply = await _call(bus, DBUS, "/org/freedesktop/DBus", DBUS, "NameHasOwner", "s", [name])
    return bool(reply.body[0])


async def _disconnect(bus: Any) -> None:
    bus.disconnect()
    try:
        await asyncio.wait_for(bus.wait_for_disconnect(), DISCONNECT_WAIT)
    except Exception:  # already gone, or it ended with the error that closed it
        pass

"""DNS: does `name` resolve (through the system resolver, like every program here), to the expected addresses?"""
from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any, Callable

from ..channels.base import SettingError
from ..display import duration
from ..model import Level
from .base import Options, Reading

SHOWN_ADDRESSES = 5


class Lookup:
    """One getaddrinfo in a daemon thread, so a hung resolver bounds the check and not the runner."""

    def __init__(self, resolve: Callable[..., Any], name: str):
        self.addresses: list[str] | None = None
        self.error: OSError | UnicodeError | None = None
        self.thread = threading.Thread(target=self._run, args=(resolve, name), name=f"dns-{name}", daemon=True)
        self.thread.start()

    def _run(self, resolve: Callable[..., Any], name: str) -> None:
        try:
            found = resolve(name, None, type=socket.SOCK_STREAM)
            self.addresses = list(dict.fromkeys(_normal(str(sockaddr[0])) for *_, sockaddr in found))
        except (OSError, UnicodeError) as error:  # UnicodeError: a name IDNA cannot encode
            self.error = error


class DnsMonitor:
    """Not resolving, resolving without one of `expect` (addresses, comma separated; others may be there too)
    or no answer within the timeout is a bad reading at `level` (error)."""

    TYPE = "dns"
    OPTIONS = {"name", "expect", "level"}
    DEFAULT_INTERVAL = 60.0

    def __init__(self, name: str, host: str, timeout: float = 10.0, expect: tuple[str, ...] = (),
                 level: Level = Level.ERROR):
        self.name, self.type, self.host = name, self.TYPE, host
        self.label = f"dns {host}"
        self.timeout, self.expect, self.level = timeout, expect, level
        self.resolve: Callable[..., Any] = socket.getaddrinfo
        self._pending: Lookup | None = None

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> DnsMonitor:
        host = options.required("name")
        expect = []
        for item in options.text("expect").split(","):
            if item.strip():
                try:
                    expect.append(_normal(item.strip()))
                except ValueError:
                    raise SettingError("expect", f"not an IP address: {item.strip()!r}") from None
        return cls(name, host, timeout, tuple(expect), options.level("level", Level.ERROR))

    def check(self) -> Reading:
        context: dict[str, object] = {"name": self.host}
        if self.expect:
            context["expected"] = ", ".join(self.expect)
        if self._pending is not None and self._pending.thread.is_alive():
            return Reading(self.level, f"the previous lookup is still running after more than"
                                       f" {duration(self.timeout)}", None, context)
        lookup = self._pending = Lookup(self.resolve, self.host)
        lookup.thread.join(self.timeout)
        if lookup.thread.is_alive():
            return Reading(self.level, f"no answer within {duration(self.timeout)}", None, context)
        self._pending = None
        if lookup.error is not None or not lookup.addresses:
            why = lookup.error.strerror if isinstance(lookup.error, socket.gaierror) else lookup.error
            return Reading(self.level, f"does not resolve ({why or 'no addresses'})", None, context)
        addresses = lookup.addresses
        context["addresses"] = ", ".join(addresses)
        shown = ", ".join(addresses[:SHOWN_ADDRESSES]) + (
            f" and {len(addresses) - SHOWN_ADDRESSES} more" if len(addresses) > SHOWN_ADDRESSES else "")
        missing = [address for address in self.expect if address not in addresses]
        if missing:
            return Reading(self.level, f"resolves to {shown}, not to {', '.join(missing)}", None, context)
        return Reading(None, f"resolves to {shown}", None, context)


def _normal(address: str) -> str:
    """An address in its canonical text (`0:0::1` -> `::1`); a scoped IPv6 address keeps its scope."""
    bare, _, scope = address.partition("%")
    text = str(ipaddress.ip_address(bare))
    return f"{text}%{scope}" if scope else text

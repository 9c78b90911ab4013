"""TCP: can a connection to host:port be made within the timeout?"""
from __future__ import annotations

import socket

from ..channels.base import SettingError
from ..display import duration
from ..model import Level
from .base import Options, Reading


class TcpMonitor:
    """Refused or timed out is a bad reading at `level` (error)."""

    TYPE = "tcp"
    OPTIONS = {"host", "port", "level"}
    DEFAULT_INTERVAL = 30.0

    def __init__(self, name: str, host: str, port: int, timeout: float = 10.0, level: Level = Level.ERROR):
        self.name, self.type, self.host, self.port = name, self.TYPE, host, port
        self.label = f"tcp {host}:{port}"
        self.timeout, self.level = timeout, level

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> TcpMonitor:
        port = options.number("port", None)
        if port is None or port != int(port) or not 0 < port < 65536:
            raise SettingError("port", "must be a port number from 1 to 65535")
        return cls(name, options.text("host", "127.0.0.1"), int(port), timeout, options.level("level", Level.ERROR))

    def check(self) -> Reading:
        context = {"host": self.host, "port": self.port}
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                return Reading(None, "is accepting connections", None, context)
        except ConnectionRefusedError:
            return Reading(self.level, "refused the connection", None, context)
        except (socket.timeout, TimeoutError):
            return Reading(self.level, f"did not answer within {duration(self.timeout)}", None, context)
        except OSError as error:
            return Reading(self.level, f"cannot connect ({error.strerror or type(error).__name__})", None, context)

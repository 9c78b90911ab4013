"""TLS certificate: how long until the certificate `host:port` presents expires, once its chain is trusted."""
from __future__ import annotations

import os
import socket
import ssl
import time
from typing import Mapping

from ..channels.base import SettingError
from ..clock import SYSTEM_CLOCK, Clock
from ..display import duration
from ..model import Level
from .base import Options, Reading

DEFAULT_LIMITS = {Level.WARNING: 30 * 86400.0, Level.CRITICAL: 7 * 86400.0}
CERT_HAS_EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED


class TlsCertMonitor:
    """Time left per level (`warning = 30d`, `critical = 7d` unless any level is set), the least time left
    being the worst; an untrusted chain or a name mismatch is an error, an expired certificate the worst level."""

    TYPE = "tls_cert"
    OPTIONS = {"host", "port", "warning", "error", "critical", "ca_file", "server_name"}
    DEFAULT_INTERVAL = 3600.0

    def __init__(self, name: str, host: str, port: int = 443, timeout: float = 10.0,
                 limits: Mapping[Level, float] | None = None, ca_file: str = "", server_name: str = ""):
        self.name, self.type, self.host, self.port = name, self.TYPE, host, port
        self.label = f"tls {host}:{port}"
        self.timeout, self.ca_file, self.server_name = timeout, ca_file, server_name or host
        self.limits = dict(sorted((limits or DEFAULT_LIMITS).items()))
        self.clock: Clock = SYSTEM_CLOCK

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> TlsCertMonitor:
        port = options.number("port", 443)
        if port != int(port) or not 0 < port < 65536:
            raise SettingError("port", "must be a port number from 1 to 65535")
        limits = {level: seconds for level in (Level.WARNING, Level.ERROR, Level.CRITICAL)
                  if (seconds := options.duration(level.value, None)) is not None}
        ordered = list(limits.items())
        for (low, low_limit), (high, high_limit) in zip(ordered, ordered[1:]):
            if high_limit > low_limit:
                raise SettingError(high.value, f"must be at most {low.value} ({duration(low_limit)}): less time left"
                                               f" is worse")
        ca_file = os.path.expanduser(options.text("ca_file"))
        return cls(name, options.required("host"), int(port), timeout, limits or None, ca_file,
                   options.text("server_name"))

    def check(self) -> Reading:
        context: dict[str, object] = {"host": self.host, "port": self.port}
        try:
            trust = ssl.create_default_context(cafile=self.ca_file or None)
        except OSError as error:  # ssl.SSLError too: not PEM certificates
            return Reading(Level.ERROR, f"cannot use ca_file {self.ca_file} ({error.strerror or error})", None,
                           context)
        try:
            cert = self.fetch(trust)
        except ssl.SSLCertVerificationError as error:
            if error.verify_code == CERT_HAS_EXPIRED:
                return Reading(max(self.limits), "certificate has expired", 0.0, context)
            return Reading(Level.ERROR, f"certificate not trusted: {_reason(error)}", None, context)
        except ssl.SSLError as error:
            return Reading(Level.ERROR, f"TLS handshake failed ({error.reason or error})", None, context)
        except (socket.timeout, TimeoutError):
            return Reading(Level.ERROR, f"no TLS handshake within {duration(self.timeout)}", None, context)
        except OSError as error:
            return Reading(Level.ERROR, f"cannot connect ({error.strerror or type(error).__name__})", None, context)
        expires = ssl.cert_time_to_seconds(cert["notAfter"])
        left = expires - self.clock.time()
        names = ", ".join(value for _, value in cert.get("subjectAltName", ())[:3])
        context.update(subject=_field(cert, "subject", "commonName") or names,
                       issuer=_field(cert, "issuer", "commonName") or _field(cert, "issuer", "organizationName"),
                       expires=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires)))
        level = None
        for candidate, limit in self.limits.items():
            if left <= limit:
                level = candidate
        shown = level or min(self.limits)
        summary = (f"certificate expires in {duration(left)} ({shown.value} at {duration(self.limits[shown])})"
                   if left > 0 else "certificate has expired")
        return Reading(level, summary, left / 86400, context)

    def fetch(self, trust: ssl.SSLContext) -> dict:
        """The peer certificate, verified against `trust` (raises ssl and socket errors)."""
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            with trust.wrap_socket(sock, server_hostname=self.server_name) as tls:
                return tls.getpeercert() or {}


def _reason(error: ssl.SSLCertVerificationError) -> str:
    """OpenSSL's words, e.g. `unable to get local issuer certificate`, `Hostname mismatch, … 'x'`."""
    return (error.verify_message or error.reason or str(error)).rstrip(".")


def _field(cert: dict, name: str, key: str) -> str:
    """One attribute of the certificate's subject or issuer, e.g. its commonName; "" when it has none."""
    return next((str(value) for rdn in cert.get(name, ()) for field, value in rdn if field == key), "")

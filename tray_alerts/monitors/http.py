"""HTTP: GET `url` and expect a status (2xx by default), optional body text, optional latency limits."""
from __future__ import annotations

import re
import time

import requests

from ..channels.base import SettingError
from ..display import duration
from ..model import Level
from .base import Options, Reading, Thresholds

_STATUS = re.compile(r"^[1-5](\d\d|xx)$", re.IGNORECASE)


class HttpMonitor:
    """Refused, timed out, a wrong status or missing text is a bad reading at `level` (error); a slow answer
    is one at the latency threshold it crosses."""

    TYPE = "http"
    OPTIONS = {"url", "expect", "contains", "level", "latency_warning", "latency_error", "latency_critical",
               "verify"}
    DEFAULT_INTERVAL = 30.0

    def __init__(self, name: str, url: str, timeout: float = 10.0, expect: tuple[str, ...] = ("2xx",),
                 contains: str = "", level: Level = Level.ERROR, latency: Thresholds | None = None,
                 verify: bool = True):
        self.name, self.type, self.url = name, self.TYPE, url
        self.label = f"http {url}"
        self.timeout, self.expect, self.contains, self.level = timeout, expect, contains, level
        self.latency = latency or Thresholds({})
        self.verify = verify

    @classmethod
    def from_options(cls, name: str, options: Options, timeout: float) -> HttpMonitor:
        url = options.required("url")
        if not url.startswith(("http://", "https://")):
            raise SettingError("url", "must start with http:// or https://")
        expect = tuple(code.strip().lower() for code in options.text("expect", "2xx").split(",") if code.strip())
        for code in expect:
            if not _STATUS.match(code):
                raise SettingError("expect", f"not a status like 200 or 2xx: {code!r}")
        latency = Thresholds.from_options(options, options.duration, prefix="latency_", required=False,
                                          show=lambda v: f"{v * 1000:.0f} ms")
        return cls(name, url, timeout, expect, options.text("contains"), options.level("level", Level.ERROR), latency,
                   options.flag("verify", True))

    def check(self) -> Reading:
        started = time.monotonic()
        try:
            # Follow redirects unless a 3xx status is expected: following would hide the very status expected.
            response = requests.get(self.url, timeout=self.timeout, verify=self.verify,
                                    headers={"User-Agent": "tray-alerts monitor"},
                                    allow_redirects=not any(code.startswith("3") for code in self.expect))
        except requests.Timeout:
            return self._bad(f"no answer within {duration(self.timeout)}")
        except requests.ConnectionError as error:
            return self._bad("connection refused" if "refused" in str(error).lower() else "cannot connect")
        except requests.RequestException as error:
            return self._bad(f"request failed ({type(error).__name__})")
        elapsed = time.monotonic() - started
        context = {"url": self.url, "status": response.status_code, "latency": f"{elapsed * 1000:.0f} ms"}
        if not any(_matches(response.status_code, code) for code in self.expect):
            return self._bad(f"answered HTTP {response.status_code} (expected {', '.join(self.expect)})", context)
        if self.contains and self.contains not in response.text:
            return self._bad(f"answered HTTP {response.status_code} without {self.contains!r}", context)
        if self.latency:
            level = self.latency.classify(elapsed)
            if level is not None:
                return Reading(level, f"slow: {self.latency.describe(elapsed, level)}", elapsed, context)
        return Reading(None, f"answered HTTP {response.status_code} in {elapsed * 1000:.0f} ms", elapsed, context)

    def _bad(self, summary: str, context: dict | None = None) -> Reading:
        return Reading(self.level, summary, None, context or {"url": self.url})


def _matches(status: int, code: str) -> bool:
    return str(status)[0] == code[0] if code.endswith("xx") else str(status) == code

"""How to tell them: the channel contract every adapter follows."""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Protocol, runtime_checkable

from ..model import Alert
from ..values import parse_bool, parse_duration


@runtime_checkable
class Channel(Protocol):
    """Anything with a name and send(alert); success returns None or True, failure raises or returns False."""

    name: str

    def send(self, alert: Alert) -> bool | None:
        """Deliver one alert or raise DeliveryError."""


class DeliveryError(Exception):
    """A failed delivery; `retryable` says whether trying again later could help, `may_have_arrived` that the
    request was fully sent before it failed (so the next try may be a repeat, and says so)."""

    may_have_arrived = False

    def __init__(self, message: str, retryable: bool = True, retry_after: float | None = None,
                 may_have_arrived: bool | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        if may_have_arrived is not None:
            self.may_have_arrived = may_have_arrived


class NotConfigured(Exception):
    """A channel whose required settings are empty: skipped, with the reason shown in `status`."""


class SettingError(ValueError):
    """A bad value in a channel's settings; config.py adds the file and section."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def send_to_each(send_to: Callable[[str], None], recipients: Iterable[str]) -> None:
    """Send to every recipient (a test alert of a per-recipient channel); one DeliveryError naming every failure,
    retryable if any of them is."""
    failures: list[DeliveryError] = []
    for recipient in recipients:
        try:
            send_to(recipient)
        except DeliveryError as error:
            failures.append(error)
    if failures:
        raise DeliveryError("; ".join(error.message for error in failures),
                            retryable=any(error.retryable for error in failures))


def require(options: Mapping[str, str], key: str) -> str:
    """The value of a required setting, or NotConfigured naming the empty key."""
    value = options.get(key, "").strip()
    if not value:
        raise NotConfigured(f"{key} is empty")
    return value


def flag_option(options: Mapping[str, str], key: str, default: bool) -> bool:
    """A yes/no setting (empty: `default`), or SettingError naming the key."""
    try:
        return parse_bool(options.get(key, "").strip() or ("yes" if default else "no"))
    except ValueError as error:
        raise SettingError(key, str(error)) from None


def duration_option(options: Mapping[str, str], key: str, default: str) -> float:
    """A duration setting (`10s`, `1m`) in seconds, or SettingError naming the key."""
    try:
        return parse_duration(options.get(key, "").strip() or default)
    except ValueError as error:
        raise SettingError(key, str(error)) from None

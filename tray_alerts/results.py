"""Results are values: what a raise or clear did and each channel's outcome, printed as they are by the CLI
and the push API (and still a mapping of channel -> delivered, for scripts written against the first API)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .lifecycle import ActiveEvent

DELIVERED, FAILED, RETRYING, HELD, QUEUED, PENDING, DROPPED, NOT_STORED = (
    "delivered", "failed", "retrying", "held", "queued", "pending", "dropped", "not stored")


@dataclass(frozen=True)
class ChannelOutcome:
    """How one channel's notification stands: delivered, failed, retrying, held, queued, pending (sent, no answer
    yet), dropped (storm control, or with its firing), not stored (the state file could not be written)."""

    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == DELIVERED

    def describe(self) -> str:
        """`delivered`, or the status with its detail: `retrying — HTTP 500 — will retry at 14:31:07`."""
        return self.status if not self.detail else f"{self.status} — {self.detail}"


class Result(dict):
    """channel -> delivered (bool), plus `kind` (fired, escalated, debounced, cleared, not active, reminded,
    acknowledged),
    each channel's `outcomes`, the event's state after it (`record`), and whether it was `stored`."""

    __slots__ = ("kind", "event", "outcomes", "record", "stored", "fault", "muted_until", "seen", "since", "level",
                 "acknowledged_at", "inhibited_by")

    def __init__(self, kind: str, event: str, outcomes: Mapping[str, ChannelOutcome] | None = None,
                 record: ActiveEvent | None = None, stored: bool = True, fault: str = "",
                 muted_until: float | None = None, seen: int | None = None, since: float | None = None,
                 level: str | None = None, acknowledged_at: float | None = None, inhibited_by: str | None = None):
        self.outcomes: dict[str, ChannelOutcome] = dict(outcomes) if outcomes else {}
        if self.outcomes:
            super().__init__({name: outcome.ok for name, outcome in self.outcomes.items()})
        self.kind = kind
        self.event = event
        self.record = record
        self.stored = stored
        self.fault = fault
        self.muted_until = muted_until
        self.seen = seen if seen is not None or record is None else record.seen
        self.since = since if since is not None or record is None else record.since
        self.level = level if level is not None or record is None else record.level.value
        self.acknowledged_at = acknowledged_at if record is None else record.acknowledged_at
        self.inhibited_by = inhibited_by if record is None else record.inhibited_by  # the parent holding it back

    @classmethod
    def debounced(cls, event: str, record: ActiveEvent, seen: int, muted_until: float | None) -> Result:
        """The answer to a debounced repeat (the hot path: built without the general constructor)."""
        result = cls.__new__(cls)
        result.kind, result.event, result.outcomes, result.record = "debounced", event, {}, record
        result.stored, result.fault, result.muted_until = True, "", muted_until
        result.seen, result.since, result.level = seen, record.since, record.level.value
        result.acknowledged_at, result.inhibited_by = record.acknowledged_at, record.inhibited_by
        return result

    @property
    def pending(self) -> list[str]:
        """The channels whose answer has not come yet."""
        return [name for name, outcome in self.outcomes.items() if outcome.status == PENDING]

    def details(self) -> dict[str, str]:
        """Per channel, the outcome's detail (why it was not delivered; empty for most that were)."""
        return {name: outcome.detail for name, outcome in self.outcomes.items()}

    def to_json(self) -> dict[str, Any]:
        """The push API's answer (its `status`, `delivered` and `details` keys are those of the first API)."""
        return {
            "event": self.event,
            "status": self.kind,
            "stored": self.stored,
            **({"fault": self.fault} if self.fault else {}),
            "delivered": dict(self),
            "details": self.details(),
            "channels": {name: {"status": o.status, "detail": o.detail} for name, o in self.outcomes.items()},
            "level": self.level,
            "seen": self.seen,
            "since": self.since,
            "muted_until": self.muted_until,
            "acknowledged_at": self.acknowledged_at,
            "inhibited_by": self.inhibited_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Result:
        """A Result from the push API's answer (without the event's full state)."""
        outcomes = {name: ChannelOutcome(str(value.get("status", "")), str(value.get("detail", "")))
                    for name, value in (data.get("channels") or {}).items()}
        result = cls(str(data.get("status", "")), str(data.get("event", "")), outcomes,
                     stored=bool(data.get("stored", True)), fault=str(data.get("fault", "")),
                     muted_until=data.get("muted_until"), seen=data.get("seen"), since=data.get("since"),
                     level=data.get("level"), acknowledged_at=data.get("acknowledged_at"),
                     inhibited_by=data.get("inhibited_by"))
        return result

"""Each monitor's readings kept for charts and uptime: every numeric reading and whether it was bad, stored as
it comes, then downsampled with age (5-minute buckets after a day, hourly after a week) and forgotten with the
history. The decisions (buckets, cut-offs, uptime) are pure; the rest is a few short writes to the state file."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from .state import StateStore, Transaction

RAW, FIVE_MINUTES, HOURLY = 0.0, 300.0, 3600.0
DAY, WEEK = 86400.0, 7 * 86400.0


@dataclass(frozen=True)
class ReadingRow:
    """One reading (span 0) or a bucket of them (span seconds, from `at`): the mean, lowest and highest value
    of the `valued` readings that had one, how many readings in all and how many of them were bad."""

    monitor: str
    at: float
    span: float
    value: float | None
    low: float | None
    high: float | None
    count: int
    valued: int
    bad: int


@dataclass(frozen=True)
class Retention:
    """How long readings stay at each resolution: raw for `raw_for`, in 5-minute buckets until `five_minutes_for`,
    hourly until `keep` (the history's age)."""

    raw_for: float = DAY
    five_minutes_for: float = WEEK
    keep: float = 30 * DAY

    def steps(self, now: float) -> list[tuple[float, float]]:
        """(span, cut-off) per downsampling step: rows finer than span that lie wholly before the cut-off (a whole
        number of spans, so no bucket is split) are merged into buckets of that span."""
        return [(FIVE_MINUTES, aligned(now - self.raw_for, FIVE_MINUTES)),
                (HOURLY, aligned(now - self.five_minutes_for, HOURLY))]


def aligned(moment: float, span: float) -> float:
    """The start of the bucket of `span` seconds holding `moment`."""
    return (moment // span) * span


@dataclass(frozen=True)
class Summary:
    """A monitor's readings at a glance: the latest value, the last day's lowest, mean and highest, and the
    share of fine readings over the last day and week."""

    latest: float | None
    low: float | None
    mean: float | None
    high: float | None
    up_day: float | None
    up_week: float | None


def summarise(rows: Sequence[ReadingRow], now: float) -> Summary:
    """The summary of a monitor's rows (oldest first, as `load` gives them) as of `now`."""
    day = [row for row in rows if row.at >= now - DAY]
    lows = [row.low for row in day if row.low is not None]
    highs = [row.high for row in day if row.high is not None]
    weighted = [(row.value, row.valued) for row in day if row.value is not None and row.valued]
    weight = sum(count for _, count in weighted)
    latest = next((row.value for row in reversed(rows) if row.value is not None), None)
    return Summary(latest, min(lows, default=None), sum(value * count for value, count in weighted) / weight
                   if weight else None, max(highs, default=None), uptime(day),
                   uptime(row for row in rows if row.at >= now - WEEK))


def chart_points(rows: Iterable[ReadingRow], since: float, until: float, points: int = 120
                 ) -> list[tuple[float, float | None, bool]]:
    """A chart's points over `since`..`until`: that span cut into `points` equal slots, each the mean value of
    the readings in it (None where none had a value) at the slot's middle, and whether any was bad; empty slots
    are left out (a gap in the line)."""
    width = (until - since) / points
    sums: dict[int, list[float]] = {}
    for row in rows:
        if not since <= row.at < until:
            continue
        slot = sums.setdefault(int((row.at - since) // width), [0.0, 0.0, 0.0])
        if row.value is not None:
            slot[0] += row.value * row.valued
            slot[1] += row.valued
        slot[2] += row.bad
    return [(since + (index + 0.5) * width, total / count if count else None, bool(bad))
            for index, (total, count, bad) in sorted(sums.items())]


def uptime(rows: Iterable[ReadingRow]) -> float | None:
    """The share of readings that were fine, 0..1 (None without readings)."""
    count = bad = 0
    for row in rows:
        count += row.count
        bad += row.bad
    return None if count == 0 else (count - bad) / count


_COLUMNS = "monitor, at, span, value, low, high, count, valued, bad"
_MERGE = (f"INSERT INTO readings ({_COLUMNS}) SELECT monitor, (CAST(at / :span AS INTEGER)) * :span, :span,"
          " sum(value * valued) / nullif(sum(valued), 0), min(low), max(high), sum(count), sum(valued), sum(bad)"
          " FROM readings WHERE monitor = :monitor AND span < :span AND at < :cut GROUP BY CAST(at / :span AS INTEGER)")
_MERGED = "DELETE FROM readings WHERE monitor = :monitor AND span < :span AND at < :cut"


def record(tx: Transaction, monitor: str, at: float, value: float | None, bad: bool) -> None:
    """Keep one reading, in the caller's write."""
    tx.db.execute(f"INSERT INTO readings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                  (monitor, at, RAW, value, value, value, int(value is not None), int(bad)))


def load(store: StateStore, monitor: str, since: float) -> list[ReadingRow]:
    """A monitor's readings and buckets from `since` on, oldest first."""
    return [ReadingRow(*row) for row in store.read_rows(
        f"SELECT {_COLUMNS} FROM readings WHERE monitor = ? AND at >= ? ORDER BY at, span", (monitor, since))]


def monitors(store: StateStore) -> list[str]:
    """The monitors with readings kept."""
    return [name for (name,) in store.read_rows("SELECT DISTINCT monitor FROM readings ORDER BY monitor")]


def downsample(store: StateStore, now: float, retention: Retention, names: Sequence[str] | None = None) -> int:
    """Merge old readings into coarser buckets and forget those past `retention.keep`: one short write per
    monitor and step. Returns how many rows were merged or forgotten."""
    gone = 0
    for monitor in monitors(store) if names is None else names:
        for span, cut in retention.steps(now):
            with store.write() as tx:
                values = {"monitor": monitor, "span": span, "cut": cut}
                tx.db.execute(_MERGE, values)
                gone += tx.db.execute(_MERGED, values).rowcount
        with store.write() as tx:
            gone += tx.db.execute("DELETE FROM readings WHERE monitor = ? AND at < ?",
                                  (monitor, now - retention.keep)).rowcount
    return gone

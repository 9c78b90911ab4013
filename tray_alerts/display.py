"""Words and tables for people: times, durations, and aligned text tables (CLI and tray)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .model import Alert


def clock(moment: datetime, now: datetime | None = None, seconds: bool = True) -> str:
    """Local time of day (`14:30:01`, or `14:30` without seconds), with the date when it is not today."""
    local = moment.astimezone()
    today = (now or datetime.now().astimezone()).astimezone().date()
    if local.date() != today:
        return local.strftime("%b %d %H:%M")
    return local.strftime("%H:%M:%S" if seconds else "%H:%M")


def duration(seconds: float) -> str:
    """A short human duration: `0.5 s`, `40 s`, `12 min`, `3 h 5 min`, `2 d 4 h`."""
    if 0 < seconds < 10 and not f"{seconds:.1f}".endswith(".0"):
        return f"{seconds:.1f} s"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], max_width: int = 60) -> str:
    """Left-aligned columns; cells longer than max_width are cut."""
    cells = [[_cell(value, max_width) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) if cells else len(header)
              for i, header in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: object, max_width: int) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= max_width else text[: max_width - 1] + "…"

# White text on each stays readable (contrast >= 3:1), which is why warning is a deep amber.
LEVEL_COLOURS = {"info": "#2f80ed", "warning": "#d97706", "error": "#e03e2d", "critical": "#8b0000"}
RESOLVED_COLOUR = "#2eb67d"


def title(alert: Alert) -> str:
    """`WARNING · disk_full`, or `RESOLVED · disk_full` for a recovery."""
    return f"{alert.tag} · {alert.event}"


def context_lines(alert: Alert) -> list[str]:
    """The context as `key: value` lines."""
    return [f"{key}: {value}" for key, value in alert.context.items()]


def colour(alert: Alert) -> str:
    """The level's colour as #rrggbb; green for a recovery."""
    return RESOLVED_COLOUR if alert.resolved else LEVEL_COLOURS[alert.level.value]

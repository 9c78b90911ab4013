"""Tray and pop-up icons drawn with Pillow: the colour of the worst active level, the count on top."""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .display import LEVEL_COLOURS, RESOLVED_COLOUR
from .model import Level

ASSETS = Path(__file__).with_name("assets")
CLEAR_COLOUR = RESOLVED_COLOUR
SNOOZED_COLOUR = "#8a8f98"
ICON_COLOURS = {level: LEVEL_COLOURS[level.value] for level in Level}


def icon_colour(worst: Level | None, snoozed: bool = False) -> str:
    """Grey while snoozed, green when all is clear, else the worst level's colour."""
    if snoozed:
        return SNOOZED_COLOUR
    return CLEAR_COLOUR if worst is None else ICON_COLOURS[worst]


def draw_icon(worst: Level | None, count: int = 0, size: int = 64, snoozed: bool = False) -> Image.Image:
    """A filled disc in the state's colour with the active count (or a tick when all is clear)."""
    scale = 4  # draw large and shrink, for smooth edges at 16 px
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    margin = big // 16
    draw.ellipse((margin, margin, big - margin, big - margin), fill=icon_colour(worst, snoozed),
                 outline="white", width=max(scale, big // 24))
    if count > 0:
        text = str(count) if count < 100 else "99+"
        font = ImageFont.load_default(size=big * (0.62 if len(text) == 1 else 0.5 if len(text) == 2 else 0.36))
        draw.text((big / 2, big / 2), text, fill="white", font=font, anchor="mm",
                  stroke_width=max(1, big // 48), stroke_fill="white")
    elif not snoozed:
        width = max(scale * 2, big // 10)
        draw.line([(big * 0.28, big * 0.52), (big * 0.44, big * 0.68), (big * 0.72, big * 0.34)],
                  fill="white", width=width, joint="curve")
    return image.resize((size, size), Image.Resampling.LANCZOS)


def level_icon_path(level: Level | None) -> Path:
    """The packaged pop-up icon for a level (None: the recovered/all-clear icon)."""
    return ASSETS / f"level-{level.value if level else 'clear'}.png"


def write_level_icons(folder: Path, size: int = 64) -> list[Path]:
    """Write the pop-up icons (one per level and one for recovery) as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for level in (*Level, None):
        path = folder / level_icon_path(level).name
        draw_icon(level, 1 if level else 0, size).save(path)
        written.append(path)
    return written


if __name__ == "__main__":
    print("\n".join(str(path) for path in write_level_icons(Path(sys.argv[1]) if len(sys.argv) > 1 else ASSETS)))

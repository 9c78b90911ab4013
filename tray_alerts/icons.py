"""Tray, menu and pop-up icons drawn with Pillow: a shape, colour and glyph per state, the count in pixel digits.

Each level has its own silhouette (info a circle, warning a triangle, error a rounded square, critical an
octagon), so nobody has to tell the levels apart by colour. The fills sit in a narrow mid-luminance band
(WCAG relative luminance 0.20-0.24), which is what keeps each shape at least 3:1 against white, #f0f0f0,
black, #2b2b2b and #303030 panels while white glyphs on it stay at least 3.5:1. Critical is the exception,
a dark red stop sign whose white rim carries it on dark panels. Digits come from a small bold pixel font
pasted on whole pixels after the shape is drawn, so they stay sharp at 16 px.
"""
from __future__ import annotations

import io
import sys
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from .model import Level

ASSETS = Path(__file__).with_name("assets")
SMOOTH_FROM = 40  # px: from here up the pixel digits get rounded corners; below, they stay on whole pixels
SUPERSAMPLE = 4  # shapes are drawn this much larger and box-filtered down, for smooth edges at 16 px
Point = tuple[float, float]

ICON_COLOURS = {Level.INFO: "#2f80ed", Level.WARNING: "#c76a08", Level.ERROR: "#e5432f",
                Level.CRITICAL: "#8b0000"}
CLEAR_COLOUR = "#1e9960"
SNOOZED_COLOUR = "#7a7f87"
ACKNOWLEDGED_COLOURS = {Level.INFO: "#6c8099", Level.WARNING: "#a07455", Level.ERROR: "#ae6d64",
                        Level.CRITICAL: "#9d7081"}
ACKNOWLEDGED_COLOUR = ACKNOWLEDGED_COLOURS[Level.INFO]  # the menu's "acknowledged" row icon
GLYPH_COLOUR = "#ffffff"
RIM_COLOUR = "#ffffff"  # critical's rim: the dark red shape is outlined in white
SHAPES = {Level.INFO: "circle", Level.WARNING: "triangle", Level.ERROR: "square", Level.CRITICAL: "octagon"}
LEVEL_GLYPHS = {Level.INFO: "i", Level.WARNING: "!", Level.ERROR: "x", Level.CRITICAL: "!"}
MENU_ICONS = ("info", "warning", "error", "critical", "acknowledged")

# Bold pixel fonts, "#" being ink: 6x10 with 2 px strokes, 5x7 with 2 px uprights, and 3x5 where neither fits.
MEDIUM_FONT: dict[str, tuple[str, ...]] = {
    "0": (".####.", "######", "##..##", "##..##", "##..##", "##..##", "##..##", "##..##", "######", ".####."),
    "1": ("..##", ".###", "####", "..##", "..##", "..##", "..##", "..##", "..##", "..##"),
    "2": (".####.", "######", "##..##", "....##", "...###", "..###.", ".###..", "###...", "######", "######"),
    "3": ("#####.", "######", "....##", "....##", ".####.", ".####.", "....##", "....##", "######", "#####."),
    "4": ("...###", "..####", ".##.##", "##..##", "##..##", "######", "######", "....##", "....##", "....##"),
    "5": ("######", "######", "##....", "#####.", "######", "....##", "....##", "....##", "######", "#####."),
    "6": (".####.", "#####.", "##....", "#####.", "######", "##..##", "##..##", "##..##", "######", ".####."),
    "7": ("######", "######", "....##", "...###", "...##.", "..###.", "..##..", "..##..", "..##..", "..##.."),
    "8": (".####.", "######", "##..##", "##..##", ".####.", "######", "##..##", "##..##", "######", ".####."),
    "9": (".####.", "######", "##..##", "##..##", "######", ".#####", "....##", "....##", ".#####", ".####."),
    "+": ("......", "......", "..##..", "..##..", "######", "######", "..##..", "..##..", "......", "......"),
}
BOLD_FONT: dict[str, tuple[str, ...]] = {
    "0": (".###.", "##.##", "##.##", "##.##", "##.##", "##.##", ".###."),
    "1": (".##", "###", ".##", ".##", ".##", ".##", ".##"),
    "2": (".###.", "##.##", "...##", "..##.", ".##..", "##...", "#####"),
    "3": ("####.", "...##", "...##", ".###.", "...##", "...##", "####."),
    "4": ("...##", "..###", ".####", "##.##", "#####", "...##", "...##"),
    "5": ("#####", "##...", "####.", "...##", "...##", "##.##", ".###."),
    "6": (".###.", "##...", "####.", "##.##", "##.##", "##.##", ".###."),
    "7": ("#####", "...##", "...##", "..##.", "..##.", ".##..", ".##.."),
    "8": (".###.", "##.##", "##.##", ".###.", "##.##", "##.##", ".###."),
    "9": (".###.", "##.##", "##.##", ".####", "...##", "...##", ".###."),
    "+": (".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."),
}
SMALL_FONT: dict[str, tuple[str, ...]] = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#", "##", ".#", ".#", ".#"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "+": ("...", ".#.", "###", ".#.", "..."),
}
VECTOR_GLYPHS = {  # drawn as strokes (fractions of the icon), for the diagonals a pixel font makes jagged
    "x": ((0.34, 0.34), (0.66, 0.66), (0.34, 0.66), (0.66, 0.34)),  # two separate strokes, point pairs
    "tick": ((0.27, 0.52), (0.43, 0.68), (0.74, 0.36)),
}


# ---- what each state looks like ------------------------------------------------------------------------------

def icon_colour(worst: Level | None, snoozed: bool = False, acknowledged: bool = False) -> str:
    """The fill: grey while snoozed, green when all is clear, muted when acknowledged, else the level's."""
    if snoozed:
        return SNOOZED_COLOUR
    if worst is None:
        return CLEAR_COLOUR
    return ACKNOWLEDGED_COLOURS[worst] if acknowledged else ICON_COLOURS[worst]


def icon_shape(worst: Level | None, snoozed: bool = False) -> str:
    """The silhouette: the worst level's shape; a circle when clear or snoozed."""
    return "circle" if snoozed or worst is None else SHAPES[worst]


def count_text(count: int, size: int) -> str:
    """What the count shows as: all of it up to 99 (9 at 22 px and under), else `99+` or `9+`."""
    if count <= 0:
        return ""
    limit = 9 if size <= 22 else 99
    return str(count) if count <= limit else f"{limit}+"


def text_bitmap(text: str, font: dict[str, tuple[str, ...]] = BOLD_FONT, scale: int = 1) -> Image.Image:
    """The text in a pixel font as a mode-"1" image: font pixels `scale` px square, characters one apart."""
    glyphs = [font[char] for char in text]
    width = sum(len(rows[0]) for rows in glyphs) + len(glyphs) - 1
    height = len(glyphs[0])
    image = Image.new("1", (width, height), 0)
    x = 0
    for rows in glyphs:
        for y, row in enumerate(rows):
            for dx, ink in enumerate(row):
                if ink == "#":
                    image.putpixel((x + dx, y), 1)
        x += len(rows[0]) + 1
    return image.resize((width * scale, height * scale), Image.Resampling.NEAREST) if scale > 1 else image


# ---- shapes ----------------------------------------------------------------------------------------------------

def _outline(shape: str, size: int) -> tuple[list[Point], float]:
    """The shape's outer polygon in pixels and its corner radius (a circle: its centre and radius)."""
    s = float(size)
    if shape == "circle":
        return [(s / 2, s / 2)], s / 2
    if shape == "square":
        return [(0, 0), (s, 0), (s, s), (0, s)], max(2.0, s * 0.16)
    if shape == "octagon":
        cut = s * 0.23  # squarer than a regular octagon (0.29): further from the circle at 16 px
        return [(cut, 0), (s - cut, 0), (s, cut), (s, s - cut), (s - cut, s), (cut, s), (0, s - cut),
                (0, cut)], max(0.5, s * 0.04)
    if shape == "triangle":
        # overshoots the canvas: the rounded corners pull it back inside, with the most room for digits
        return [(s / 2, -s * 0.125), (s * 1.094, s * 0.98), (-s * 0.094, s * 0.98)], s * 0.156
    raise ValueError(f"unknown shape {shape!r}")


def _inset(polygon: Sequence[Point], distance: float) -> list[Point]:
    """A convex polygon (clockwise on screen) with every edge moved `distance` inwards."""
    lines = []
    for (x1, y1), (x2, y2) in zip(polygon, [*polygon[1:], polygon[0]]):
        length = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        nx, ny = -(y2 - y1) / length, (x2 - x1) / length  # inward normal for a clockwise polygon
        lines.append(((x1 + nx * distance, y1 + ny * distance), (x2 - x1, y2 - y1)))
    corners = []
    for (p, d), (q, e) in zip([lines[-1], *lines[:-1]], lines):
        cross = d[0] * e[1] - d[1] * e[0]
        t = ((q[0] - p[0]) * e[1] - (q[1] - p[1]) * e[0]) / cross
        corners.append((p[0] + d[0] * t, p[1] + d[1] * t))
    return corners


def _draw_layer(draw: ImageDraw.ImageDraw, shape: str, size: int, inset: float, fill: str | int) -> None:
    """The shape shrunk by `inset` px, with its rounded corners, drawn at the supersampled scale."""
    k = SUPERSAMPLE
    polygon, radius = _outline(shape, size)
    if shape == "circle":
        (cx, cy), r = polygon[0], radius - inset
        draw.ellipse(((cx - r) * k, (cy - r) * k, (cx + r) * k - 1, (cy + r) * k - 1), fill=fill)
        return
    core = _inset(polygon, max(inset, radius))
    r = max(radius - inset, 0.0) * k
    points = [(x * k, y * k) for x, y in core]
    draw.polygon(points, fill=fill)
    if r > 0:
        for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]]):
            draw.line(((x1, y1), (x2, y2)), fill=fill, width=round(2 * r))
            draw.ellipse((x1 - r, y1 - r, x1 + r, y1 + r), fill=fill)


def _layers(worst: Level | None, snoozed: bool, acknowledged: bool, size: int) -> list[tuple[float, str]]:
    """(inset in px, colour) from the outside in; the last is the fill the glyph sits on."""
    fill = icon_colour(worst, snoozed, acknowledged)
    if worst is Level.CRITICAL and not snoozed and not acknowledged:
        # a stop sign: a white rim for dark panels; from 32 px a dark edge outside it keeps its size on light ones
        edge = float(round(size / 32)) if size >= 32 else 0.0
        rim = float(max(1, round(size / 16)))
        return [*([(0.0, fill)] if edge else []), (edge, RIM_COLOUR), (edge + rim, fill)]
    return [(0.0, fill)]


@lru_cache(maxsize=64)
def _fill_mask(shape: str, size: int, inset: float) -> Image.Image:
    """Where the glyph may go: the solid fill, less a margin of a pixel per 16 px all round (mode "1")."""
    big = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    _draw_layer(ImageDraw.Draw(big), shape, size, inset, 255)
    solid = big.reduce(SUPERSAMPLE).point(lambda value: 255 if value >= 250 else 0)
    return solid.filter(ImageFilter.MinFilter(2 * max(1, round(size / 16)) + 1)).convert("1")


def _glyph_centre(shape: str, size: int) -> tuple[float, float]:
    """Where a glyph is centred: the middle, or lower down in the triangle where it is wide."""
    return (size / 2, size * (0.62 if shape == "triangle" else 0.5))


def symbol_bitmap(char: str, height: int) -> Image.Image:
    """`i`, `!` or `|` (pause bars) as bars of whole pixels, `height` tall (mode "1")."""
    bar = max(2, round(height * 0.22))
    gap = max(1, round(bar * 0.5))
    if char == "|":
        image = Image.new("1", (3 * bar, height), 0)
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, bar - 1, height - 1), fill=1)
        draw.rectangle((2 * bar, 0, 3 * bar - 1, height - 1), fill=1)
        return image
    image = Image.new("1", (bar, height), 0)
    draw = ImageDraw.Draw(image)
    if char == "i":
        draw.rectangle((0, 0, bar - 1, bar - 1), fill=1)
        draw.rectangle((0, bar + gap, bar - 1, height - 1), fill=1)
    elif char == "!":
        draw.rectangle((0, 0, bar - 1, height - bar - gap - 1), fill=1)
        draw.rectangle((0, height - bar, bar - 1, height - 1), fill=1)
    else:
        raise ValueError(f"no symbol {char!r}")
    return image


SYMBOLS = ("i", "!", "|")  # drawn as bars by symbol_bitmap; "|" is the pause sign


class Placement(NamedTuple):
    """A glyph bitmap (mode "1"), where its top left corner goes, and its stroke unit in pixels."""

    bitmap: Image.Image
    left: int
    top: int
    unit: int


def _candidates(text: str, size: int) -> list[tuple[Image.Image, int]]:
    """(bitmap, stroke unit) renderings of the text to try, biggest first: bars for a symbol, else pixel digits."""
    if text in SYMBOLS:
        bitmaps = [symbol_bitmap(text, height) for height in range(max(5, round(size * 0.6)), 4, -1)]
        return [(bitmap, max(1, round(bitmap.height * 0.11))) for bitmap in bitmaps]
    ranked = []
    for font in (MEDIUM_FONT, BOLD_FONT, SMALL_FONT):
        rows = len(font["0"])
        # blown-up 3x5 digits look crude, so they rank as smaller than they are
        weight = 0.8 if font is SMALL_FONT else 1.0
        ranked += [(rows * scale * weight, font, scale) for scale in range(1, int(size * 0.5 / rows) + 1)]
    ranked.sort(key=lambda candidate: -candidate[0])
    fonts = [(font, scale) for _, font, scale in ranked] + [(SMALL_FONT, 1)]  # the last resort
    return [(text_bitmap(text, font, scale), scale) for font, scale in fonts]


@lru_cache(maxsize=512)
def place_text(text: str, shape: str, size: int, inset: float = 0.0) -> Placement:
    """The biggest rendering of `text` in the shape's fill (less `inset`), a pixel per 16 px clear (cached)."""
    room = _fill_mask(shape, size, inset)
    cx, cy = _glyph_centre(shape, size)
    candidates = _candidates(text, size)
    for bitmap, unit in candidates:
        for shift in range(max(2, size // 8)):  # a little lower down can be wider (the triangle)
            x, y = round(cx - bitmap.width / 2), round(cy - bitmap.height / 2) + shift
            window = room.crop((x, y, x + bitmap.width, y + bitmap.height))
            if ImageChops.logical_and(bitmap, ImageChops.invert(window)).getbbox() is None:
                return Placement(bitmap, x, y, unit)
    smallest, unit = candidates[-1]  # too small an icon for any to fit: centre the smallest anyway
    return Placement(smallest, round(cx - smallest.width / 2), round(cy - smallest.height / 2), unit)


def _stroke_glyph(draw: ImageDraw.ImageDraw, name: str, size: int, colour: str) -> None:
    """A tick or a cross as round-capped strokes at the supersampled scale."""
    k = SUPERSAMPLE * size
    width = max(2, round(size / 7.5)) * SUPERSAMPLE
    points = [(x * k, y * k) for x, y in VECTOR_GLYPHS[name]]
    strokes = [points] if name == "tick" else [points[:2], points[2:]]
    for stroke in strokes:
        draw.line(stroke, fill=colour, width=width, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=colour)


# ---- drawing -----------------------------------------------------------------------------------------------------

def draw_icon(worst: Level | None, count: int = 0, size: int = 64, snoozed: bool = False,
              acknowledged: bool = False) -> Image.Image:
    """The tray icon: the worst level's shape and colour with the active count (a tick when all is clear)."""
    if snoozed:
        glyph = "|"
    elif count > 0 and worst is not None:
        glyph = count_text(count, size)
    elif worst is None:
        glyph = "tick"
    else:
        glyph = LEVEL_GLYPHS[worst]
    return _draw(worst, glyph, size, snoozed, acknowledged and worst is not None).copy()


@lru_cache(maxsize=256)
def _draw(worst: Level | None, glyph: str, size: int, snoozed: bool, acknowledged: bool) -> Image.Image:
    """The icon for a glyph (count text, a level glyph, "tick" or "|"), cached: callers get a copy."""
    shape = icon_shape(worst, snoozed)
    layers = _layers(worst, snoozed, acknowledged, size)
    big = Image.new("RGBA", (size * SUPERSAMPLE, size * SUPERSAMPLE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(big)
    for inset, colour in layers:
        _draw_layer(draw, shape, size, inset, colour)
    if glyph in VECTOR_GLYPHS:
        _stroke_glyph(draw, glyph, size, GLYPH_COLOUR)
    image = big.reduce(SUPERSAMPLE)
    if glyph not in VECTOR_GLYPHS:
        image.paste(GLYPH_COLOUR, (0, 0, size, size), _glyph_mask(place_text(glyph, shape, size, layers[-1][0]), size))
    return image


def _glyph_mask(placed: Placement, size: int) -> Image.Image:
    """Where the glyph's ink goes: its pixels as they are, or from SMOOTH_FROM px up with the corners rounded
    (by a quarter of a stroke, so gaps between characters stay open)."""
    mask = Image.new("L", (size, size), 0)
    if size < SMOOTH_FROM or placed.unit < 2:
        mask.paste(255, (placed.left, placed.top), placed.bitmap)
        return mask
    k = SUPERSAMPLE
    big = Image.new("L", (size * k, size * k), 0)
    bitmap = placed.bitmap.resize((placed.bitmap.width * k, placed.bitmap.height * k), Image.Resampling.NEAREST)
    big.paste(255, (placed.left * k, placed.top * k), bitmap)
    big = big.filter(ImageFilter.GaussianBlur(placed.unit * k / 4)).point(lambda value: 255 if value >= 128 else 0)
    return big.reduce(k)


def menu_icon(name: str, size: int = 16) -> bytes:
    """A menu row's icon as PNG bytes: a level ("info" ... "critical") or "acknowledged"."""
    if name not in MENU_ICONS:
        raise ValueError(f"unknown menu icon {name!r} (allowed: {', '.join(MENU_ICONS)})")
    return _menu_png(name, size)


@lru_cache(maxsize=32)
def _menu_png(name: str, size: int) -> bytes:
    """The PNG bytes of a menu icon (cached: bytes cannot be changed by the caller)."""
    if name == "acknowledged":
        image = _draw(Level.INFO, "tick", size, False, True)
    else:
        level = Level(name)
        image = _draw(level, LEVEL_GLYPHS[level], size, False, False)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def level_icon_path(level: Level | None) -> Path:
    """The packaged pop-up icon for a level (None: the recovered/all-clear icon)."""
    return ASSETS / f"level-{level.value if level else 'clear'}.png"


def write_level_icons(folder: Path, size: int = 64) -> list[Path]:
    """Write the pop-up icons (one per level with its glyph, and the all-clear tick) as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for level in (*Level, None):
        path = folder / level_icon_path(level).name
        draw_icon(level, 0, size).save(path)
        written.append(path)
    return written


# ---- the contact sheet in docs/ ------------------------------------------------------------------------------------

SHEET_STATES: tuple[tuple[str, Level | None, int, bool, bool], ...] = (
    ("all clear", None, 0, False, False),
    ("info", Level.INFO, 0, False, False),
    ("info, 3", Level.INFO, 3, False, False),
    ("warning", Level.WARNING, 0, False, False),
    ("warning, 7", Level.WARNING, 7, False, False),
    ("warning, 42", Level.WARNING, 42, False, False),
    ("error", Level.ERROR, 0, False, False),
    ("error, 42", Level.ERROR, 42, False, False),
    ("critical", Level.CRITICAL, 0, False, False),
    ("critical, 8", Level.CRITICAL, 8, False, False),
    ("critical, 150", Level.CRITICAL, 150, False, False),
    ("acknowledged info, 2", Level.INFO, 2, False, True),
    ("acknowledged warning, 2", Level.WARNING, 2, False, True),
    ("acknowledged error, 5", Level.ERROR, 5, False, True),
    ("acknowledged critical, 1", Level.CRITICAL, 1, False, True),
    ("snoozed", Level.ERROR, 4, True, False),
)
SHEET_PANELS = ("#ffffff", "#f0f0f0", "#303030", "#000000")


def contact_sheet(sizes: Sequence[int] = (16, 22, 32, 64), panels: Sequence[str] = SHEET_PANELS,
                  zoom: int = 2) -> Image.Image:
    """Every state (rows) at every size on every panel (columns), then the menu icons; pixels shown `zoom` times."""
    gap, label = 8, 200
    row_height = max(sizes) + gap
    block = sum(sizes) + gap * (len(sizes) + 1)
    rows = len(SHEET_STATES) + 2  # a header, the states, the menu icons
    sheet = Image.new("RGB", (label + block * len(panels) * zoom, row_height * rows * zoom), "#ffffff")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)

    def put(icon: Image.Image, left: int, row: int, panel: str) -> None:
        """An icon at 1:1 on a patch of panel, blown up `zoom` times, at (left, row) of the unzoomed grid."""
        patch = Image.new("RGBA", icon.size, panel)
        patch.alpha_composite(icon)
        top = row * row_height + (row_height - icon.height) // 2
        sheet.paste(patch.convert("RGB").resize((icon.width * zoom, icon.height * zoom), Image.Resampling.NEAREST),
                    (label + left * zoom, top * zoom))

    for column, panel in enumerate(panels):
        left = column * block
        draw.rectangle((label + left * zoom, row_height * zoom, label + (left + block) * zoom - 1, sheet.height),
                       fill=panel)
        heading = f"panel {panel}: {' '.join(map(str, sizes))} px"
        draw.text((label + (left + gap) * zoom, row_height * zoom // 2), heading, fill="#000000", font=font,
                  anchor="lm")
        for row, (_, worst, count, snoozed, acknowledged) in enumerate(SHEET_STATES, start=1):
            x = left + gap
            for size in sizes:
                put(draw_icon(worst, count, size, snoozed, acknowledged), x, row, panel)
                x += size + gap
        x = left + gap
        for name in MENU_ICONS:
            put(Image.open(io.BytesIO(menu_icon(name))).convert("RGBA"), x, rows - 1, panel)
            x += 16 + gap
    names = [name for name, *_ in SHEET_STATES] + ["menu rows (16 px)"]
    for row, name in enumerate(names, start=1):
        draw.text((gap, (row * row_height + row_height // 2) * zoom), name, fill="#000000", font=font, anchor="lm")
    return sheet


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sheet"]:
        target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/icons.png")
        contact_sheet().save(target, optimize=True)
        print(target)
    else:
        print("\n".join(str(path) for path in write_level_icons(Path(sys.argv[1]) if len(sys.argv) > 1 else ASSETS)))

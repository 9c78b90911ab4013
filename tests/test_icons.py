"""The tray, menu and pop-up icons: a shape per level, >= 3:1 contrast on light and dark panels, legible counts.

Contrast is WCAG's (relative luminance, (L1 + 0.05) / (L2 + 0.05)) and computed here from the drawn pixels,
independently of the module's own constants.
"""
from __future__ import annotations

import io
from itertools import combinations

import pytest
from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFilter

from tray_alerts import icons
from tray_alerts.icons import (ACKNOWLEDGED_COLOURS, CLEAR_COLOUR, ICON_COLOURS, MENU_ICONS, RIM_COLOUR,
                               SNOOZED_COLOUR, count_text, draw_icon, icon_colour, icon_shape, level_icon_path,
                               menu_icon, place_text, text_bitmap, write_level_icons)
from tray_alerts.model import Level

SIZES = (16, 22, 24, 32, 48, 64)
TRAY_SIZES = (16, 22, 24, 32)  # the sizes a panel shows an icon at, where the contrast must hold
LIGHT_PANELS = ("#ffffff", "#f0f0f0")
DARK_PANELS = ("#000000", "#2b2b2b", "#303030")
PANELS = LIGHT_PANELS + DARK_PANELS
MIN_CONTRAST = 3.0
WHITE = (255, 255, 255)
# every state the tray can show: (worst, count, snoozed, acknowledged)
STATES = [(None, 0, False, False),
          *[(level, count, False, False) for level in Level for count in (0, 5)],
          *[(level, 2, False, True) for level in Level],
          (Level.ERROR, 4, True, False)]
STATE_IDS = [f"{worst or 'clear'}-{count}{'-snoozed' if snoozed else ''}{'-ack' if ack else ''}"
             for worst, count, snoozed, ack in STATES]


# ---- measuring --------------------------------------------------------------------------------------------

def luminance(rgb) -> float:
    """WCAG relative luminance of an (r, g, b[, a]) tuple or a #rrggbb string."""
    if isinstance(rgb, str):
        rgb = ImageColor.getrgb(rgb)

    def channel(value: int) -> float:
        value /= 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4
    r, g, b = rgb[:3]
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a, b) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def on_panel(image: Image.Image, panel: str) -> Image.Image:
    """The icon as it shows on a panel of that colour (RGB)."""
    background = Image.new("RGBA", image.size, panel)
    background.alpha_composite(image)
    return background.convert("RGB")


def silhouette(image: Image.Image) -> Image.Image:
    """The shape's mask: pixels at least half opaque (mode "1")."""
    return image.getchannel("A").point(lambda alpha: 255 if alpha >= 128 else 0).convert("1")


def count_set(mask: Image.Image) -> int:
    """How many pixels of the mask are set."""
    histogram = mask.convert("L").histogram()
    return sum(histogram) - histogram[0]


def edge_contrast(image: Image.Image, panel: str) -> float:
    """The worst, over the silhouette's edge pixels, of the best contrast with the panel found within the icon's
    outer band (a pixel per 16 px, at least 2): how well the shape stands out all the way round."""
    size = image.width
    shown = on_panel(image, panel)
    inside = silhouette(image)
    band = max(2, round(size / 16))
    # an edge pixel is in the shape with a 4-neighbour (or the image border) outside it
    padded = Image.new("1", (size + 2, size + 2), 0)
    padded.paste(inside, (1, 1))
    worst = float("inf")
    for y in range(size):
        for x in range(size):
            if not inside.getpixel((x, y)):
                continue
            if all(padded.getpixel((x + 1 + dx, y + 1 + dy)) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))):
                continue
            best = max(contrast(shown.getpixel((u, v)), panel)
                       for u in range(max(0, x - band), min(size, x + band + 1))
                       for v in range(max(0, y - band), min(size, y + band + 1)) if inside.getpixel((u, v)))
            worst = min(worst, best)
    return worst


def depth(image: Image.Image, pixels: int) -> Image.Image:
    """The silhouette less its outer `pixels` (mode "1")."""
    mask = silhouette(image)
    for _ in range(pixels):
        mask = mask.filter(ImageFilter.MinFilter(3))
    return mask


def rim_band(worst, snoozed: bool, acknowledged: bool, size: int) -> int:
    """How deep critical's rim (a dark edge and a white ring) reaches: within 3/32 of the size; else nothing."""
    return -(-3 * size // 32) if worst is Level.CRITICAL and not snoozed and not acknowledged else 0


def ink(image: Image.Image, band: int = 0) -> Image.Image:
    """The glyph's pixels: opaque, (nearly) white, and not part of a white ring reaching the outer `band` (mode "1")."""
    rgb, alpha = image.convert("RGB"), image.getchannel("A")
    white = rgb.convert("L").point(lambda value: 255 if value >= 235 else 0)
    found = ImageChops.logical_and(white.convert("1"), alpha.point(lambda a: 255 if a == 255 else 0).convert("1"))
    if band:
        outer = ImageChops.logical_and(found, ImageChops.invert(depth(image, band)))
        for x, y in [(x, y) for y in range(image.height) for x in range(image.width) if outer.getpixel((x, y))]:
            if found.getpixel((x, y)):
                ImageDraw.floodfill(found, (x, y), 0)
    return found


def glyph_of(worst, count, size, snoozed=False, acknowledged=False) -> Image.Image:
    """The glyph drawn on that state's icon."""
    image = draw_icon(worst, count, size, snoozed, acknowledged)
    return ink(image, rim_band(worst, snoozed, acknowledged, size))


def identical(a: Image.Image, b: Image.Image) -> bool:
    """Same size and every channel of every pixel equal (alpha included)."""
    return a.size == b.size and ImageChops.difference(a, b).getbbox(alpha_only=False) is None


def assert_ringed_by_fill(image: Image.Image, glyph: Image.Image, fill, margin: int, smooth: bool = False) -> None:
    """Every pixel within `margin` of the glyph is the glyph or the solid fill (or, where the glyph is smoothed, a
    blend of the two short of white): it touches neither the panel nor critical's rim."""
    fill = tuple(fill[:3])
    around = ImageChops.logical_xor(glyph.filter(ImageFilter.MaxFilter(2 * margin + 1)), glyph)
    for y in range(image.height):
        for x in range(image.width):
            if not around.getpixel((x, y)):
                continue
            pixel = image.getpixel((x, y))
            assert pixel[3] == 255, f"the glyph comes within {margin} px of the edge at {(x, y)}"
            if pixel[:3] == fill:
                continue
            blend = (smooth or image.width >= icons.SMOOTH_FROM) and luminance(pixel) < 0.8 and all(
                min(f, 255) - 2 <= c <= 255 for c, f in zip(pixel[:3], fill))
            assert blend, f"{pixel[:3]} next to the glyph at {(x, y)} is neither glyph nor fill {fill}"


def components(mask: Image.Image) -> int:
    """How many 8-connected blobs the mask has."""
    seen: set[tuple[int, int]] = set()
    blobs = 0
    for y in range(mask.height):
        for x in range(mask.width):
            if (x, y) in seen or not mask.getpixel((x, y)):
                continue
            blobs += 1
            stack = [(x, y)]
            seen.add((x, y))
            while stack:
                px, py = stack.pop()
                for dx in (-1, 0, 1):
                    for dy in (-1, 0, 1):
                        q = (px + dx, py + dy)
                        if (0 <= q[0] < mask.width and 0 <= q[1] < mask.height and q not in seen
                                and mask.getpixel(q)):
                            seen.add(q)
                            stack.append(q)
    return blobs


def fill_of(worst, snoozed=False, acknowledged=False) -> str:
    return icon_colour(worst, snoozed, acknowledged)


def saturation(colour: str) -> float:
    r, g, b = ImageColor.getrgb(colour)
    return (max(r, g, b) - min(r, g, b)) / max(r, g, b)


# ---- the shapes: levels differ by more than colour --------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_every_pair_of_levels_differs_in_silhouette(size):
    # warning and error are 1.26:1 apart in luminance to a deuteranope: the outline has to tell them apart
    masks = {level: silhouette(draw_icon(level, 0, size)) for level in Level}
    for a, b in combinations(Level, 2):
        differing = count_set(ImageChops.logical_xor(masks[a], masks[b]))
        assert differing >= 0.06 * size * size, f"{a} and {b} at {size} px differ in {differing} pixels only"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("level", list(Level))
def test_the_silhouette_is_the_levels_whatever_the_count_or_acknowledgement(size, level):
    shape = silhouette(draw_icon(level, 0, size))
    for count, acknowledged in ((1, False), (42, False), (150, False), (3, True)):
        other = silhouette(draw_icon(level, count, size, acknowledged=acknowledged))
        assert count_set(ImageChops.logical_xor(shape, other)) == 0, (count, acknowledged)


def test_shapes_per_state():
    assert {level: icon_shape(level) for level in Level} == {
        Level.INFO: "circle", Level.WARNING: "triangle", Level.ERROR: "square", Level.CRITICAL: "octagon"}
    assert icon_shape(None) == "circle"
    assert icon_shape(Level.CRITICAL, snoozed=True) == "circle"


@pytest.mark.parametrize("size", SIZES)
def test_levels_without_a_count_show_their_own_glyph(size):
    images = [draw_icon(level, 0, size) for level in Level]
    glyphs = [ink(image) for image in images]
    assert all(count_set(glyph) >= 4 for glyph in glyphs)
    # warning and critical both say "!", in different shapes; info says "i", error "x"
    assert count_set(ImageChops.logical_xor(glyphs[0], glyphs[1])) > 0
    assert count_set(ImageChops.logical_xor(glyphs[2], glyphs[1])) > 0


# ---- size and mode ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", STATES, ids=STATE_IDS)
def test_draw_icon_is_rgba_of_the_requested_size_with_clear_corners(size, state):
    image = draw_icon(state[0], state[1], size, state[2], state[3])
    assert image.mode == "RGBA" and image.size == (size, size)
    for corner in ((0, 0), (size - 1, 0), (0, size - 1), (size - 1, size - 1)):
        assert image.getpixel(corner)[3] < 128, f"corner {corner} is part of the shape"
    assert image.getpixel((size // 2, size * 3 // 4))[3] == 255, "the shape is solid inside"


def test_draw_icon_hands_out_a_copy_the_caller_may_change():
    first = draw_icon(Level.ERROR, 3, 32)
    first.paste((0, 0, 0, 0), (0, 0, 32, 32))
    assert draw_icon(Level.ERROR, 3, 32).getpixel((16, 16))[3] == 255


# ---- contrast against the panel ---------------------------------------------------------------------------

@pytest.mark.parametrize("panel", PANELS)
@pytest.mark.parametrize("size", TRAY_SIZES)
@pytest.mark.parametrize("state", STATES, ids=STATE_IDS)
def test_the_shape_stands_out_3_to_1_on_light_and_dark_panels(state, size, panel):
    image = draw_icon(state[0], state[1], size, state[2], state[3])
    found = edge_contrast(image, panel)
    assert found >= MIN_CONTRAST, f"{found:.2f}:1 at the edge on {panel}"


@pytest.mark.parametrize("panel", PANELS)
def test_fills_and_rim_contrast_with_every_panel(panel):
    # every fill carries the shape on its own, except critical's dark red: its white rim does on dark panels
    fills = [CLEAR_COLOUR, SNOOZED_COLOUR, *ACKNOWLEDGED_COLOURS.values(),
             *(ICON_COLOURS[level] for level in Level if level is not Level.CRITICAL)]
    for fill in fills:
        assert contrast(fill, panel) >= MIN_CONTRAST + 0.05, f"{fill} on {panel}: {contrast(fill, panel):.2f}"
    critical_edge = ICON_COLOURS[Level.CRITICAL] if panel in LIGHT_PANELS else RIM_COLOUR
    assert contrast(critical_edge, panel) >= 7, f"critical on {panel}: {contrast(critical_edge, panel):.2f}"


def test_critical_has_a_white_rim_that_shows_on_dark_panels():
    image = on_panel(draw_icon(Level.CRITICAL, 0, 32), "#303030")
    # along the middle row from the left: (a dark edge,) the white rim, then the dark red fill
    row = [image.getpixel((x, 16)) for x in range(8)]
    assert any(min(pixel) >= 235 for pixel in row), row
    assert contrast(row[-1], ICON_COLOURS[Level.CRITICAL]) < 1.1


# ---- contrast of the glyph on its fill ---------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", STATES, ids=STATE_IDS)
def test_the_glyph_is_white_on_its_fill_at_3_to_1_or_more(size, state):
    worst, count, snoozed, acknowledged = state
    image = draw_icon(worst, count, size, snoozed, acknowledged)
    band = rim_band(worst, snoozed, acknowledged, size)
    glyph = ink(image, band)
    assert count_set(glyph) >= 4, "there is a glyph"
    # the fill as drawn: the commonest colour of the solid pixels
    rgb = image.convert("RGB")
    solid = [rgb.getpixel((x, y)) for y in range(size) for x in range(size) if image.getpixel((x, y))[3] == 255]
    fill = max(set(solid), key=solid.count)
    assert fill == ImageColor.getrgb(icon_colour(worst, snoozed, acknowledged))
    brightest = max((rgb.getpixel((x, y)) for y in range(size) for x in range(size) if glyph.getpixel((x, y))),
                    key=luminance)
    assert contrast(brightest, fill) >= 3.5, f"{contrast(brightest, fill):.2f}:1"
    # and it sits on the fill: never on the panel, never touching critical's rim
    stroked = count == 0 and not snoozed and worst in (None, Level.ERROR)  # the tick and the cross are smooth
    assert_ringed_by_fill(image, glyph, fill, 1, smooth=stroked)


@pytest.mark.parametrize("size", [16, 22, 24, 32])
@pytest.mark.parametrize("level", list(Level))
def test_count_digits_are_pure_white_on_the_pure_fill_at_small_sizes(size, level):
    # below 40 px the digits are pasted on whole pixels: no blending with the fill at all
    image = draw_icon(level, 7, size).convert("RGB")
    bitmap, x, y, _ = place_text(count_text(7, size), icon_shape(level), size, 1.0 if level is Level.CRITICAL else 0.0)
    colours = {image.getpixel((x + dx, y + dy)) for dx in range(bitmap.width) for dy in range(bitmap.height)}
    assert colours == {WHITE, ImageColor.getrgb(fill_of(level))}


# ---- the count --------------------------------------------------------------------------------------------

def test_count_text_keeps_to_two_characters_up_to_22_px():
    assert [count_text(n, 16) for n in (0, 1, 9, 10, 99, 100, 5000)] == ["", "1", "9", "9+", "9+", "9+", "9+"]
    assert count_text(15, 22) == "9+"
    assert [count_text(n, 24) for n in (9, 10, 99, 100)] == ["9", "10", "99", "99+"]
    assert count_text(123, 64) == "99+"


@pytest.mark.parametrize("level", list(Level))
def test_each_count_at_16_px_draws_a_different_bitmap(level):
    # 1 ... 9 and "9+": ten pictures, each at least 3 pixels away from every other
    glyphs = {count: glyph_of(level, count, 16) for count in range(1, 11)}
    for a, b in combinations(glyphs, 2):
        assert count_set(ImageChops.logical_xor(glyphs[a], glyphs[b])) >= 3, f"{a} and {b} look alike at 16 px"
    for count in (11, 99, 100, 12_345):
        assert count_set(ImageChops.logical_xor(glyph_of(level, count, 16), glyphs[10])) == 0


@pytest.mark.parametrize("size", [24, 32, 48, 64])
def test_99_plus_and_88_plus_draw_differently(size):
    assert count_text(150, size) == "99+"
    for level in Level:
        a, b = glyph_of(level, 99, size), glyph_of(level, 88, size)
        assert count_set(ImageChops.logical_xor(a, b)) >= 4, f"99 and 88 alike for {level} at {size} px"
    for font, scale in ((icons.MEDIUM_FONT, 1), (icons.BOLD_FONT, 1), (icons.SMALL_FONT, 1), (icons.BOLD_FONT, 3)):
        nines, eights = text_bitmap("99+", font, scale), text_bitmap("88+", font, scale)
        assert nines.size == eights.size
        assert count_set(ImageChops.logical_xor(nines, eights)) >= 2 * scale * scale


@pytest.mark.parametrize("font", [icons.MEDIUM_FONT, icons.BOLD_FONT], ids=["6x10", "5x7"])
def test_the_bold_digits_differ_from_each_other_by_at_least_two_pixels(font):
    for a, b in combinations("0123456789", 2):
        first, second = text_bitmap(a, font), text_bitmap(b, font)
        width = max(first.width, second.width)
        canvas = [Image.new("1", (width, first.height), 0) for _ in range(2)]
        canvas[0].paste(first, (width - first.width, 0))  # right-aligned: "1" is narrow
        canvas[1].paste(second, (width - second.width, 0))
        assert count_set(ImageChops.logical_xor(*canvas)) >= 2, f"{a} and {b}"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("count", [1, 7, 10, 42, 88, 99, 150])
def test_digits_are_not_merged_and_fit_inside_the_fill(size, level, count):
    text = count_text(count, size)
    image = draw_icon(level, count, size)
    band = rim_band(level, False, False, size)
    glyph = ink(image, band)
    assert components(glyph) == len(text), f"{text!r} at {size} px: the characters run together"
    # the glyph keeps a pixel per 16 px of fill between itself and the shape's edge (or critical's rim)
    assert_ringed_by_fill(image, glyph, ImageColor.getrgb(icon_colour(level)), max(1, round(size / 16)))


@pytest.mark.parametrize("size", SIZES)
def test_the_count_is_big_enough_to_read(size):
    # at least 5 px tall (7 px from 16 px on, but for the critical rim and the triangle), up to half the icon
    for level in Level:
        for count in (3, 42):
            box = glyph_of(level, count, size).getbbox()
            assert box is not None
            height = box[3] - box[1]
            assert 5 <= height <= size / 2, (level, count, height)
            if level in (Level.INFO, Level.ERROR):
                assert height >= 7, (level, count, height)


# ---- acknowledged and snoozed -----------------------------------------------------------------------------

@pytest.mark.parametrize("level", list(Level))
def test_acknowledged_is_a_calmer_version_of_the_level(level):
    loud, calm = draw_icon(level, 3, 32), draw_icon(level, 3, 32, acknowledged=True)
    assert not identical(loud, calm)
    assert saturation(ACKNOWLEDGED_COLOURS[level]) < 0.75 * saturation(ICON_COLOURS[level])
    assert icon_colour(level, acknowledged=True) == ACKNOWLEDGED_COLOURS[level]
    same_place = ImageChops.logical_xor(glyph_of(level, 3, 32), glyph_of(level, 3, 32, acknowledged=True))
    assert count_set(same_place) == 0 or level is Level.CRITICAL, "the same count in the same place"


def test_acknowledged_means_nothing_when_all_is_clear():
    assert identical(draw_icon(None, 0, 32, acknowledged=True), draw_icon(None, 0, 32))


@pytest.mark.parametrize("size", SIZES)
def test_snoozed_is_grey_pause_bars_whatever_the_level_or_count(size):
    snoozed = draw_icon(Level.CRITICAL, 12, size, snoozed=True)
    for worst, count in ((None, 0), (Level.INFO, 1), (Level.ERROR, 300)):
        assert identical(draw_icon(worst, count, size, snoozed=True), snoozed)
    assert icon_colour(Level.CRITICAL, snoozed=True) == SNOOZED_COLOUR
    assert saturation(SNOOZED_COLOUR) < 0.15
    bars = ink(snoozed)
    assert components(bars) == 2
    left, top, right, bottom = bars.getbbox()
    assert bottom - top > right - left, "two upright bars"


def test_clear_is_a_green_disc_with_a_tick():
    image = draw_icon(None, 0, 32)
    r, g, b = ImageColor.getrgb(CLEAR_COLOUR)
    assert g > r + 60 and g > b + 30, "green"
    tick = ink(image)
    assert components(tick) == 1
    left, top, right, bottom = tick.getbbox()
    assert right - left > bottom - top, "a tick is wider than tall"


# ---- menu icons --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MENU_ICONS)
@pytest.mark.parametrize("size", [16, 24])
def test_menu_icon_is_a_png_of_the_size(name, size):
    data = menu_icon(name, size)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.format == "PNG" and image.size == (size, size) and image.mode == "RGBA"
        if name != "acknowledged":
            expected = draw_icon(Level(name), 0, size)
            assert identical(image, expected)


def test_menu_icons_differ_and_acknowledged_is_a_muted_tick():
    pictures = {name: Image.open(io.BytesIO(menu_icon(name))).convert("RGBA") for name in MENU_ICONS}
    for a, b in combinations(MENU_ICONS, 2):
        assert not identical(pictures[a], pictures[b]), (a, b)
    acknowledged = pictures["acknowledged"]
    assert acknowledged.getpixel((8, 2))[:3] == ImageColor.getrgb(icons.ACKNOWLEDGED_COLOUR)
    assert components(ink(acknowledged)) == 1
    for panel in PANELS:
        assert edge_contrast(acknowledged, panel) >= MIN_CONTRAST


def test_menu_icon_rejects_unknown_names():
    with pytest.raises(ValueError, match="acknowledged"):
        menu_icon("clear")


# ---- the pop-up icons --------------------------------------------------------------------------------------

def test_write_level_icons_writes_five_pngs_pillow_can_open(tmp_path):
    folder = tmp_path / "icons" / "nested"  # created on demand
    written = write_level_icons(folder)
    assert sorted(path.name for path in written) == sorted(
        ["level-info.png", "level-warning.png", "level-error.png", "level-critical.png", "level-clear.png"])
    for level, path in zip((*Level, None), written):
        assert path.parent == folder and path.name == level_icon_path(level).name
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG" and image.size == (64, 64) and image.mode == "RGBA"
            # PNG is lossless: the file holds exactly the icon drawn for that level, with its glyph (no count)
            assert identical(image, draw_icon(level, 0, 64))


def test_write_level_icons_honours_the_size_and_overwrites(tmp_path):
    write_level_icons(tmp_path, size=64)
    written = write_level_icons(tmp_path, size=32)
    assert len(list(tmp_path.glob("*.png"))) == 5
    for path in written:
        with Image.open(path) as image:
            assert image.size == (32, 32)


def test_the_packaged_icons_are_the_current_drawings():
    assert level_icon_path(Level.WARNING).name == "level-warning.png"
    assert level_icon_path(None).name == "level-clear.png"
    for level in (*Level, None):
        path = level_icon_path(level)
        assert path.is_file(), f"{path} is packaged"
        with Image.open(path) as image:
            fresh = identical(image.convert("RGBA"), draw_icon(level, 0, image.width))
            assert fresh, f"{path.name} is stale: run python -m tray_alerts.icons"


def test_contact_sheet_has_a_row_per_state_and_a_column_block_per_panel():
    sheet = icons.contact_sheet(sizes=(16, 22), panels=("#ffffff", "#303030"), zoom=1)
    rows = len(icons.SHEET_STATES) + 2
    assert sheet.height == rows * (22 + 8)
    # the dark block shows the dark panel colour between its icons
    assert sheet.getpixel((sheet.width - 2, sheet.height - 2)) == ImageColor.getrgb("#303030")

"""The tray and pop-up icons: size, mode, the level's colour, the count drawn legibly, the level PNGs."""
from __future__ import annotations

import pytest
from PIL import Image, ImageChops, ImageColor

from tray_alerts.icons import (CLEAR_COLOUR, ICON_COLOURS, SNOOZED_COLOUR, draw_icon, icon_colour,
                               level_icon_path, write_level_icons)
from tray_alerts.model import Level

SIZES = (16, 22, 24, 32, 64)
TOLERANCE = 32  # per channel; the palette's colours are much further apart than this
OPAQUE = 240  # Lanczos ringing leaves a few interior pixels at alpha 250-254
EXPECTED = {  # the colours as a person would name them, independent of the module's constants
    None: (0x2E, 0xB6, 0x7D),  # green
    Level.INFO: (0x2F, 0x80, 0xED),  # blue
    Level.WARNING: (0xD9, 0x77, 0x06),  # deep amber
    Level.ERROR: (0xE0, 0x3E, 0x2D),  # red
    Level.CRITICAL: (0x8B, 0x00, 0x00),  # dark red
}
GREY = (0x8A, 0x8F, 0x98)
PALETTE = {**{str(level): colour for level, colour in EXPECTED.items()}, "snoozed": GREY}


def pixel(image: Image.Image, fx: float, fy: float) -> tuple[int, int, int, int]:
    """The pixel at a fraction of the width and height."""
    return image.getpixel((int(image.width * fx), int(image.height * fy)))


def distance(a, b) -> int:
    return max(abs(x - y) for x, y in zip(a[:3], b[:3]))


def assert_colour(found, expected, name: str) -> None:
    assert found[3] >= OPAQUE, f"{name}: sampled pixel is not opaque: {found}"
    assert distance(found, expected) <= TOLERANCE, f"{name}: {found[:3]} is not {expected}"
    nearest = min(PALETTE, key=lambda key: distance(found, PALETTE[key]))
    assert PALETTE[nearest] == expected, f"{name}: {found[:3]} looks like {nearest}"


def luminance(rgb) -> float:
    """WCAG relative luminance."""
    def channel(value: int) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
    r, g, b = rgb[:3]
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a, b) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def centre_box(image: Image.Image, fraction: float = 0.5) -> list[tuple[int, int, int, int]]:
    """The pixels of the central square covering `fraction` of the width."""
    lo = int(image.width * (0.5 - fraction / 2))
    hi = int(image.width * (0.5 + fraction / 2))
    return [image.getpixel((x, y)) for x in range(lo, hi) for y in range(lo, hi)]


def rgb_differs(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is not None


# ---- icon_colour -----------------------------------------------------------------------------------------

def test_icon_colour_is_green_when_clear_the_level_colour_otherwise_and_grey_while_snoozed():
    assert icon_colour(None) == CLEAR_COLOUR
    for level in Level:
        assert icon_colour(level) == ICON_COLOURS[level]
        assert icon_colour(level, snoozed=True) == SNOOZED_COLOUR
    assert icon_colour(None, snoozed=True) == SNOOZED_COLOUR
    assert {ImageColor.getrgb(icon_colour(level)) for level in EXPECTED} == set(EXPECTED.values())
    assert ImageColor.getrgb(SNOOZED_COLOUR) == GREY


# ---- size, mode, colour ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("worst", [None, *Level])
def test_draw_icon_is_rgba_of_the_requested_size(size, worst):
    image = draw_icon(worst, 0 if worst is None else 3, size)
    assert image.mode == "RGBA"
    assert image.size == (size, size)
    assert pixel(image, 0, 0)[3] == 0, "the corners are transparent (a disc, not a square)"
    assert pixel(image, 0.5, 0.5)[3] >= OPAQUE, "the centre is opaque"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("worst", [None, *Level])
def test_disc_colour_with_no_count(size, worst):
    # the tick sits on the centre itself (by design), so sample the disc just above it
    image = draw_icon(worst, 0, size)
    assert_colour(pixel(image, 0.5, 0.3), EXPECTED[worst], f"{worst} at {size} px")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("count", [1, 42, 100])
def test_disc_colour_around_the_count(size, level, count):
    # the digits fill the centre; the disc shows between the digits and the white rim
    image = draw_icon(level, count, size)
    assert_colour(pixel(image, 0.5, 0.19), EXPECTED[level], f"{level} {count} at {size} px")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("worst", [None, Level.CRITICAL])
def test_snoozed_icon_is_grey_whatever_the_level(size, worst):
    image = draw_icon(worst, 0, size, snoozed=True)
    assert_colour(pixel(image, 0.5, 0.5), GREY, f"snoozed {worst} at {size} px")  # no tick while snoozed
    assert_colour(pixel(image, 0.5, 0.3), GREY, f"snoozed {worst} at {size} px")


def test_clear_icon_has_a_white_tick_and_the_snoozed_one_has_none():
    clear = draw_icon(None, 0, 64)
    assert min(pixel(clear, 0.6, 0.45)[:3]) >= 230, "a point on the tick's long stroke is white"
    snoozed = draw_icon(None, 0, 64, snoozed=True)
    assert not any(min(p[:3]) >= 230 for p in centre_box(snoozed)), "a snoozed, clear icon is plain grey"


# ---- the count -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("count", [1, 7, 42, 99])
def test_count_is_drawn_in_white_near_the_centre(size, count):
    with_count = draw_icon(Level.ERROR, count, size)
    assert rgb_differs(with_count, draw_icon(Level.ERROR, 0, size))
    # snoozed has no tick, so the grey disc alone is a clean background to compare against
    assert rgb_differs(draw_icon(Level.ERROR, count, size, snoozed=True), draw_icon(Level.ERROR, 0, size, True))
    white = [p for p in centre_box(with_count) if min(p[:3]) >= 235 and p[3] >= OPAQUE]
    assert white, f"no white digit pixels near the centre of the {size} px icon for {count}"


@pytest.mark.parametrize("size", [16, 64])
def test_different_counts_draw_different_digits(size):
    images = [draw_icon(Level.WARNING, count, size) for count in (1, 2, 7, 42, 99)]
    for i, first in enumerate(images):
        for second in images[i + 1:]:
            assert rgb_differs(first, second)


@pytest.mark.parametrize("size", SIZES)
def test_counts_of_100_and_more_show_99_plus(size):
    hundred = draw_icon(Level.CRITICAL, 100, size)
    assert hundred.size == (size, size)
    huge = draw_icon(Level.CRITICAL, 123_456, size)
    assert not rgb_differs(hundred, huge), "every count from 100 up shows the same `99+`"
    assert rgb_differs(hundred, draw_icon(Level.CRITICAL, 99, size)), "`99+` is not `99`"
    assert any(min(p[:3]) >= 235 for p in centre_box(hundred))


# ---- legibility at 16 px -----------------------------------------------------------------------------------

@pytest.mark.parametrize("worst", [None, *Level])
def test_disc_covers_most_of_a_16_px_icon(worst):
    image = draw_icon(worst, 5, 16)
    opaque = sum(1 for x in range(16) for y in range(16) if image.getpixel((x, y))[3] >= 128)
    assert opaque / 256 >= 0.55, f"the disc covers only {opaque}/256 pixels"
    assert all(p[3] >= OPAQUE for p in centre_box(image, 0.5)), "the central half (8x8 px) is solid"


@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("count", [3, 42, 100])
def test_digit_keeps_its_contrast_at_16_px(level, count):
    image = draw_icon(level, count, 16)
    disc = EXPECTED[level]
    centre = centre_box(image)
    brightest = max(centre, key=luminance)
    best_possible = contrast((255, 255, 255), disc)
    # shrinking must not smear the digit into the disc: it reaches (nearly) pure white ...
    assert contrast(brightest, disc) >= 0.9 * best_possible
    # ... over more than a speck, without flooding the whole centre
    lighter = sum(1 for p in centre if contrast(p, disc) >= 1.5)
    assert 8 <= lighter <= 0.8 * len(centre), f"{lighter} of {len(centre)} centre pixels are digit"
    # and the disc itself stays visible next to it
    assert sum(1 for p in centre if distance(p, disc) <= TOLERANCE) >= 4


@pytest.mark.parametrize("level, minimum", [(Level.INFO, 3.0), (Level.WARNING, 3.0), (Level.ERROR, 4.0),
                                            (Level.CRITICAL, 7.0)])
def test_white_digit_contrast_is_high_on_the_serious_levels_at_16_px(level, minimum):
    image = draw_icon(level, 8, 16)
    brightest = max(centre_box(image), key=luminance)
    assert contrast(brightest, EXPECTED[level]) >= minimum


# ---- the pop-up icons --------------------------------------------------------------------------------------

def test_write_level_icons_writes_five_pngs_pillow_can_open(tmp_path):
    folder = tmp_path / "icons" / "nested"  # created on demand
    written = write_level_icons(folder)
    assert len(written) == 5
    assert sorted(path.name for path in written) == sorted(
        ["level-info.png", "level-warning.png", "level-error.png", "level-critical.png", "level-clear.png"])
    for level, path in zip((*Level, None), written):
        assert path.parent == folder and path.name == level_icon_path(level).name
        with Image.open(path) as image:
            image.load()
            assert image.format == "PNG"
            assert image.size == (64, 64)
            assert image.mode == "RGBA"
            # PNG is lossless: the file holds exactly the icon drawn for that level
            assert not rgb_differs(image, draw_icon(level, 1 if level else 0, 64))
            sample = image.getpixel((32, int(64 * 0.19) if level else int(64 * 0.3)))
            assert_colour(sample, EXPECTED[level], path.name)


def test_write_level_icons_honours_the_size_and_overwrites(tmp_path):
    write_level_icons(tmp_path, size=64)
    written = write_level_icons(tmp_path, size=32)
    assert len(list(tmp_path.glob("*.png"))) == 5
    for path in written:
        with Image.open(path) as image:
            assert image.size == (32, 32)


def test_level_icon_path_names_the_packaged_icons():
    assert level_icon_path(Level.WARNING).name == "level-warning.png"
    assert level_icon_path(None).name == "level-clear.png"
    for level in (*Level, None):
        assert level_icon_path(level).is_file(), f"{level_icon_path(level)} is packaged"

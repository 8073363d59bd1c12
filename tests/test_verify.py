"""Known-answer tests for `cropnet.verify`: exact corners for true crops, rejections for near misses."""

from __future__ import annotations

import io
import math
from functools import cache

import cv2
import numpy as np
import pytest
from conftest import REPO, grainy_gradient, textured_photo
from PIL import Image

from cropnet.images import load_image
from cropnet.verify import Match, PairMatch, VerifyConfig, locate, match_pair

DATA = REPO / "data"
COFFEE_CORNER = (212, 104)  # where data/coffee-crop.jpg was cut from data/coffee.jpg


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Save as JPEG at `quality` and decode again, as RGB (a grey input is expanded first)."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def blurred_noise(seed: int, width: int, height: int, channels: int = 3) -> np.ndarray:
    """A camera-like image: random noise smoothed with a Gaussian of sigma 1.5, contrast restored,
    over a gentle random brightness field."""
    rng = np.random.default_rng(seed)
    shape = (height, width, channels) if channels > 1 else (height, width)
    noise = rng.integers(0, 256, size=shape, dtype=np.uint8).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 1.5)
    coarse = rng.integers(60, 196, size=(4, 5), dtype=np.uint8).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    if channels > 1:
        field = field[:, :, None]
    return np.clip(field + 3.0 * (fine - 127.5), 0, 255).astype(np.uint8)


@cache
def base_image(kind: str) -> np.ndarray:
    """The 400 x 300 originals of the offset tests (cached: several tests share them; never written to)."""
    image = textured_photo(5, 400, 300) if kind == "grain" else blurred_noise(11, 400, 300)
    image.setflags(write=False)
    return image


def cut(image: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    assert 0 <= x and 0 <= y and x + width <= image.shape[1] and y + height <= image.shape[0]
    return np.ascontiguousarray(image[y:y + height, x:x + width])


def assert_found_at(match: Match, corner: tuple[int, int]) -> None:
    assert match.found, f"not found (score {match.score:.3f}), expected at {corner}"
    assert match.top_left == corner, f"found at {match.top_left}, expected {corner}"


# ---------------------------------------------------------------- known offsets

BOXES = {  # (x, y, width, height) in a 400 x 300 original
    "top-left corner": (0, 0, 120, 90),
    "touching right and bottom": (280, 210, 120, 90),
    "one px in (1, 1)": (1, 1, 200, 150),
    "one px in (1, 0)": (1, 0, 200, 150),
    "full size minus 1 px": (1, 1, 399, 299),
    "full size minus 1 px, other corner": (0, 0, 399, 299),
    "full size minus 3 px": (2, 1, 397, 297),
    "interior": (137, 83, 150, 110),
}


def offset_cases():
    for name, box in BOXES.items():
        for kind in ("grain", "blurred"):
            for quality in (None, 25):
                label = f"{name}-{kind}-{'png' if quality is None else f'jpeg{quality}'}"
                yield pytest.param(box, kind, quality, id=label)


@pytest.mark.parametrize(("box", "kind", "quality"), list(offset_cases()))
def test_locate_finds_exact_offset(box, kind, quality):
    original = base_image(kind)
    x, y, width, height = box
    crop = cut(original, x, y, width, height)
    if quality is not None:  # both images re-encoded independently, as two saved files would be
        original, crop = jpeg(original, quality), jpeg(crop, quality)
    match = locate(original, crop)
    assert_found_at(match, (x, y))
    assert match.score >= 0.99
    assert not match.ambiguous and match.candidates == 1


def test_locate_docstring_example():
    image = np.random.default_rng(0).integers(0, 256, (120, 160), dtype=np.uint8)
    assert_found_at(locate(image, image[30:80, 50:110]), (50, 30))


def test_hint_near_the_answer_and_far_from_it():
    original = base_image("blurred")
    crop = jpeg(cut(original, 190, 70, 140, 100), 40)
    assert_found_at(locate(original, crop, hint=(186, 74, 8)), (190, 70))
    # A wrong hint must not stop the full search from finding the crop.
    assert_found_at(locate(original, crop, hint=(20, 200, 4)), (190, 70))


# ---------------------------------------------------------------- the real sample

@cache
def coffee() -> tuple[np.ndarray, np.ndarray]:
    return load_image(DATA / "coffee.jpg"), load_image(DATA / "coffee-crop.jpg")


def test_coffee_sample_files():
    photo, crop = coffee()
    assert photo.shape == (400, 600, 3) and crop.shape == (220, 300, 3)


def test_coffee_crop_of_photo():
    photo, crop = coffee()
    pair = match_pair(photo, crop)
    assert pair.paired and pair.swapped is False
    assert pair.top_left == COFFEE_CORNER
    assert pair.score >= 0.99


def test_coffee_photo_of_crop_is_swapped():
    photo, crop = coffee()
    pair = match_pair(crop, photo)
    assert pair.paired and pair.swapped is True
    assert pair.top_left == COFFEE_CORNER


def test_coffee_locate():
    photo, crop = coffee()
    assert_found_at(locate(photo, crop), COFFEE_CORNER)


def test_coffee_prefer_swapped_does_not_change_the_answer():
    photo, crop = coffee()
    for prefer in (True, False):
        pair = match_pair(photo, crop, prefer_swapped=prefer)
        assert pair.paired and pair.swapped is False and pair.top_left == COFFEE_CORNER


def test_coffee_crop_with_a_local_edit_is_rejected():
    """Every part of the crop must fit: a 40 x 40 patch pasted from elsewhere in the photo spoils it."""
    photo, crop = coffee()
    edited = crop.copy()
    edited[100:140, 150:190] = photo[20:60, 20:60]
    assert not locate(photo, edited).found
    assert not match_pair(photo, edited).paired


# ---------------------------------------------------------------- tiny crop in a big image

@cache
def big_image() -> np.ndarray:
    image = blurred_noise(21, 2000, 1500)
    image.setflags(write=False)
    return image


@pytest.mark.parametrize("corner", [(1234, 567), (0, 1452), (1952, 0)])
def test_tiny_crop_in_big_image(corner):
    original = big_image()
    x, y = corner
    crop = jpeg(cut(original, x, y, 48, 48), 50)
    match = locate(jpeg(original, 50), crop)
    assert_found_at(match, corner)
    assert not match.ambiguous


# ---------------------------------------------------------------- equal sizes

def test_coffee_reencoded_is_an_identity():
    photo, _ = coffee()
    pair = match_pair(photo, jpeg(photo, 30))
    assert pair.paired and pair.top_left == (0, 0) and pair.swapped is False
    assert not pair.ambiguous
    swapped = match_pair(photo, jpeg(photo, 30), prefer_swapped=True)  # equal sizes: the order asked for
    assert swapped.paired and swapped.swapped is True and swapped.top_left == (0, 0)


def test_same_image_reencoded_is_an_identity():
    # Per-pixel grain at quality 30: two encodings differ by 100-200 mean squared grey levels at full
    # resolution; the within-noise test compares 4 x 4 averages, where that noise is small.
    photo = base_image("grain")
    pair = match_pair(photo, jpeg(photo, 30))
    assert pair.paired and pair.top_left == (0, 0)
    assert pair.swapped is False


def test_same_blurred_image_reencoded_is_an_identity():
    photo = base_image("blurred")
    pair = match_pair(jpeg(photo, 30), photo)
    assert pair.paired and pair.top_left == (0, 0)


def test_two_different_images_of_the_same_size_are_not_paired():
    pair = match_pair(textured_photo(5, 400, 300), textured_photo(6, 400, 300))
    assert not pair.paired
    assert pair.swapped is None and pair.top_left is None
    assert 0.0 <= pair.score < 0.99


def test_same_size_shifted_by_one_pixel_is_not_an_identity():
    big = blurred_noise(12, 301, 201)
    assert not match_pair(big[:200, :300], big[1:, 1:]).paired


# ---------------------------------------------------------------- negatives

NEGATIVE_KINDS = ["grain", "blurred"]


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_flipped_crop_is_rejected(kind):
    original = base_image(kind)
    region = cut(original, 130, 80, 160, 120)
    assert not np.array_equal(region, region[:, ::-1])
    flipped = np.ascontiguousarray(region[:, ::-1])
    assert not locate(original, flipped).found
    assert not match_pair(original, flipped).paired
    assert_found_at(locate(original, region), (130, 80))  # control: unflipped, it is found


@pytest.mark.parametrize("quality", [None, 75], ids=["png", "jpeg75"])
@pytest.mark.parametrize("overhang", [30, 80, 4], ids=["20%-of-crop", "20%-of-original", "4px"])
@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_region_running_past_the_border_is_rejected(kind, overhang, quality):
    """The crop is cut from a larger image and starts `overhang` px left of the original's left edge:
    30 px is 20% of the crop's 150 px width, 80 px 20% of the original's 400 px."""
    big = textured_photo(7, 600, 300) if kind == "grain" else blurred_noise(13, 600, 300)
    original = big[:, 100:500]  # 400 px wide
    width, height = 150, 120
    crop = cut(big, 100 - overhang, 90, width, height)
    inside = cut(big, 100, 90, width, height)  # control: the same place, entirely inside
    if quality is not None:
        original, crop, inside = jpeg(original, quality), jpeg(crop, quality), jpeg(inside, quality)
    assert not locate(original, crop).found
    assert not match_pair(original, crop).paired
    assert_found_at(locate(original, inside), (0, 90))


@pytest.mark.parametrize("scale", [0.9, 1.1])
@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_resized_crop_is_rejected(kind, scale):
    original = base_image(kind)
    region = cut(original, 100, 70, 200, 150)
    size = (round(200 * scale), round(150 * scale))
    resized = cv2.resize(region, size, interpolation=cv2.INTER_CUBIC)
    assert resized.shape[:2] == (size[1], size[0])
    assert not locate(original, resized).found
    assert not match_pair(original, resized).paired


def gradient_sky(width: int = 500, height: int = 600) -> np.ndarray:
    """A smooth vertical ramp from 40 to 220 grey levels with faint grain: no tile is textured enough
    to pin an offset, so only the region test can tell a resized crop from a true one."""
    rng = np.random.default_rng(8)
    ramp = np.linspace(40, 220, height, dtype=np.float32)[:, None] + rng.normal(0, 0.7, (height, width))
    return np.clip(np.round(ramp), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("rows", "scale"), [(300, 0.9), (380, 1.1)])
def test_resized_crop_of_a_gradient_is_rejected_by_its_region_means(rows, scale):
    original = jpeg(gradient_sky(), 75)
    window = cut(original, 120, 130, 200, round(rows / scale))
    resized = cv2.resize(window, (200, rows), interpolation=cv2.INTER_LINEAR)
    # Each tile alone fits somewhere within noise: without the region test this passes as a crop.
    assert locate(original, resized, VerifyConfig(max_region_bias=math.inf)).found
    assert not locate(original, resized).found
    assert not match_pair(original, resized).paired


@pytest.mark.parametrize("quality", [25, 50, 90])
def test_true_crop_of_a_gradient_passes_the_region_test(quality):
    original = gradient_sky()
    crop = jpeg(cut(original, 120, 150, 200, 300), quality)
    match = locate(jpeg(original, quality), crop)
    assert match.found  # a flat ramp: the corner may be ambiguous along it, the answer is still "a crop"


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_crop_of_another_image_is_rejected(kind):
    original = base_image(kind)
    other = textured_photo(99, 400, 300) if kind == "grain" else blurred_noise(99, 400, 300)
    crop = cut(other, 137, 83, 150, 110)
    match = locate(original, crop)
    assert not match.found and match.top_left is None
    assert not match_pair(original, crop).paired


@pytest.mark.parametrize("kind", NEGATIVE_KINDS)
def test_brightened_crop_is_rejected(kind):
    original = base_image(kind)
    region = cut(original, 137, 83, 150, 110)
    brighter = np.clip(region.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    assert not locate(original, brighter).found
    assert not match_pair(original, brighter).paired


# ---------------------------------------------------------------- ambiguity

def test_flat_crop_is_found_but_ambiguous():
    original = textured_photo(5, 400, 300).copy()
    original[50:250, 100:300] = 128  # a big flat area
    crop = cut(original, 150, 100, 60, 60)
    assert (crop == 128).all()
    match = locate(original, crop)
    assert match.found and match.ambiguous
    x, y = match.top_left  # any offset inside the flat area is as good as the true one
    assert 100 <= x <= 300 - 60 and 50 <= y <= 250 - 60
    assert math.isfinite(match.score)


def test_repeating_pattern_is_found_but_ambiguous():
    tile = np.random.default_rng(3).integers(0, 256, (16, 16), dtype=np.uint8)
    original = np.tile(tile, (12, 14))  # 192 x 224
    x, y = 37, 53
    crop = cut(original, x, y, 40, 40)
    match = locate(original, crop)
    assert match.found and match.ambiguous
    assert match.candidates >= 2
    mx, my = match.top_left  # the pattern repeats every 16 px: any period-aligned corner is correct
    assert (mx - x) % 16 == 0 and (my - y) % 16 == 0
    assert np.array_equal(original[my:my + 40, mx:mx + 40], crop)
    pair = match_pair(original, crop)
    assert pair.paired and pair.ambiguous and pair.candidates >= 2


# ---------------------------------------------------------------- validation and degenerate inputs

def test_crop_larger_than_original_raises():
    original = textured_photo(5, 120, 90)
    with pytest.raises(ValueError):
        locate(original, textured_photo(6, 121, 90))
    with pytest.raises(ValueError):
        locate(original, textured_photo(6, 120, 91))


def test_match_pair_when_neither_fits():
    wide, tall = textured_photo(5, 200, 100), textured_photo(6, 120, 150)
    for a, b in ((wide, tall), (tall, wide)):
        pair = match_pair(a, b)
        assert isinstance(pair, PairMatch)
        assert not pair.paired and pair.swapped is None and pair.top_left is None and pair.score == 0.0


def test_constant_images_give_finite_scores():
    with np.errstate(all="raise"):  # no division by zero or invalid values inside
        same = locate(np.full((100, 120, 3), 50, np.uint8), np.full((40, 40, 3), 50, np.uint8))
        assert math.isfinite(same.score) and math.isfinite(same.margin)
        assert same.found and same.ambiguous  # a flat crop fits everywhere in a flat original
        different = locate(np.full((100, 120), 50, np.uint8), np.full((40, 40), 200, np.uint8))
        assert math.isfinite(different.score)
        assert not different.found
        pair = match_pair(np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8))
        assert pair.paired and pair.top_left == (0, 0) and math.isfinite(pair.score)


def test_constant_crop_in_textured_original_is_not_found():
    original = base_image("grain")
    match = locate(original, np.full((50, 50, 3), 128, np.uint8))
    assert not match.found and math.isfinite(match.score)


# ---------------------------------------------------------------- grey and RGB

def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("original_grey", [False, True], ids=["rgb-original", "grey-original"])
@pytest.mark.parametrize("crop_grey", [False, True], ids=["rgb-crop", "grey-crop"])
def test_grey_and_rgb_inputs(original_grey, crop_grey):
    original = base_image("blurred")
    crop = jpeg(cut(original, 61, 47, 130, 90), 50)
    if original_grey:
        original = grey(original)
    if crop_grey:
        crop = grey(crop)
    assert original.ndim == (2 if original_grey else 3) and crop.ndim == (2 if crop_grey else 3)
    assert_found_at(locate(original, crop), (61, 47))
    pair = match_pair(crop, original)
    assert pair.paired and pair.swapped is True and pair.top_left == (61, 47)


def test_grey_single_channel_image_end_to_end():
    original = blurred_noise(31, 300, 200, channels=1)
    assert original.ndim == 2
    assert_found_at(locate(original, cut(original, 77, 33, 90, 70)), (77, 33))


# ---------------------------------------------------------------- the speed work's shortcuts

@pytest.mark.parametrize("shape", [(1000, 1500), (37, 50), (100, 31), (90, 200), (64, 64), (40, 40)])
@pytest.mark.parametrize("side", [32, 16])
def test_texture_of_chosen_tiles_equals_the_whole_computation(shape, side):
    from cropnet.verify import least_shift_energy, tile_energy, tile_grid

    image = np.random.default_rng(sum(shape) + side).integers(0, 256, shape, dtype=np.uint8)
    whole = least_shift_energy(image, side).ravel()  # every tile, the regular and the longer last ones
    assert np.allclose(tile_energy(image, tile_grid(shape, side), side), whole, rtol=1e-4)


def test_tile_means_by_reshape_equal_reduceat():
    from cropnet.verify import tile_means, tile_starts

    values = np.random.default_rng(3).random((203, 150)).astype(np.float32)
    rows, cols = tile_starts(203, 32), tile_starts(150, 16)
    sums = np.add.reduceat(np.add.reduceat(values, rows, axis=0), cols, axis=1)
    areas = np.outer(np.diff(np.append(rows, 203)), np.diff(np.append(cols, 150)))
    assert np.allclose(tile_means(values, (32, 16)), sums / areas, rtol=1e-5)


def test_pruning_keeps_near_equal_minima_only():
    from cropnet.verify import prune

    config = VerifyConfig()
    candidates = [(5, 5, 100.0), (9, 1, 120.0), (0, 3, 424.0), (7, 7, 426.0), (2, 2, 5000.0)]
    # within 4 x the best plus the noise floor (4 * 100 + 25 = 425), best first
    assert prune(candidates[::-1], config) == candidates[:3]


def test_a_prepared_crop_gives_the_same_answer():
    from cropnet.verify import PreparedCrop

    original = base_image("grain")
    crop = np.ascontiguousarray(grey(jpeg(cut(original, 40, 25, 150, 100), 40)))
    original = grey(original)
    prepared = match_pair(original, crop, prepared=PreparedCrop(crop, VerifyConfig()))
    assert prepared.paired and prepared.top_left == (40, 25)
    assert prepared == match_pair(original, crop)


@pytest.mark.parametrize("corner", [(120, 90), (0, 0), (1, 137)])  # inside, at the original's corner, near it
def test_batched_neighbour_maps_equal_match_template_tile_by_tile(corner):
    from cropnet.verify import neighbour_residuals, tile_grid

    original = grey(blurred_noise(41, 400, 300))
    x, y = corner
    crop = original[y:y + 150, x:x + 210]  # 210 = 6 whole 32 px tiles and an 18 px one
    tiles = tile_grid(crop.shape, 32)
    maps = neighbour_residuals(original, crop, x, y, tiles, 32)
    expected = np.full_like(maps, np.inf)
    for index, (tx, ty) in enumerate(tiles):
        tile = crop[ty:ty + 32, tx:tx + 32]
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                left, top = x + tx + dx, y + ty + dy
                if left >= 0 and top >= 0:
                    window = original[top:top + tile.shape[0], left:left + tile.shape[1]].astype(np.float32)
                    expected[index, dy + 1, dx + 1] = np.mean((window - tile) ** 2)
    assert np.array_equal(np.isinf(maps), np.isinf(expected))
    assert np.allclose(maps[np.isfinite(maps)], expected[np.isfinite(expected)], atol=0.05)
    assert (maps[:, 1, 1] < 0.05).all()  # the crop's own place fits exactly


def test_smoothed_residual_from_the_half_size_original_equals_full_size():
    from cropnet.verify import SmoothedCrop, half

    original = grey(blurred_noise(42, 500, 400))
    crop = original[60:310, 80:400]
    smoothed = SmoothedCrop(crop, 32)
    assert smoothed.reaches(1) and smoothed.reaches(2) and not smoothed.reaches(3)
    halved = half(original)
    for x, y in [(40, 30), (41, 30), (10, 70)]:  # the true place, a pixel off, far off (half-size pixels)
        full, _ = smoothed.residual(original, 2 * x, 2 * y)
        reduced, _ = smoothed.residual(halved, x, y, level=1)
        assert np.allclose(reduced, full, rtol=0.01, atol=1.0)  # up to the rounding of the half-size 8-bit pixels
    assert smoothed.residual(halved, 40, 30, level=1)[0].max() < 0.5
    assert smoothed.residual(halved, 10, 70, level=1)[0].mean() > 100


@pytest.mark.parametrize("factors", [(4, 4), (2, 4), (4, 2), (2, 2), (1, 2), (1, 1)])
def test_block_means_of_8_bit_pixels_are_the_exact_means(factors):
    from cropnet.verify import block_means

    image = np.random.default_rng(46).integers(0, 256, (203, 157), dtype=np.uint8)
    region = image[3:190, 5:150]  # a strided view, odd-sized: the last partial blocks are left out
    means = block_means(region, factors)
    rows, cols = region.shape[0] // factors[0], region.shape[1] // factors[1]
    blocks = region[:rows * factors[0], :cols * factors[1]].reshape(rows, factors[0], cols, factors[1])
    assert means.dtype == np.float32 and means.shape == (rows, cols)
    assert np.array_equal(means, blocks.mean(axis=(1, 3)).astype(np.float32))
    assert (means != np.round(means)).any() or factors == (1, 1)  # fractions kept, not rounded away


def test_search_drops_candidates_verification_would_give_up_but_the_best():
    from cropnet.verify import PreparedCrop, search

    config = VerifyConfig()
    original = grey(blurred_noise(43, 900, 700))
    unrelated = grey(blurred_noise(44, 500, 400))
    candidates, _ = search(original, PreparedCrop(unrelated, config), config)
    assert len(candidates) == 1  # every coarse minimum was near-equal; only the best one is refined
    true_crop = np.ascontiguousarray(original[123:523, 321:821])
    assert search(original, PreparedCrop(true_crop, config), config)[0][0][:2] == (321, 123)


def test_shift_energies_at_two_sides_equal_each_alone():
    from cropnet.verify import least_shift_energy, shift_energies

    image = grey(blurred_noise(45, 301, 203))
    for alone, together in zip([least_shift_energy(image, 16), least_shift_energy(image, 32)],
                               shift_energies(image, (16, 32)), strict=True):
        assert np.array_equal(alone, together)


def test_exact_pairs_turn_down_a_crop_that_fits_only_within_jpeg_noise():
    original = grainy_gradient(1, 4)
    same_scene = grainy_gradient(2, 4)[50:170, 80:260]  # the same ramp, other grain: not the original's pixels
    loose = match_pair(original, same_scene)
    assert loose.paired and loose.ambiguous  # within what JPEG could have done, and nothing pins it
    lossless = VerifyConfig(lossless=True)  # two lossless files
    assert not match_pair(original, same_scene, lossless).paired  # it differs by RMS ~5.7
    true_crop = original[50:170, 80:260]
    found = match_pair(original, true_crop, lossless)
    assert (found.paired, found.swapped, found.top_left) == (True, False, (80, 50))


def test_a_fine_repeating_texture_off_the_coarse_grid_is_found():
    from cropnet.verify import PreparedCrop, search, verify_candidates

    config = VerifyConfig()
    tile = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    original = grey(jpeg(np.tile(tile, (14, 18)), 30))  # a pixel-fine pattern, repeated every 16 px
    crop = cut(original, 37, 53, 70, 60)  # odd offsets: its coarse pixels (2 x 2) straddle the original's
    prepared = PreparedCrop(crop, config)
    assert prepared.factor == 2
    candidates, coarse_best = search(original, prepared, config)
    assert not verify_candidates(original, prepared.tests, candidates, config).found  # lost among repeats
    assert prepared.phase_spread() > coarse_best  # ... which the crop's own place could have lost to
    match = locate(original, crop)
    assert match.found and np.array_equal(cut(original, *match.top_left, 70, 60), crop)
    assert (match.top_left[0] - 37) % 16 == 0 and (match.top_left[1] - 53) % 16 == 0


def test_the_phased_search_finds_a_crop_at_factor_4_and_only_searches_the_whole_original():
    from cropnet.verify import PreparedCrop, search, verify_candidates

    config = VerifyConfig()
    tile = np.random.default_rng(2).integers(0, 256, (16, 16), dtype=np.uint8)
    original = grey(jpeg(np.tile(tile, (20, 24)), 30))
    crop = cut(original, 37, 53, 120, 100)  # 4 x 4 coarse pixels, 1 and 3 px off their grid
    prepared = PreparedCrop(crop, config)
    assert prepared.factor == 4
    candidates, _ = search(original, prepared, config)
    assert not verify_candidates(original, prepared.tests, candidates, config).found
    match = locate(original, crop)
    assert match.found and np.array_equal(cut(original, *match.top_left, 120, 100), crop)
    with pytest.raises(ValueError):
        search(original, prepared, config, window=(37, 53, 64), phased=True)


def test_the_phased_search_keeps_its_offsets_inside_the_original():
    from cropnet.verify import PreparedCrop, search

    config = VerifyConfig()
    rng = np.random.default_rng(5)
    original = rng.integers(0, 256, (120, 130), dtype=np.uint8)
    # 130 // 4 - 99 // 4 = 8 coarse px, 32 px at full resolution: one more than 130 - 99 allows.
    for crop in (rng.integers(0, 256, (97, 99), dtype=np.uint8), cut(original, 31, 20, 99, 97)):
        candidates, _ = search(original, PreparedCrop(crop, config), config, phased=True)
        assert candidates and all(0 <= x <= 130 - 99 and 0 <= y <= 120 - 97 for x, y, _ in candidates)
    assert locate(original, cut(original, 31, 20, 99, 97)).top_left == (31, 20)

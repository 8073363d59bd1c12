"""The resampling test: a resized crop of a soft picture verifies within JPEG noise, but the original
resampled fits it clearly better than the original as it is; a true crop fits best as it is."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from cropnet.predict import predict_classic
from cropnet.resampling import EDGE, MAX_SIDE, MIN_COMPARED, resampled_fit
from cropnet.verify import VerifyConfig, match_pair

CONFIG = VerifyConfig()


def soft_picture(seed: int, height: int = 300, width: int = 400) -> np.ndarray:
    """Grey levels of a soft scene (a random 4 x 5 grid of levels, cubically interpolated) with a grain of
    one level: texture too weak for verification to see a crop's pixels drift by a fraction of a pixel."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(90, 170, (4, 5)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.rint(smooth + rng.normal(0, 1, (height, width))), 0, 255).astype(np.uint8)


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """The pixels as a JPEG file at `quality` decodes them."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def resized_crop(picture: np.ndarray, box: tuple[int, int, int, int], scale: float) -> np.ndarray:
    """A crop of `box`'s size (x, y, width, height) made by resizing the region 1/scale times as large."""
    x, y, width, height = box
    region = picture[y:y + round(height / scale), x:x + round(width / scale)]
    return np.asarray(Image.fromarray(region).resize((width, height), Image.Resampling.BICUBIC))


@pytest.mark.parametrize("scale", [0.9, 1.15])
def test_resized_crops_that_verify_are_seen_resampled_at_about_their_scale(scale):
    # Of eight soft pictures, those where verification lets the resized crop through (on the others it
    # sees the drift itself): the cases this test is for.
    verified_seeds = 0
    for seed in range(8):
        picture = soft_picture(seed)
        original = jpeg(picture, 60)
        crop = jpeg(resized_crop(picture, (120, 90, 100, 80), scale), 50)
        verified = match_pair(original, crop)
        if not verified.paired:
            continue
        verified_seeds += 1
        fit = resampled_fit(original, crop, verified.top_left)
        assert fit.looks_resampled(CONFIG)
        assert fit.share < 0.45 and abs(fit.scale - scale) <= 0.05
        answer = predict_classic(original, crop)
        assert not answer.paired and answer.scores["resampled_share"] == pytest.approx(fit.share)
    assert verified_seeds >= 3


def test_either_order_and_colour_arrays():
    picture = soft_picture(1)
    original = jpeg(np.dstack([picture, picture // 2 + 60, 255 - picture]), 60)  # RGB
    crop_box = original[90:170, 120:220]
    resized = np.asarray(Image.fromarray(original[90:90 + 89, 120:120 + 111]).resize((100, 80)))
    found = predict_classic(crop_box, original)  # the crop first: swapped
    assert (found.paired, found.swapped, found.top_left) == (True, True, (120, 90))
    assert found.scores["resampled_share"] > 0.9
    turned_down = predict_classic(resized, original)
    assert not turned_down.paired and turned_down.scores["resampled_share"] < CONFIG.max_resampled_share


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_true_crop_fits_best_as_it_is(seed):
    picture = soft_picture(seed)
    original, crop = jpeg(picture, 60), jpeg(picture[90:170, 120:220], 50)
    fit = resampled_fit(original, crop, (120, 90))
    assert not fit.looks_resampled(CONFIG) and fit.share > 0.9
    answer = predict_classic(original, crop)
    assert (answer.paired, answer.swapped, answer.top_left) == (True, False, (120, 90))
    assert answer.scores["resampled_share"] == pytest.approx(fit.share)


def test_crops_at_the_originals_corners_are_compared_where_they_fit():
    picture = soft_picture(6)
    original = jpeg(picture, 60)
    for x, y in ((0, 0), (300, 220)):
        true = resampled_fit(original, jpeg(picture[y:y + 80, x:x + 100], 50), (x, y))
        assert np.isfinite(true.resampled) and not true.looks_resampled(CONFIG) and true.share > 0.9
    # Shrunk from the region at the corner, answered where verification puts it: the scale is found, but
    # the test is weaker there (the blur reads reflected pixels at the edge; shares 0.28-0.82 over eight
    # such pictures, this one the highest), and this crop is not turned down.
    crop = jpeg(resized_crop(picture, (0, 0, 100, 80), 0.9), 50)
    verified = match_pair(original, crop)
    resized = resampled_fit(original, crop, verified.top_left)
    assert resized.share < 0.9 and abs(resized.scale - 0.9) <= 0.03


def test_a_large_crop_is_compared_reduced_on_the_originals_grid():
    picture = soft_picture(4, 900, 1200)
    original = jpeg(picture, 60)
    box = (301, 203, 3 * MAX_SIDE + 7, 2 * MAX_SIDE + 5)  # reduced by 4, its corner off that grid
    x, y, width, height = box
    true = resampled_fit(original, jpeg(picture[y:y + height, x:x + width], 50), (x, y))
    assert not true.looks_resampled(CONFIG) and true.share > 0.9
    # Where the shrunk crop fits best as it is: its source, 1/0.9 times as large, centred on it (22, 15 px in).
    resized = resampled_fit(original, jpeg(resized_crop(picture, box, 0.9), 50), (x + 22, y + 15))
    assert resized.looks_resampled(CONFIG) and abs(resized.scale - 0.9) <= 0.03


def test_a_crop_too_small_to_tell_is_not_tested():
    picture = soft_picture(5)
    shortest = MIN_COMPARED + 2 * EDGE  # on its shorter side, as compared
    assert resampled_fit(picture, picture[10:10 + shortest - 1, 10:60], (10, 10)) is None
    assert resampled_fit(picture, picture[10:10 + shortest, 10:60], (10, 10)) is not None
    # A long thin crop is reduced for its length (by 4 here), and its shorter side with it.
    assert resampled_fit(picture, picture[10:10 + 4 * shortest - 1, 0:400], (0, 10)) is None

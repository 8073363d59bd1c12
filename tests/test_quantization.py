"""The JPEG quantization test: two files of a true crop leave room for one picture, other pictures do not."""

import numpy as np
import pytest
from conftest import grainy_gradient, textured_photo
from PIL import Image

from cropnet.images import ImageHeader, image_header, load_image
from cropnet.quantization import (
    WHOLE_PIXELS,
    WINDOW,
    EncodingTest,
    FileSet,
    encodings_comparable,
    luma_table,
    step_energy,
    window_corners,
)
from cropnet.verify import VerifyConfig

THRESHOLD = VerifyConfig().max_encoding_gap


def save(folder, name: str, pixels: np.ndarray, quality: int | None = None, **options) -> str:
    path = folder / name
    if quality is None:
        Image.fromarray(pixels).save(path, **options)
    else:
        Image.fromarray(pixels).save(path, quality=quality, **options)
    return str(path)


def gap_of_files(original_path: str, crop_path: str, top_left: tuple[int, int]) -> float:
    original, crop = load_image(original_path, grey=True), load_image(crop_path, grey=True)
    return EncodingTest(original, crop, top_left, image_header(original_path), image_header(crop_path)).gap(*top_left)


def test_the_header_gives_the_luma_table_row_by_row(tmp_path):
    photo = textured_photo(1, 64, 48)
    # At quality 50 libjpeg writes the JPEG standard's example luma table as it is (the file stores it zigzag).
    table = image_header(save(tmp_path, "q50.jpg", photo, quality=50)).luma_table
    assert table[:8] == (16, 11, 10, 16, 24, 40, 51, 61) and table[8:16] == (12, 12, 14, 19, 26, 58, 60, 55)
    assert table[56:] == (72, 92, 95, 98, 112, 100, 103, 99)
    grey = save(tmp_path, "grey.jpg", photo[:, :, 0], quality=50)
    assert image_header(grey).luma_table == table
    assert image_header(save(tmp_path, "photo.png", photo)).luma_table is None


def test_no_table_where_the_decoded_luma_is_not_the_stored_blocks(tmp_path):
    photo = textured_photo(1, 64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: the displayed image's blocks are not the file's grid
    Image.fromarray(photo).save(tmp_path / "turned.jpg", quality=80, exif=exif)
    assert image_header(tmp_path / "turned.jpg").luma_table is None
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=80)
    assert image_header(tmp_path / "cmyk.jpg").luma_table is None


def test_comparable_needs_a_jpeg_and_both_files_known():
    jpeg = ImageHeader((10, 10), False, tuple([4] * 64))
    png = ImageHeader((10, 10), True)
    unknown = ImageHeader((10, 10), False)  # a WebP, a palette PNG: what it kept is not known
    assert all(encodings_comparable(pair) for pair in ((jpeg, png), (png, jpeg), (jpeg, jpeg)))
    assert not encodings_comparable((png, png))  # verification holds two lossless files to rounding itself
    assert not encodings_comparable((jpeg, unknown))


@pytest.mark.parametrize("quality", [25, 50, 95])
def test_a_decoded_jpeg_lies_in_its_own_set(tmp_path, quality):
    path = save(tmp_path, "photo.jpg", textured_photo(3, 96, 80), quality)
    luma = load_image(path, grey=True).astype(np.float32)[None]  # its Y channel, as verification decodes it
    moved = FileSet(luma, luma_table(image_header(path)), (0, 0)).project(luma) - luma
    assert np.abs(moved).max() < 0.01  # its coefficients' rounding is within the slack


@pytest.mark.parametrize(("original_quality", "crop_quality"), [(None, 50), (80, 50), (40, 90), (30, 30)])
def test_a_true_crop_at_any_offset_leaves_no_gap(tmp_path, original_quality, crop_quality):
    photo = textured_photo(4, 300, 220)
    original = save(tmp_path, "original." + ("png" if original_quality is None else "jpg"), photo, original_quality)
    x, y = 83, 51  # neither a multiple of 8: the two files' block grids do not line up
    crop = save(tmp_path, "crop.jpg", np.ascontiguousarray(photo[y:y + 90, x:x + 120]), crop_quality)
    assert gap_of_files(original, crop, (x, y)) < 0.01
    assert gap_of_files(original, crop, (x + 3, y)) > THRESHOLD  # the same files, the wrong place


def test_another_grain_of_the_same_smooth_scene_leaves_a_gap(tmp_path):
    original = save(tmp_path, "original.png", grainy_gradient(1, 4))
    scene = save(tmp_path, "scene.jpg", grainy_gradient(2, 4)[50:170, 80:260], quality=75)
    crop = save(tmp_path, "crop.jpg", grainy_gradient(1, 4)[50:170, 80:260], quality=75)
    assert gap_of_files(original, crop, (80, 50)) < 0.01
    assert gap_of_files(original, scene, (80, 50)) > 2 * THRESHOLD  # measured 0.60


def test_a_large_crop_is_tested_in_windows(tmp_path):
    original = save(tmp_path, "original.png", grainy_gradient(1, 4, 500, 600))
    window = np.s_[40:440, 64:544]
    assert 400 * 480 > WHOLE_PIXELS
    crop = save(tmp_path, "crop.jpg", grainy_gradient(1, 4, 500, 600)[window], quality=75)
    scene = save(tmp_path, "scene.jpg", grainy_gradient(2, 4, 500, 600)[window], quality=75)
    assert gap_of_files(original, crop, (64, 40)) < 0.01
    assert gap_of_files(original, scene, (64, 40)) > 2 * THRESHOLD


def test_clipped_blocks_do_not_count_against_a_true_crop(tmp_path):
    photo = textured_photo(6, 240, 160).copy()
    photo[:, :80] = 255  # blown-out sky: JPEG's ringing there is clipped at 255 when decoded
    photo[:, 160:] = 0
    original = save(tmp_path, "original.jpg", photo, quality=30)
    crop = save(tmp_path, "crop.jpg", np.ascontiguousarray(photo[13:133, 37:217]), quality=60)
    assert gap_of_files(original, crop, (37, 13)) < 0.01


@pytest.mark.parametrize("side", [120, 250, 1000])
@pytest.mark.parametrize("band", [0, 60, 200])
def test_a_large_crop_is_tested_where_it_differs_most_even_at_its_end(side, band):
    crop = np.zeros((side, 400), np.uint8)
    region = crop.copy()
    start = min(band, side - 12)
    region[start:start + 12, 100:300] = 50  # 12 rows where the crop and the original differ
    corners = window_corners(region, crop)
    assert all(left % 8 == 0 and top % 8 == 0 and top + WINDOW <= side for left, top in corners)
    left, top = corners[0]  # the window that differs most holds the whole band
    assert top <= start and start + 12 <= top + WINDOW


def test_step_energy_is_the_larger_of_the_two_axes():
    stripes = np.tile(np.array([0, 10], np.uint8), (20, 10))  # flat down each column, 10 levels across
    assert step_energy(stripes) == 100 and step_energy(np.ascontiguousarray(stripes.T)) == 100
    assert step_energy(grainy_gradient(1, 0)) < 1  # a plain ramp

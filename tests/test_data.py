import numpy as np
import pytest
from conftest import textured_photo
from numpy.lib.stride_tricks import sliding_window_view

from cropnet.config import PAIR_KINDS, SynthConfig
from cropnet.data import (
    PairDataset,
    PairTransform,
    RefineTransform,
    coarse_place,
    describe_skipped,
    fit_pair,
    is_flat,
    load_folder,
    refine_targets,
    refine_views,
    refined_corner,
    split_names,
    synthesize_pair,
    zoomed_view,
)
from cropnet.errors import FolderError


def only(kind: str, **overrides) -> SynthConfig:
    """A config that makes one kind of pair."""
    return SynthConfig(kind_weights={kind: 1.0}, **overrides)


def crop_positions(original: np.ndarray, crop: np.ndarray) -> list[tuple[int, int]]:
    """Every (x, y) where `crop` equals a window of `original` exactly (brute force)."""
    if crop.shape[0] > original.shape[0] or crop.shape[1] > original.shape[1]:
        return []
    windows = sliding_window_view(original, crop.shape)[:, :, 0]  # (Y, X, h, w, 3)
    match = np.all(windows == crop, axis=(2, 3, 4))
    return [(int(x), int(y)) for y, x in zip(*np.nonzero(match), strict=True)]


@pytest.mark.parametrize("seed", range(8))
def test_positive_is_the_originals_pixels_at_top_left(seed):
    photo, other = textured_photo(seed), textured_photo(seed + 100)
    pair = synthesize_pair(photo, other, np.random.default_rng(seed), only("positive", png_probability=1.0))
    assert pair.paired and pair.kind == "positive"
    x, y = pair.top_left
    h, w = pair.crop.shape[:2]
    assert np.array_equal(pair.original, photo)
    assert np.array_equal(pair.original[y:y + h, x:x + w], pair.crop)
    assert (x, y) in crop_positions(pair.original, pair.crop)


@pytest.mark.parametrize("kind", [k for k in PAIR_KINDS if k != "positive"])
@pytest.mark.parametrize("seed", range(4))
def test_negative_is_not_a_crop_anywhere(kind, seed):
    photo, other = textured_photo(seed), textured_photo(seed + 100)
    pair = synthesize_pair(photo, other, np.random.default_rng(seed), only(kind, png_probability=1.0))
    assert not pair.paired and pair.kind == kind and pair.top_left is None
    assert crop_positions(pair.original, pair.crop) == []
    assert crop_positions(pair.crop, pair.original) == []


def test_border_negative_overlaps_the_original():
    """A border pair shares most of its pixels with the original: it is a near miss, not a stranger."""
    photo = textured_photo(5, 200, 160)
    pair = synthesize_pair(photo, textured_photo(6), np.random.default_rng(3), only("border", png_probability=1.0))
    h, w = pair.crop.shape[:2]
    found = crop_positions(photo, pair.crop)
    assert len(found) == 1
    ox, oy = crop_positions(photo, pair.original)[0]
    x, y = found[0]
    inside_x = min(x + w, ox + pair.original.shape[1]) - max(x, ox)
    inside_y = min(y + h, oy + pair.original.shape[0]) - max(y, oy)
    assert 0 < inside_x * inside_y < w * h


def test_every_kind_has_the_same_crop_size_statistics():
    """Shape must not give the label away: relative crop sizes match across kinds."""
    photo, other = textured_photo(0, 400, 300), textured_photo(1, 400, 300)
    for kind in PAIR_KINDS:
        rng = np.random.default_rng(0)
        fractions = []
        for _ in range(200):
            pair = synthesize_pair(photo, other, rng, only(kind, png_probability=1.0))
            fractions.append(np.array(pair.crop.shape[:2]) / np.array(pair.original.shape[:2]))
        fractions = np.array(fractions)
        assert np.all(fractions >= 0.09) and np.all(fractions <= 0.91), kind
        assert np.allclose(fractions.mean(axis=0), 0.5, atol=0.05), kind


def test_reencoding_and_swapping():
    rng = np.random.default_rng(0)
    config = SynthConfig(png_probability=0.0)
    qualities, swaps = [], []
    for _ in range(100):
        pair = synthesize_pair(textured_photo(0), textured_photo(1), rng, config)
        qualities += list(pair.quality)
        swaps.append(pair.swapped)
        assert pair.crop.shape[0] <= pair.original.shape[0] and pair.crop.shape[1] <= pair.original.shape[1]
        assert (pair.a is pair.crop) == pair.swapped
    assert all(25 <= q <= 95 for q in qualities)
    assert 30 < sum(swaps) < 70


def test_pairs_are_deterministic_per_seed_and_index():
    photos = [textured_photo(i) for i in range(3)]
    transform = PairTransform(input_size=32)
    first = PairDataset(photos, 10, seed=7, config=SynthConfig(), transform=transform)
    second = PairDataset(photos, 10, seed=7, config=SynthConfig(), transform=transform)
    other_seed = PairDataset(photos, 10, seed=8, config=SynthConfig(), transform=transform)
    for index in range(10):
        assert np.array_equal(first[index]["image"], second[index]["image"])
    assert not all(np.array_equal(first[i]["image"], other_seed[i]["image"]) for i in range(10))


def test_split_is_disjoint_and_stable():
    names = [f"photo{i:03d}.jpg" for i in range(1000)]
    train, val = split_names(names, val_percent=10)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(names)
    assert 60 < len(val) < 140
    assert split_names(list(reversed(names)), 10)[1] == list(reversed(val))


def test_common_fit_scales_both_images_by_one_factor():
    big = np.full((200, 400, 3), 255, dtype=np.uint8)   # 400 wide: fits N=100 at scale 1/4
    small = np.full((80, 100, 3), 255, dtype=np.uint8)  # so it becomes 25 x 20
    image = fit_pair(big, small, input_size=100)
    assert image.shape == (6, 100, 100)
    filled = image != 0
    assert filled[0].any(axis=0).sum() == 100 and filled[0].any(axis=1).sum() == 50
    assert filled[3].any(axis=0).sum() == 25 and filled[3].any(axis=1).sum() == 20


def test_mask_channels_mark_where_each_image_lies():
    big = np.zeros((200, 400, 3), dtype=np.uint8)  # black: zero is not a reliable "padding" sign
    small = np.zeros((80, 100, 3), dtype=np.uint8)
    image = fit_pair(big, small, input_size=100, masks=True)
    assert image.shape == (8, 100, 100)
    assert image[6].sum() == 100 * 50 and image[6, :50, :100].all()
    assert image[7].sum() == 25 * 20 and image[7, :20, :25].all()
    assert np.array_equal(image[:6], fit_pair(big, small, input_size=100))


def test_stretch_fit_fills_both_canvases():
    big = np.full((200, 400, 3), 255, dtype=np.uint8)
    small = np.full((80, 100, 3), 255, dtype=np.uint8)
    image = fit_pair(big, small, input_size=64, fit="stretch")
    assert np.all(image != 0)


def test_transform_targets_are_normalized_corner():
    dataset = PairDataset([textured_photo(0, 200, 100), textured_photo(1)], 20, 0,
                          only("positive", swap_probability=0.0), PairTransform(input_size=32))
    for index in range(5):
        pair, item = dataset.pair(index), dataset[index]
        assert item["paired"] == 1 and item["swapped"] == 0
        height, width = pair.original.shape[:2]
        assert np.allclose(item["top_left"], np.array(pair.top_left) / [width, height])
        assert item["original_size"].tolist() == [width, height]
        assert item["size_b"].tolist() == [pair.b.shape[1], pair.b.shape[0]]


def test_unreadable_files_are_skipped_and_counted(photo_folder):
    (photo_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 half a header")
    (photo_folder / "empty.png").write_bytes(b"")
    photos = load_folder(photo_folder, max_side=None)
    assert sorted(photos.names) == ["nested/three.webp", "one.png", "two.jpg"]
    assert len(photos.skipped) == 2
    assert any("broken.jpg" in reason for reason in photos.skipped)
    lines = describe_skipped(photos.skipped)
    assert sum(int(line.split()[1]) for line in lines) == 2 and any("broken.jpg" in line for line in lines)
    assert photos.photos[photos.names.index("one.png")].shape == (90, 120, 3)


def test_photos_of_one_flat_colour_are_skipped(photo_folder):
    """A white pattern on a transparent background is white on white once composited: nothing to crop."""
    from PIL import Image

    pattern = np.full((80, 120, 4), 255, np.uint8)
    pattern[..., 3] = textured_photo(4, 120, 80)[..., 0]  # all the content is in the alpha channel
    Image.fromarray(pattern, "RGBA").save(photo_folder / "transparent.png")
    Image.fromarray(np.full((80, 120, 3), 40, np.uint8)).save(photo_folder / "grey.png")
    photos = load_folder(photo_folder, max_side=None)
    assert sorted(photos.names) == ["nested/three.webp", "one.png", "two.jpg"]
    assert sorted(reason.split(":")[0].rsplit("/", 1)[-1] for reason in photos.skipped) == ["grey.png",
                                                                                           "transparent.png"]
    assert describe_skipped(photos.skipped) == [f"skipped 2 (one flat colour): {photos.skipped[0].split(':')[0]}, "
                                                f"{photos.skipped[1].split(':')[0]}"]
    assert not is_flat(textured_photo(5)) and is_flat(np.full((50, 60, 3), 7, np.uint8))


def test_folder_without_usable_images_is_an_error(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"nope")
    with pytest.raises(FolderError, match="none of the 1 image files"):
        load_folder(tmp_path, max_side=None)


def test_source_is_where_a_negatives_content_comes_from():
    """The spot a matcher is drawn to: the mirrored region of a flip, the overlapping region of a border pair."""
    photo = textured_photo(5, 200, 160)
    flip = synthesize_pair(photo, textured_photo(6), np.random.default_rng(1), only("flip", png_probability=1.0))
    (x, y), (h, w) = flip.source, flip.crop.shape[:2]
    assert np.array_equal(flip.crop[:, ::-1], photo[y:y + h, x:x + w])
    border = synthesize_pair(photo, textured_photo(6), np.random.default_rng(3), only("border", png_probability=1.0))
    ox, oy = crop_positions(photo, border.original)[0]
    assert (ox + border.source[0], oy + border.source[1]) == crop_positions(photo, border.crop)[0]
    assert flip.top_left is None and border.top_left is None


def test_zoomed_view_keeps_pixels_and_marks_what_runs_past_the_border():
    image = textured_photo(7, 100, 80)
    view = zoomed_view(image, -10, 70, 32, 1.0)  # 10 px left of the image, runs 22 px below it
    assert view[3].sum() == 22 * 10
    assert np.all(view[3, :10, 10:] == 1) and np.all(view[3, 10:] == 0) and np.all(view[3, :, :10] == 0)
    assert np.all(view[:3, 10:] == 0)  # outside: the mean colour after normalization
    expected = fit_pair(image[70:80, 0:22], image[70:80, 0:22], 22)[:3, :10]  # the same normalization
    assert np.allclose(view[:3, :10, 10:], expected, atol=1e-6)
    halved = zoomed_view(image, 0, 0, 20, 0.5)  # 40 px of the image in 20
    assert halved[3].all() and halved.shape == (4, 20, 20)
    assert not zoomed_view(image, 200, 0, 16, 1.0).any()  # wholly outside: nothing, and no error


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_refine_views_put_both_corners_where_the_targets_say(scale):
    """At the targets, each corner patch is the window's pixels (exactly at scale 1), and the corner
    read back from the targets is the truth, whatever the first stage's error."""
    photo = textured_photo(8, 400, 300)
    x, y, w, h = 123, 57, 150, 90
    crop = photo[y:y + h, x:x + w]
    windows, patches, origins = refine_views(photo, crop, (140, 40), scale, 32, 96)
    assert windows.shape == (2, 4, 96, 96) and patches.shape == (2, 4, 32, 32)
    targets = refine_targets((x, y), origins, scale, (400, 300), (w, h))
    assert np.all((targets >= 0) & (targets <= 96 - 32))
    if scale == 1.0:
        for corner in range(2):
            tx, ty = targets[corner].astype(int)
            assert np.array_equal(windows[corner, :, ty:ty + 32, tx:tx + 32], patches[corner])
        assert np.array_equal(patches[1, :3], fit_pair(crop[::-1, ::-1][:32, :32], crop[:32, :32], 32)[:3])
    assert np.allclose(refined_corner(targets, origins, scale, (400, 300), (w, h)), (x, y))


def test_refine_transform_keeps_a_true_crop_inside_the_window():
    photos = [textured_photo(i, 200, 160) for i in range(3)]
    transform = RefineTransform(input_size=64, zoom=4.0, patch=32, window=96, jitter=0.2)
    dataset = PairDataset(photos, 24, seed=0, config=SynthConfig(), transform=transform)
    for index in range(len(dataset)):
        item = dataset[index]
        if item["paired"]:
            assert np.all((item["offsets"] >= 0) & (item["offsets"] <= 96 - 32)), item["offsets"]
            assert np.allclose(refined_corner(item["offsets"], item["origins"], item["scale"], item["original_size"],
                                              item["crop_size"]), item["top_left"], atol=1e-3)
    assert item["windows"].shape == (2, 4, 96, 96)
    assert np.array_equal(dataset[3]["windows"], dataset[3]["windows"])  # a pure function of the index


@pytest.mark.parametrize(("x", "y", "width", "height"), [(123, 45, 150, 100), (0, 0, 400, 300), (350, 10, 50, 40)])
def test_the_coarse_place_is_within_a_reduced_pixel_of_the_crop(x, y, width, height):
    """The crop reduced to 64 px on its longer side and sought over the original reduced alike: one reduced
    pixel is width / 64 original px, and the place must be within one of them (exact for the whole image)."""
    original = textured_photo(3, 400, 300)
    found = coarse_place(original, original[y:y + height, x:x + width], 64)
    step = max(1.0, max(width, height) / 64)
    assert abs(found[0] - x) <= step and abs(found[1] - y) <= step, found


def test_the_coarse_place_takes_mirrored_views_and_is_never_finer_than_asked():
    """A crop given as a negative-stride view (as the mirror check passes it) of a mirrored original, and a
    small crop searched no finer than a quarter scale (the whole-crop fit's, in `whole_crop_place`): each
    within one px of its search's scale."""
    original = textured_photo(4, 400, 300)
    x, y, width, height = 90, 70, 150, 100
    crop = original[y:y + height, x:x + width]
    found = coarse_place(original[:, ::-1], crop[:, ::-1], 64)
    assert abs(found[0] - (400 - x - width)) <= width / 64 and abs(found[1] - y) <= width / 64, found
    found = coarse_place(original, original[y:y + 40, x:x + 40], 64, finest=0.25)
    assert abs(found[0] - x) <= 4 and abs(found[1] - y) <= 4, found

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import REPO, nearly_symmetric_photo

from cropnet.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from cropnet.config import ModelConfig, SynthConfig, TrainConfig
from cropnet.data import CROP_FIT_RADIUS, coarse_place, crop_fit_corner, crop_fit_views, fit_pair, refine_views
from cropnet.model import (
    STRIDE,
    CropNet,
    CropNetOutput,
    Matches,
    build_model,
    crop_fit,
    for_inference,
    inside_fit,
    match,
    mirror_excess,
    peak_corners,
    pixel_fit,
    resnet_trunk,
    shift_index,
    stem_in_bands,
)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("input_size", [64, 96])
def test_heads_have_the_right_shapes_and_ranges(tiny_model_config, batch, input_size):
    config = ModelConfig(input_size=input_size, head_channels=8, head_hidden=16)
    model = CropNet(config).eval()
    with torch.no_grad():
        output = model(torch.randn(batch, 6, input_size, input_size))
    assert output.paired_logits.shape == (batch, 2)
    assert output.swapped_logits.shape == (batch, 2)
    assert output.top_left.shape == (batch, 2)
    assert torch.all((output.top_left >= 0) & (output.top_left <= 1))
    assert torch.isfinite(output.paired_logits).all()


def test_empty_batch_nocrash(tiny_model_config):
    model = CropNet(tiny_model_config).eval()
    with torch.no_grad():
        output = model(torch.zeros(0, 6, 64, 64))
    assert output.paired_logits.shape == (0, 2)


def test_first_convolution_reads_six_channels(tiny_model_config):
    model = CropNet(tiny_model_config)
    assert model.trunk[0].in_channels == 6
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 64, 64))


def test_depth_is_a_config_value():
    small = sum(p.numel() for p in CropNet(ModelConfig(arch="resnet18")).parameters())
    large = sum(p.numel() for p in CropNet(ModelConfig(arch="resnet34")).parameters())
    assert large > small


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_the_trunk_is_torchvisions_resnet_weight_for_weight(arch):
    """Built without importing torchvision (for start-up time), the trunk must be its ResNet:
    the same parameter shapes, and with the same weights the same features."""
    torch.manual_seed(0)
    reference = getattr(torchvision.models, arch)(weights=None).eval()
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    renamed = {f"{names.index(key.split('.')[0])}.{key.partition('.')[2]}": value
               for key, value in reference.state_dict().items() if not key.startswith("fc.")}
    trunk = resnet_trunk(arch).eval()
    assert {k: v.shape for k, v in trunk.state_dict().items()} == {k: v.shape for k, v in renamed.items()}
    trunk.load_state_dict(renamed)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = torch.nn.Sequential(*[getattr(reference, name) for name in names])(images)
        assert torch.allclose(trunk(images), expected, atol=1e-5)


def test_predicting_with_the_network_does_not_import_torchvision(tmp_path):
    """torchvision's import costs seconds; `predict` must not pay it."""
    code = ("import sys; from cropnet.predict import Predictor; "
            "Predictor(method='net'); print('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_pretrained_trunk_copies_conv1_into_both_halves(tiny_model_config):
    reference = torchvision.models.resnet18(weights=None)
    model = CropNet(tiny_model_config)
    model.load_pretrained_trunk(reference.state_dict())
    conv1 = model.trunk[0].weight
    assert torch.allclose(conv1[:, :3], reference.conv1.weight / 2)
    assert torch.allclose(conv1[:, 3:], reference.conv1.weight / 2)
    assert torch.equal(model.trunk[4][0].conv1.weight, reference.layer1[0].conv1.weight)


def test_pretrained_weights_of_another_depth_are_refused(tiny_model_config):
    reference = torchvision.models.resnet50(weights=None)
    with pytest.raises((ValueError, RuntimeError)):
        CropNet(tiny_model_config).load_pretrained_trunk(reference.state_dict())


# ---------------------------------------------------------------- the siamese (correlation) model

def siamese_config(input_size: int = 64) -> ModelConfig:
    return ModelConfig(arch="siamese-resnet18", input_size=input_size, head_hidden=16, feature_dim=16)


def pair_input(crop_size, original_size, input_size: int = 64, batch: int = 1) -> torch.Tensor:
    """(B, 8, N, N): random canvases, the first image crop_size (w, h), the second original_size."""
    images = torch.randn(batch, 8, input_size, input_size)
    images[:, 6:] = 0
    images[:, 6, :crop_size[1], :crop_size[0]] = 1
    images[:, 7, :original_size[1], :original_size[0]] = 1
    return images


@pytest.mark.parametrize("batch", [0, 1, 3])
@pytest.mark.parametrize("input_size", [64, 96])
def test_siamese_heads_have_the_contract_shapes(batch, input_size):
    model = build_model(siamese_config(input_size)).eval()
    with torch.no_grad():
        output = model(pair_input((30, 20), (60, 50), input_size, batch))
    assert isinstance(output, CropNetOutput)
    assert output.paired_logits.shape == output.swapped_logits.shape == output.top_left.shape == (batch, 2)
    assert torch.all((output.top_left >= 0) & (output.top_left <= 1))
    assert torch.isfinite(output.paired_logits).all()


def test_siamese_answers_do_not_depend_on_the_order_except_swapped():
    """Both directions are correlated: swapping the inputs swaps `swapped`, and nothing else changes."""
    torch.manual_seed(0)
    model = build_model(siamese_config()).eval()
    images = pair_input((40, 32), (64, 48), batch=2)
    reversed_images = images[:, [3, 4, 5, 0, 1, 2, 7, 6]]
    with torch.no_grad():
        forward, backward = model(images), model(reversed_images)
    assert torch.allclose(forward.paired_logits, backward.paired_logits, atol=1e-5)
    assert torch.allclose(forward.swapped_logits, backward.swapped_logits.flip(1), atol=1e-5)
    assert torch.allclose(forward.top_left, backward.top_left, atol=1e-5)


def test_match_finds_a_crop_of_known_features_at_its_offset():
    """Features of the original are random unit vectors; the crop's are a window of them at (dx, dy) = (3, 2)."""
    torch.manual_seed(0)
    height = width = 8
    original = F.normalize(torch.randn(1, 16, height, width), dim=1)
    crop = torch.zeros_like(original)
    crop[:, :, :4, :3] = original[:, :, 2:6, 3:6]  # a 3 x 4-cell crop
    template = torch.zeros(1, height, width)
    template[:, :4, :3] = 1
    similarity = torch.einsum("bdi,bdj->bij", crop.flatten(2), original.flatten(2))
    cell = torch.arange(height * width)
    offsets = torch.stack([cell % width, cell // width], 1).float()
    allowed = ((offsets[:, 0] <= width - 3) & (offsets[:, 1] <= height - 4))[None]
    matches = match(similarity, template.flatten(1), allowed, shift_index(height, width, "cpu"), offsets)
    best = matches.scores.masked_fill(~allowed, -2).argmax(1)
    assert offsets[best].tolist() == [[3.0, 2.0]]
    peak, contrast, worst = matches.stats[0, :3].tolist()
    assert peak == pytest.approx(1.0) and worst == pytest.approx(1.0) and contrast > 0.5
    # Where the crop would run past the original's border, no offset is allowed: the direction is impossible.
    impossible = match(similarity, template.flatten(1), torch.zeros_like(allowed), shift_index(height, width, "cpu"),
                       offsets)
    assert impossible.stats[0, -1] == 0 and impossible.stats[0, 0] == -1


def test_siamese_corner_follows_the_only_direction_that_fits():
    """The first image is larger than the second in one dimension, so only "b in a" fits: the
    corner is read from that direction whatever the swapped head says, and is inside the original."""
    model = build_model(siamese_config()).eval()
    images = pair_input((64, 40), (32, 48))  # a is wider, b is taller: neither fits...
    with torch.no_grad():
        a_in_b, b_in_a, sizes = model.match_both(images)
    assert not a_in_b.allowed.any() and not b_in_a.allowed.any()
    images = pair_input((64, 48), (32, 24))  # ...here only b fits in a
    with torch.no_grad():
        a_in_b, b_in_a, sizes = model.match_both(images)
        output = model(images)
    assert sizes[0].tolist() == [[64, 48], [32, 24]]
    assert not a_in_b.allowed.any() and b_in_a.allowed.any()
    corner_px = output.top_left[0] * sizes[0, 0]  # as a fraction of a, the original
    assert torch.all(corner_px + sizes[0, 1] <= sizes[0, 0] + STRIDE / 2)


def test_siamese_arch_needs_the_common_scale():
    with pytest.raises(ValueError, match="common"):
        ModelConfig(arch="siamese-resnet18", fit="stretch")
    with pytest.raises(ValueError, match="arch"):
        ModelConfig(arch="vgg16")


def refine_config(**overrides) -> ModelConfig:
    values = {"arch": "siamese-resnet18", "input_size": 64, "head_hidden": 16, "feature_dim": 16, "refine_zoom": 4.0,
              "refine_patch": 32, "refine_window": 96}
    return ModelConfig(**{**values, **overrides})


@pytest.mark.parametrize("batch", [1, 3])
def test_refiner_has_the_contract_shapes_and_starts_from_the_first_stage(batch):
    model = build_model(refine_config()).eval()
    model.start_refiner()
    assert torch.equal(model.refiner.trunk[0].weight, model.trunk[0].weight)
    with torch.no_grad():
        output = model.refiner(torch.randn(batch, 2, 4, 96, 96), torch.randn(batch, 2, 4, 32, 32))
    assert output.paired_logits.shape == (batch, 2) and output.offsets.shape == (batch, 2, 2)
    assert torch.all((output.offsets >= 0) & (output.offsets <= 96 - 32))  # an expected place inside the window


def test_refiner_answers_a_crop_smaller_than_a_feature_cell():
    """A 3 x 2 px crop at the closer view: its one (top-left) cell is still compared, and nothing is NaN."""
    model = build_model(refine_config()).eval()
    patches = torch.zeros(1, 2, 4, 32, 32)
    patches[:, :, :, :2, :3] = torch.randn(1, 2, 4, 2, 3)
    patches[:, :, 3, :2, :3] = 1.0
    windows = torch.randn(1, 2, 4, 96, 96)
    windows[:, :, 3] = 1.0
    with torch.no_grad():
        output = model.refiner(windows, patches)
    assert torch.isfinite(output.paired_logits).all() and torch.isfinite(output.offsets).all()


def test_refiner_finds_a_patch_of_known_features_at_its_place_in_the_window():
    """Window features are random unit vectors; each corner's patch is a 4 x 4-cell block of them at a
    known place. With the soft-argmax made sharp, each corner's offset is that place, in view px."""
    torch.manual_seed(0)
    model = build_model(refine_config()).eval()
    model.refiner.soft_argmax.log_scale.data.fill_(torch.tensor(1000.0).log())
    window = F.normalize(torch.randn(2, 16, 12, 12), dim=1)  # (2 corners, D, 96 / 8, 96 / 8)
    places = [(5, 2), (3, 6)]  # (x, y) in cells
    patch = torch.stack([window[k, :, y:y + 4, x:x + 4] for k, (x, y) in enumerate(places)])

    def known_features(views):
        features = window if views.shape[-1] == 96 else patch
        return features, torch.ones_like(features[:, :1])

    model.refiner.features = known_features
    with torch.no_grad():
        output = model.refiner(torch.zeros(1, 2, 4, 96, 96), torch.zeros(1, 2, 4, 32, 32))
    assert torch.allclose(output.offsets[0], torch.tensor([[40.0, 16.0], [24.0, 48.0]]), atol=1e-3), output.offsets


def test_the_refiners_scan_reads_both_corners_together():
    """Whole-view features are random unit vectors; the crop's top-left patch fits two places equally, but
    only at one of them does its bottom-right patch fit at the mirrored place of the turned view: that
    place comes first."""
    torch.manual_seed(0)
    model = build_model(refine_config()).eval()
    wholes = F.normalize(torch.randn(2, 16, 10, 14), dim=1)  # original and its half-turn: 112 x 80 view px
    crop_cells = (4, 3)  # (w, h)
    reach = (14 - crop_cells[0], 10 - crop_cells[1])  # cells the top-left can move: (10, 7)
    true_x, true_y, decoy_x, decoy_y = 6, 2, 1, 5
    wholes[0, :, decoy_y:decoy_y + 4, decoy_x:decoy_x + 4] = wholes[0, :, true_y:true_y + 4, true_x:true_x + 4]
    turned_x, turned_y = reach[0] - true_x, reach[1] - true_y
    patches = torch.stack([wholes[0, :, true_y:true_y + 4, true_x:true_x + 4],
                           wholes[1, :, turned_y:turned_y + 4, turned_x:turned_x + 4]])

    def known_features(views):  # a whole view's first pixel says which of the two it is
        index = int(views[0, 0, 0, 0])
        features = patches if views.shape[-1] == 32 else wholes[index:index + len(views)]
        return features, torch.ones_like(features[:, :1])

    model.refiner.features = known_features
    views = torch.zeros(2, 4, 80, 112)
    views[1, 0, 0, 0] = 1
    with torch.no_grad():
        places = model.refiner.scan(views, torch.zeros(2, 4, 32, 32), (reach[0] * 8.0, reach[1] * 8.0), count=3)
    assert places.shape == (3, 2)
    assert places[0].tolist() == [true_x * 8, true_y * 8]
    assert [decoy_x * 8, decoy_y * 8] in places[1:].tolist()  # the top-left alone fits there: a lesser peak


def test_refining_stage_needs_a_siamese_network_and_room_to_search():
    with pytest.raises(ValueError, match="siamese"):
        ModelConfig(refine_zoom=4.0)
    with pytest.raises(ValueError, match="multiple of 16"):
        refine_config(refine_window=40)


def test_peak_corners_are_the_highest_local_maxima_best_first():
    """Two separate peaks and a shoulder beside the best: the shoulder is not a peak of its own."""
    side = 6
    scores = torch.zeros(1, side * side)
    scores[0, 2 * side + 4] = 0.9  # (dx, dy) = (4, 2)
    scores[0, 2 * side + 3] = 0.8  # its shoulder
    scores[0, 5 * side + 1] = 0.7  # (1, 5)
    scores[0, 0] = 0.95  # the best, but not allowed
    allowed = torch.ones(1, side * side, dtype=torch.bool)
    allowed[0, 0] = False
    cell = torch.arange(side * side)
    offsets = torch.stack([cell % side, cell // side], 1).float()
    matches = Matches(scores, allowed, offsets, torch.zeros(1, 7))
    corners = peak_corners(matches, torch.tensor([[80.0, 40.0]]), 2)
    expected = torch.tensor([[4 * STRIDE / 80, 2 * STRIDE / 40], [1 * STRIDE / 80, 5 * STRIDE / 40]])
    assert torch.allclose(corners[0], expected)


def smoothed_noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smoothed noise, RGB uint8: texture at every scale a corner patch sees."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def pixel_views(original, crop, corner):
    """The refining stage's views (scale 1, 32 px patches, 96 px windows) and where the top-left patch
    truly lies in its window."""
    windows, patches, origins = refine_views(original, crop, corner, 1.0, 32, 96)
    return torch.from_numpy(windows[None]), torch.from_numpy(patches[None]), origins[0]


def test_pixel_fit_puts_a_true_crop_at_its_exact_place_from_a_rough_estimate():
    original = smoothed_noise(300, 400)
    x, y, w, h = 123, 77, 150, 110
    windows, patches, origin = pixel_views(original, original[y:y + h, x:x + w], (x + 9, y - 7))
    truth = torch.tensor([x, y]) - torch.from_numpy(origin)
    stats, fitted = pixel_fit(windows, patches, (truth + torch.tensor([5.0, -6.0]))[None])
    assert torch.equal(fitted[0, 0], truth.float())
    assert torch.equal(fitted[0, 1], 64 - truth.float())  # the bottom-right patch, mirrored
    assert stats[0, 0] < -8 and stats[0, 1] < np.log(1e-3)  # no residual; none of either patch off the image


def test_pixel_fit_leaves_a_resized_crop_and_a_region_past_the_border_with_what_gives_them_away():
    original = smoothed_noise(300, 400, seed=1)
    x, y, w, h = 123, 77, 150, 110
    estimate = torch.tensor([[32.0, 32.0]])
    true_stats, _ = pixel_fit(*pixel_views(original, original[y:y + h, x:x + w], (x, y))[:2], estimate)
    resized = cv2.resize(original[y:y + h, x:x + w], (round(w * 1.08), round(h * 1.08)), interpolation=cv2.INTER_LINEAR)
    resized_stats, _ = pixel_fit(*pixel_views(original, resized, (x, y))[:2], estimate)
    assert resized_stats[0, 0] > true_stats[0, 0] + 5  # log residual: over e^5 = 150 times the true crop's
    wider = np.pad(original, ((0, 0), (0, 60), (0, 0)), mode="reflect")  # the scene continues past the right edge
    past = wider[y:y + h, 300:300 + w]  # 50 of its 150 columns are not the original's
    border_stats, _ = pixel_fit(*pixel_views(original, past, (300, y))[:2], estimate)
    assert border_stats[0, 1] > np.log(0.1)  # over a tenth of the patches hangs past the original


def test_a_pixel_head_added_to_a_trained_refiner_starts_silent(tmp_path):
    """Adding the pixel fit to a checkpoint's refining stage (train --refine-pixels --init) changes
    nothing it answers until it is trained; a refiner with it saves and loads like any other."""
    model = build_model(refine_config()).eval()
    saved = {"synth_config": SynthConfig(), "train_config": TrainConfig(), "epoch": 0, "metrics": {}}
    save_checkpoint(tmp_path / "plain.pt", model, **saved)
    checkpoint = load_checkpoint(tmp_path / "plain.pt")
    with_pixels = model_from_checkpoint(checkpoint, model_config=refine_config(refine_pixels=True)).eval()
    windows, patches = torch.randn(2, 2, 4, 96, 96), torch.randn(2, 2, 4, 32, 32)
    windows[:, :, 3], patches[:, :, 3] = 1.0, 1.0
    with torch.no_grad():
        before, after = model.refiner(windows, patches), with_pixels.refiner(windows, patches)
    assert torch.allclose(before.paired_logits, after.paired_logits)
    save_checkpoint(tmp_path / "pixels.pt", with_pixels, **saved)
    reloaded = model_from_checkpoint(load_checkpoint(tmp_path / "pixels.pt")).eval()
    assert reloaded.config.refine_pixels
    with torch.no_grad():
        assert torch.equal(reloaded.refiner(windows, patches).offsets, after.offsets)


def crop_fit_stats(original, crop, corner, scale=1.0, side=160):
    crops, regions = crop_fit_views(original, crop, [corner], scale, side)
    return crop_fit(torch.from_numpy(regions), torch.from_numpy(crops)[None])[0]


def test_crop_fit_views_put_a_true_crop_over_its_own_pixels():
    original = smoothed_noise(300, 400, seed=2)
    x, y, w, h = 123, 77, 150, 110
    crops, regions = crop_fit_views(original, original[y:y + h, x:x + w], [(x, y), (x - 5, y + 4)], 1.0, 160)
    r = CROP_FIT_RADIUS
    assert crops.shape == (4, 160, 160) and regions.shape == (2, 4, 160 + 2 * r, 160 + 2 * r)
    assert np.array_equal(regions[0, :, r:r + h, r:r + w], crops[:, :h, :w])  # the crop, pixel for pixel
    assert crops[3, :h, :w].all() and not crops[3, h:].any() and not crops[3, :, w:].any()
    assert np.array_equal(regions[1, :, r - 4:r - 4 + h, r + 5:r + 5 + w], crops[:, :h, :w])  # the corner 5, -4 off


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_crop_fit_tells_a_true_crop_from_a_resized_a_flipped_and_an_overhanging_one(scale):
    original = smoothed_noise(300, 400, seed=3)
    x, y, w, h = 123, 77, 150, 110
    crop = original[y:y + h, x:x + w]
    true_stats = crop_fit_stats(original, crop, (x + 3, y - 2), scale)  # a corner a few px off is forgiven
    assert true_stats[0] < np.log(0.01) and true_stats[1] < np.log(1e-3)  # little residual, nothing off the image
    # At half scale the true crop keeps a residual of its own (its reduced pixels straddle the original's:
    # x is odd), so the margin asked is a factor e^1.5 = 4.5; at full scale it is e^6 or more.
    margin = 6 if scale == 1 else 1.5
    resized = cv2.resize(crop, (round(w * 1.08), round(h * 1.08)), interpolation=cv2.INTER_LINEAR)
    assert crop_fit_stats(original, resized, (x, y), scale)[0] > true_stats[0] + margin
    assert crop_fit_stats(original, crop[:, ::-1], (x, y), scale)[0] > true_stats[0] + margin
    wider = np.pad(original, ((0, 0), (0, 60), (0, 0)), mode="reflect")  # the scene continues past the right edge
    past = wider[y:y + h, 300:300 + w]  # 50 of its 150 columns are not the original's
    assert crop_fit_stats(original, past, (300, y), scale)[1] > np.log(0.2)  # a third hangs past the original


def test_the_whole_crops_fit_is_the_same_taken_a_few_corners_at_a_time():
    """The closer look takes the fit FIT_BATCH corners at a time (less memory): each corner's figures are
    what all of them at once give."""
    original = smoothed_noise(300, 400, seed=4)
    crop = original[60:170, 100:250]
    corners = [(100, 60), (97, 63), (0, 0), (250, 190), (140, 20), (101, 59), (30, 200)]
    crop_view, regions = (torch.from_numpy(views) for views in crop_fit_views(original, crop, corners, 0.5, 96))
    together = crop_fit(regions, crop_view[None])
    apart = torch.cat([crop_fit(regions[start:start + 2], crop_view[None]) for start in range(0, len(corners), 2)])
    assert torch.allclose(together, apart, atol=1e-5)
    assert together[0, 0] < together[2, 0] - 1  # the true corner fits far better than a wrong one


def test_the_whole_crop_search_finds_the_corner_a_look_missed_by_tens_of_px():
    original = smoothed_noise(300, 400, seed=5)
    x, y, w, h = 140, 90, 150, 110
    crop = original[y:y + h, x:x + w]
    missed = (x - 25, y + 19)  # where a look on flat corners might settle
    crops, regions = crop_fit_views(original, crop, [missed], 1.0, 160, radius=32)
    place = inside_fit(torch.from_numpy(regions), torch.from_numpy(crops)[None], min_cover=0.0)[0][0].tolist()
    assert [missed[0] - 32 + place[0], missed[1] - 32 + place[1]] == [x, y]


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_a_flipped_crop_where_it_was_flipped_from_fits_better_mirrored(scale):
    original = smoothed_noise(300, 400, seed=4)
    x, y, w, h = 101, 60, 170, 120
    crop = original[y:y + h, x:x + w]
    excess = {}
    for name, part in (("true", crop), ("flipped", crop[:, ::-1])):
        crops, regions = crop_fit_views(original, np.ascontiguousarray(part), [(x, y)], scale, 192)
        excess[name] = float(mirror_excess(torch.from_numpy(regions), torch.from_numpy(crops)[None])[0])
    assert excess["true"] < -1.0  # the true crop fits at least e times better as it is
    assert excess["flipped"] > 1.0  # the flipped one at least e times better mirrored
    assert excess["flipped"] == pytest.approx(-excess["true"], abs=0.5)  # the same two fits, the other way round


def test_a_flip_of_a_nearly_symmetric_picture_fits_worse_than_its_mirror_image_where_that_was_cut():
    """A flipped crop that takes in the block fits the mirrored place but for the block, while its mirror
    image (the region it was cut from) fits there exactly: the whole-original search finds that place,
    and the fits differ by more than the mirror check's margin."""
    picture = nearly_symmetric_photo()
    x, y, w, h = 100, 80, 120, 100  # takes in the block at (120..170, 100..160)
    flipped = np.ascontiguousarray(picture[y:y + h, x:x + w][:, ::-1])
    mirrored_place = (400 - x - w, y)  # where the symmetric part of the flip fits
    crops, regions = crop_fit_views(picture, flipped, [mirrored_place], 1.0, 128)
    own = float(crop_fit(torch.from_numpy(regions), torch.from_numpy(crops)[None])[0, 0])
    found = coarse_place(picture, flipped[:, ::-1], 64)
    assert abs(found[0] - x) <= 2 and abs(found[1] - y) <= 2, found
    crops, regions = crop_fit_views(picture, np.ascontiguousarray(flipped[:, ::-1]), [found], 1.0, 128, radius=32)
    place, mirrored = inside_fit(torch.from_numpy(regions), torch.from_numpy(crops)[None])
    assert crop_fit_corner(found, place[0].numpy(), 1.0, 32).tolist() == [x, y]  # at full scale, exact
    mirrored = float(mirrored[0])
    assert mirrored < -8  # the noiseless region it came from: the residual's floor, log(1e-4)
    assert own - mirrored > 2


def test_the_inside_fit_leaves_out_places_past_the_image():
    """A region running 30 px past the original's right edge fits its own place to the noise, but that
    place hangs off the image: `crop_fit` finds it (with its overhang), `inside_fit` does not."""
    photo = smoothed_noise(300, 400, seed=8)
    original = photo[:, :300]
    x, y, w, h = 230, 100, 100, 80  # 30 px past the original's edge, within the photo
    region = photo[y:y + h, x:x + w]
    crops, regions = crop_fit_views(original, region, [(x, y)], 1.0, 128)
    crops, regions = torch.from_numpy(crops)[None], torch.from_numpy(regions)
    fit = crop_fit(regions, crops)[0]
    assert fit[1] > np.log(0.2)  # about 30% of it off the image at its best place
    inside = float(inside_fit(regions, crops)[1][0])
    assert inside > fit[0] + 2  # every place wholly on the image fits far worse
    # Asking all of it on the image where no place can have it: no fit at all, not an arbitrary place's.
    assert inside_fit(regions[..., :120, :120], crops, min_cover=1.0)[1].isinf().all()


def test_a_crop_head_added_to_a_trained_refiner_starts_silent(tmp_path):
    """Adding the whole crop's fit (train --stage crop-fit --init) changes nothing the refining stage
    answers until it is trained; the checkpoint keeps it."""
    model = build_model(refine_config(refine_pixels=True)).eval()
    saved = {"synth_config": SynthConfig(), "train_config": TrainConfig(), "epoch": 0, "metrics": {}}
    save_checkpoint(tmp_path / "plain.pt", model, **saved)
    with_crop = model_from_checkpoint(load_checkpoint(tmp_path / "plain.pt"),
                                      model_config=refine_config(refine_pixels=True, refine_crop_side=48)).eval()
    windows, patches = torch.randn(2, 2, 4, 96, 96), torch.randn(2, 2, 4, 32, 32)
    windows[:, :, 3], patches[:, :, 3] = 1.0, 1.0
    regions, crops = torch.randn(2, 4, 64, 64), torch.randn(2, 4, 48, 48)
    regions[:, 3], crops[:, 3] = 1.0, 1.0
    with torch.no_grad():
        before, after = model.refiner(windows, patches), with_crop.refiner(windows, patches, regions, crops)
    assert torch.allclose(before.paired_logits, after.paired_logits)
    save_checkpoint(tmp_path / "crop.pt", with_crop, **saved)
    assert model_from_checkpoint(load_checkpoint(tmp_path / "crop.pt")).config.refine_crop_side == 48


def test_the_whole_crop_head_can_lower_the_crop_logit_but_never_raise_it():
    """Answering, a veto: wherever the head leans towards "crop", it adds nothing; where it leans
    against, it lowers the crop logit by that margin and leaves the other alone. Training adds it whole."""
    refiner = build_model(refine_config(refine_pixels=True, refine_crop_side=48)).refiner.eval()
    regions, crops = torch.rand(3, 4, 64, 64), torch.rand(3, 4, 48, 48)
    regions[:, 3], crops[:, 3] = 1.0, 1.0
    last = refiner.crop_paired[-1]
    with torch.no_grad():
        last.bias.copy_(torch.tensor([0.0, 5.0]))  # "a crop", as sure as can be
        assert torch.equal(refiner.crop_logits(crop_fit(regions, crops)), torch.zeros(3, 2))
        last.bias.copy_(torch.tensor([2.0, -1.0]))  # "not a crop" by a margin of 3
        vetoed = refiner.crop_logits(crop_fit(regions, crops))
    assert torch.equal(vetoed[:, 0], torch.zeros(3)) and torch.allclose(vetoed[:, 1], torch.full((3,), -3.0))
    refiner.crop_paired.train()
    with torch.no_grad():
        last.bias.copy_(torch.tensor([0.0, 5.0]))
        assert torch.allclose(refiner.crop_logits(crop_fit(regions, crops)), torch.tensor([[0.0, 5.0]] * 3))


def test_a_whole_crop_head_trained_at_the_answers_corners_is_added_whole():
    """train --stage crop-mined marks its head as one that may raise the crop logit too."""
    adding = build_model(refine_config(refine_pixels=True, refine_crop_side=48, refine_crop_adds=True)).refiner.eval()
    regions, crops = torch.rand(3, 4, 64, 64), torch.rand(3, 4, 48, 48)
    regions[:, 3], crops[:, 3] = 1.0, 1.0
    with torch.no_grad():
        adding.crop_paired[-1].bias.copy_(torch.tensor([0.0, 5.0]))
        adding.crop_paired[-1].weight.zero_()
        assert torch.allclose(adding.crop_logits(crop_fit(regions, crops)), torch.tensor([[0.0, 5.0]] * 3))


@pytest.mark.parametrize("arch", ["resnet18", "siamese-resnet18"])
def test_the_model_folded_for_answering_answers_as_the_trained_one(arch):
    """`for_inference` folds every batch norm into its convolution (none is left), puts the weights in
    channels-last layout, and does not change the answers: the heads' outputs, and for the siamese
    model its refining stage's look and scan. Batch norms get drawn statistics, so that folding them
    is not the identity; the input is a real pair (a photo and its crop, with their masks)."""
    torch.manual_seed(0)
    siamese = arch.startswith("siamese")
    model = build_model(refine_config(arch=arch) if siamese else ModelConfig(arch=arch, input_size=64)).eval()
    if siamese:
        model.start_refiner()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    photo = cv2.resize(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8), (64, 64))
    images = torch.from_numpy(fit_pair(photo, photo[8:40, 16:56], 64, "common", masks=siamese))[None]
    windows, patches = torch.rand(1, 2, 4, 96, 96), torch.rand(1, 2, 4, 32, 32)
    windows[:, :, 3], patches[:, :, 3] = 1.0, 1.0
    wholes = torch.rand(2, 4, 96, 128)
    wholes[:, 3] = 1.0

    def answers(net):
        with torch.no_grad():
            outputs = list(net(images))
            if siamese:
                look = net.refiner(windows, patches)
                outputs += [look.paired_logits, look.offsets, net.refiner.scan(wholes, patches[0], (64.0, 32.0), 4)]
        return outputs

    before = answers(model)
    folded = for_inference(for_inference(model))  # a second call leaves a folded model as it is
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert folded.trunk[0].weight.is_contiguous(memory_format=torch.channels_last)
    after = answers(folded)
    assert any(output.abs().max() > 1e-3 for output in before)  # something to compare
    for old, new in zip(before, after, strict=True):
        assert torch.allclose(old, new, rtol=1e-3, atol=1e-5), (old, new)


@pytest.mark.parametrize("height", [1, 7, 16, 17, 40, 61, 64, 65, 99])
@pytest.mark.parametrize("band", [16, 30])
def test_the_stem_in_bands_gives_the_stems_values(height, band):
    """Row bands that read 8 rows of their neighbours leave every output row as the whole image gives it:
    heights that fill the last band, leave it a row, or need one band only, and a band that is not a
    whole number of output rows; folded, channels-last (as answering runs it) and unfolded, in eval mode."""
    torch.manual_seed(0)
    stem = resnet_trunk("resnet18", layers=2)[:4].eval()
    for module in stem.modules():  # drawn statistics, so that the batch norm is not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    images = torch.rand(2, 3, height, 23)
    with torch.no_grad():
        for net in (stem, for_inference(torch.nn.Sequential(*stem))):
            whole, banded = net(images), stem_in_bands(net, images, band)
            assert banded.shape == whole.shape == (2, 64, -(-height // 4), 6)
            assert torch.allclose(banded, whole, atol=1e-6)


def test_the_refiners_features_of_a_tall_view_are_its_trunks_and_training_runs_the_stem_whole():
    """The refining stage's features of a view taller than a band (the scan's) are the trunk's over the whole
    view, on the model folded for answering; a stem in training mode is never banded (batch norm's
    statistics are the whole batch's)."""
    torch.manual_seed(0)
    model = build_model(refine_config(arch="siamese-resnet18"))
    model.start_refiner()
    folded = for_inference(model)
    refiner = folded.refiner
    views = torch.rand(1, 4, 304, 72)  # whole cells, as `data.scan_views` pads them
    views[:, 3] = 1.0
    heights = []  # what the trunk's first convolution is given: banded, or the whole view
    refiner.trunk[0].register_forward_hook(lambda module, inputs, output: heights.append(inputs[0].shape[2]))
    with torch.no_grad():
        features, _ = refiner.features(views)
        assert heights == [264, 56]  # two bands of 256 rows (64 output rows), each with its neighbour's 8
        whole = F.normalize(refiner.project(refiner.trunk(views[:, :3])), dim=1)
    assert features.shape == whole.shape == (1, refiner.project[0].out_channels, 304 // STRIDE, 72 // STRIDE)
    assert torch.allclose(features, whole, atol=1e-5)
    training = build_model(refine_config(arch="siamese-resnet18")).train()  # not folded: its batch norms learn
    training.start_refiner()
    trained = training.refiner
    trained.trunk[0].register_forward_hook(lambda module, inputs, output: heights.append(inputs[0].shape[2]))
    trained.features(views)
    assert heights[-1] == 304  # the stem runs whole

    stem = resnet_trunk("resnet18", layers=1)[:4].train()
    images = torch.rand(2, 3, 40, 16)
    calls = []
    stem.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[2]))
    stem_in_bands(stem, images, band=16)
    assert calls == [40]
    stem.eval()
    stem_in_bands(stem, images, band=16)
    assert calls[1:] == [24, 32, 16]  # three bands of 4 output rows, each with its neighbours' 8 rows
    with pytest.raises(ValueError, match="at least one output row"):
        stem_in_bands(stem, images, band=3)

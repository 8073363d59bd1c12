"""Predictor's file paths: what each method reads (grey, reduced views), batches answered as a stream."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import grainy_gradient, nearly_symmetric_photo, textured_photo, two_colour_field
from PIL import Image

from cropnet.errors import ImageError
from cropnet.images import image_header, load_image
from cropnet.predict import (
    Predictor,
    Proposal,
    answer_encoding_gap,
    network_scales,
    predict_classic,
    verified_places,
)
from cropnet.quantization import EncodingTest, step_energy
from cropnet.verify import PairMatch, VerifyConfig, match_pair, to_grey


@pytest.fixture
def pair_files(tmp_path):
    """A 400x300 original, its 150x100 crop at (123, 45), a crop of another photo, and a flipped crop."""
    original = textured_photo(11, 400, 300)
    Image.fromarray(original).save(tmp_path / "original.jpg", quality=90)
    Image.fromarray(original[45:145, 123:273]).save(tmp_path / "crop.jpg", quality=60)
    Image.fromarray(textured_photo(12, 400, 300)).save(tmp_path / "other-full.png")
    Image.fromarray(textured_photo(12, 400, 300)[45:145, 123:273]).save(tmp_path / "other.png")
    Image.fromarray(original[45:145, 123:273, :][:, ::-1]).save(tmp_path / "flip.jpg", quality=60)
    return tmp_path


def test_batch_answers_in_order_with_errors_in_place(pair_files):
    predictor = Predictor("classic")
    original, crop = str(pair_files / "original.jpg"), str(pair_files / "crop.jpg")
    pairs = [(original, crop), (crop, original), (str(pair_files / "missing.jpg"), crop),
             (original, str(pair_files / "other.png")), (original, str(pair_files / "flip.jpg"))]
    answers = list(predictor.predict_many(pairs))
    assert len(answers) == 5
    assert (answers[0].paired, answers[0].swapped, answers[0].top_left) == (True, False, (123, 45))
    assert (answers[1].paired, answers[1].swapped, answers[1].top_left) == (True, True, (123, 45))
    assert isinstance(answers[2], ImageError) and "missing.jpg" in str(answers[2])
    assert not answers[3].paired and not answers[4].paired
    # The stream gives what one pair at a time gives.
    for (a, b), answer in zip(pairs, answers, strict=True):
        if not isinstance(answer, Exception):
            assert predictor.predict_files(a, b).to_json() == answer.to_json()


def test_nets_batch_answers_in_order_with_errors_in_place(pair_files, monkeypatch):
    """net reads each pair on the answering thread (no read-ahead): the stream is still one answer per pair,
    a bad file's error in its place, each what one pair at a time gives."""
    predictor = Predictor("net")
    original, crop = str(pair_files / "original.jpg"), str(pair_files / "crop.jpg")
    pairs = [(original, crop), (str(pair_files / "missing.jpg"), crop), (crop, original)]

    def no_thread(*args, **kwargs):
        raise AssertionError("net's batch started a thread of its own")

    monkeypatch.setattr("cropnet.predict.ThreadPoolExecutor", no_thread)
    answers = list(predictor.predict_many(pairs))
    assert len(answers) == 3
    assert isinstance(answers[1], ImageError) and "missing.jpg" in str(answers[1])
    for index in (0, 2):
        assert answers[index].to_json() == predictor.predict_files(*pairs[index]).to_json()
    assert (answers[0].paired, answers[0].swapped) == (True, False)
    assert (answers[2].paired, answers[2].swapped) == (True, True)


def test_batch_of_nothing():
    assert list(Predictor("classic").predict_many([])) == []


def test_grey_decoding_is_the_luma_of_the_rgb(pair_files):
    rgb = load_image(pair_files / "original.jpg").astype(np.float64)
    grey = load_image(pair_files / "original.jpg", grey=True)
    assert grey.shape == rgb.shape[:2] and grey.dtype == np.uint8
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    # JPEG's own Y channel against luma of the decoded RGB: equal but for rounding and clipped colours.
    assert np.mean((grey - luma) ** 2) < 1.0


@pytest.mark.parametrize("scale", [0.5, 0.13, 0.05])
def test_reduced_decoding_has_the_asked_size(pair_files, scale):
    reduced = load_image(pair_files / "original.jpg", scale=scale)
    assert reduced.shape == (round(300 * scale), round(400 * scale), 3)
    def resized(name):
        return np.asarray(Image.fromarray(load_image(pair_files / name)).resize(
            reduced.shape[1::-1], Image.Resampling.BILINEAR, reducing_gap=3.0), dtype=np.float64)

    # The same picture, through DCT scaling: the photos' pixel grain differs, their scenes do not.
    same = np.mean(np.abs(reduced - resized("original.jpg")))
    other = np.mean(np.abs(reduced - resized("other-full.png")))
    assert same < 10 and same < other / 3


def test_network_scales_keep_the_input_size():
    assert network_scales(((4000, 3000), (1500, 1000)), 128, "common") == (128 / 4000, 128 / 4000)
    assert network_scales(((100, 80), (60, 50)), 128, "common") == (1.0, 1.0)  # never enlarged
    assert network_scales(((4000, 3000), (1500, 1000)), 128, "stretch") == (128 / 3000, 128 / 1000)


@pytest.mark.parametrize("original_name", ["original.jpg", "original.png"])
def test_net_and_hybrid_read_reduced_views_and_answer_as_from_arrays(pair_files, tiny_checkpoint, original_name):
    """A JPEG's view is decoded reduced; a PNG's, in hybrid, is made from its one full decode."""
    Image.open(pair_files / "original.jpg").save(pair_files / "original.png")
    original, crop = pair_files / original_name, pair_files / "crop.jpg"
    for method in ("net", "hybrid"):
        predictor = Predictor(method, tiny_checkpoint)
        from_files = predictor.predict_files(original, crop)
        from_arrays = predictor.predict_arrays(load_image(original), load_image(crop))
        # Same network scores (the reduced view loses nothing the 64-px input keeps), up to resampling.
        assert from_files.scores["paired"] == pytest.approx(from_arrays.scores["paired"], abs=0.05)
        if method == "hybrid":
            assert (from_files.paired, from_files.top_left) == (True, (123, 45))


def test_the_refining_stage_answers_the_same_whatever_its_batch(pair_files, monkeypatch):
    """`--method net` with the shipped model looks at up to 8 candidate corners, a few per forward pass
    (`REFINE_BATCH`, for memory); the batch size must not change the answer."""
    import cropnet.predict

    predictor = Predictor("net")
    original, crop = load_image(pair_files / "original.jpg"), load_image(pair_files / "crop.jpg")
    assert len(set(predictor.propose(original, crop).candidates)) > 2  # several batches of one
    answers = []
    for batch in (1, 8):
        monkeypatch.setattr(cropnet.predict, "REFINE_BATCH", batch)
        answers.append(predictor.predict_arrays(original, crop))
    assert answers[0].paired and answers[0].top_left == answers[1].top_left
    assert abs(answers[0].top_left[0] - 123) <= 2 and abs(answers[0].top_left[1] - 45) <= 2
    assert answers[0].scores["paired"] == pytest.approx(answers[1].scores["paired"], abs=1e-4)


def test_the_second_look_starts_at_the_first_looks_corner_and_is_kept_only_when_surer(monkeypatch):
    from cropnet.predict import Look, Proposal

    predictor = Predictor("classic")  # no network needed: the looks are stood in for
    monkeypatch.setattr(predictor, "mirror_check", lambda look, *images: look.answer)
    first_proposal = Proposal(True, False, (10, 20), 0.9, 0.1, candidates=((300, 40), (5, 5)))
    looks = []
    for second_prob, kept in ((0.8, (100, 50)), (0.6, (101, 52))):  # surer than the first (0.7), or not
        def closer_look(proposal, a, b, sizes, second_prob=second_prob):
            looks.append(proposal)
            if proposal.candidates:  # the first look
                return Look(proposal._replace(top_left=(101, 52), paired_prob=0.7, candidates=()))
            return Look(proposal._replace(top_left=(100, 50), paired_prob=second_prob))
        monkeypatch.setattr(predictor, "closer_look", closer_look)
        answer = predictor.refine(first_proposal, None, None)
        assert looks[-1].top_left == (101, 52) and looks[-1].candidates == ()  # from the first look's corner
        assert answer.top_left == kept


def test_the_scan_runs_only_when_every_look_fails_and_answers_only_when_sure(monkeypatch):
    import cropnet.predict
    from cropnet.predict import SCAN_PEAKS, SCAN_THRESHOLD, Look, Proposal

    predictor = Predictor("classic")  # no network needed: the looks and the scan are stood in for
    start = Proposal(False, False, (10, 20), 0.2, 0.1, candidates=((300, 40),))
    scans, looks = [], []

    def scan(proposal, a, b, sizes):
        scans.append(proposal)
        return [(7, 8), (9, 9), (3, 4)]

    monkeypatch.setattr(predictor, "scan", scan)
    monkeypatch.setattr(predictor, "mirror_check", lambda look, *images: look.answer)
    monkeypatch.setattr(cropnet.predict, "WHOLE_PLACE_THRESHOLD", 0.0)  # no last look: tested on its own
    sure, unsure = SCAN_THRESHOLD + 0.05, (SCAN_THRESHOLD + 0.5) / 2  # both above 0.5
    for look_prob, scan_prob, expected in ((0.9, sure, (1, 1)), (0.3, sure, (7, 8)), (0.3, unsure, (1, 1))):
        scans.clear()
        looks.clear()

        def closer_look(proposal, a, b, sizes, look_prob=look_prob, scan_prob=scan_prob):
            looks.append(proposal)
            if proposal.top_left == (7, 8):  # the scan's best place
                return Look(proposal._replace(paired=scan_prob >= 0.5, paired_prob=scan_prob))
            return Look(proposal._replace(top_left=(1, 1), paired=look_prob >= 0.5, paired_prob=look_prob,
                                          candidates=()))

        monkeypatch.setattr(predictor, "closer_look", closer_look)
        answer = predictor.refine(start, None, None)
        assert answer.top_left == expected and answer.paired == (expected == (7, 8) or look_prob >= 0.5)
        assert len(scans) == (look_prob < 0.5) and SCAN_PEAKS > 0
        if scans:  # the scan's places are looked at: its best first, the rest as candidates
            assert looks[-1].top_left == (7, 8) and looks[-1].candidates == ((9, 9), (3, 4))


def test_the_whole_crops_place_is_looked_at_only_when_the_scan_fails_too_and_kept_only_when_sure(monkeypatch):
    """The last look: after the scan fails, from the whole crop's best place over the whole original, in the
    first stage's order; kept only when sure. Not taken where no place qualifies (an infinite residual) or
    with a checkpoint that does not compare the whole crop."""
    from types import SimpleNamespace

    from cropnet.predict import SCAN_THRESHOLD, WHOLE_PLACE_THRESHOLD, Look, Proposal

    predictor = Predictor("classic")  # no network needed: the looks, the scan and the place are stood in for
    start = Proposal(False, False, (10, 20), 0.2, 0.1, candidates=((300, 40),))
    monkeypatch.setattr(predictor, "scan", lambda *args: [(7, 8)])
    monkeypatch.setattr(predictor, "mirror_check", lambda look, *images: look.answer)
    placed = []
    sure, unsure = WHOLE_PLACE_THRESHOLD + 0.05, (WHOLE_PLACE_THRESHOLD + 0.5) / 2  # both above 0.5
    cases = [  # crop side of the checkpoint's whole-crop fit, the scan's look, the place's residual and look
        (192, SCAN_THRESHOLD, -7.0, sure, (7, 8)), (192, 0.3, -7.0, sure, (60, 70)),
        (192, 0.3, -7.0, unsure, (1, 1)), (192, 0.3, float("inf"), sure, (1, 1)), (0, 0.3, -7.0, sure, (1, 1))]
    for crop_side, scan_prob, residual, place_prob, expected in cases:
        placed.clear()
        predictor.model = SimpleNamespace(config=SimpleNamespace(refine_crop_side=crop_side, refine_crop_adds=False))
        monkeypatch.setattr(predictor, "whole_crop_place",
                            lambda proposal, a, b, sizes, residual=residual: placed.append(proposal) or ((60, 70),
                                                                                                          residual))

        def closer_look(proposal, a, b, sizes, scan_prob=scan_prob, place_prob=place_prob):
            prob = {(7, 8): scan_prob, (60, 70): place_prob}.get(proposal.top_left, 0.3)
            corner = proposal.top_left if prob != 0.3 else (1, 1)
            return Look(proposal._replace(top_left=corner, paired=prob >= 0.5, paired_prob=prob, candidates=()))

        monkeypatch.setattr(predictor, "closer_look", closer_look)
        answer = predictor.refine(start, None, None)
        assert answer.top_left == expected and answer.paired == (expected != (1, 1))
        assert placed == ([start] if scan_prob < SCAN_THRESHOLD and crop_side else [])


def test_the_whole_crops_place_over_the_whole_original_is_the_crops_corner(pair_files):
    """The test pair's crop (at (123, 45)) sought over the whole original fits there, to the JPEG noise;
    its mirror image fits nowhere as well."""
    from cropnet.predict import Proposal

    predictor = Predictor("net")
    original, crop = load_image(pair_files / "original.jpg"), load_image(pair_files / "crop.jpg")
    anywhere = Proposal(False, False, (0, 0), 0.1, 0.1)
    corner, residual = predictor.whole_crop_place(anywhere, original, crop, None)
    assert corner == (123, 45)
    _, mirrored_residual = predictor.whole_crop_place(anywhere, original, crop, None, mirrored=True)
    assert mirrored_residual > residual + 2


@pytest.mark.parametrize("adds", [True, False])
def test_a_turned_down_corner_is_searched_with_the_whole_crop_when_its_head_adds(monkeypatch, adds):
    """Both looks say "not a crop": with a whole-crop head that adds (ModelConfig.refine_crop_adds), the whole
    crop's best place nearby is looked at before any scan, and that look kept when surer; with a veto-only
    head nothing is searched."""
    from types import SimpleNamespace

    import cropnet.predict
    from cropnet.predict import Look, Proposal

    predictor = Predictor("classic")  # no network needed: the looks and the search are stood in for
    predictor.model = SimpleNamespace(config=SimpleNamespace(refine_crop_adds=adds))
    monkeypatch.setattr(predictor, "scan", lambda *args: [(0, 0)])
    monkeypatch.setattr(predictor, "mirror_check", lambda look, *images: look.answer)
    monkeypatch.setattr(cropnet.predict, "WHOLE_PLACE_THRESHOLD", 0.0)  # no last look: tested on its own
    searched, looks = [], []
    monkeypatch.setattr(predictor, "whole_crop_place",
                        lambda answer, a, b, sizes, near: searched.append(near) or ((40, 30), -7.0))

    def closer_look(proposal, a, b, sizes):
        looks.append(proposal.top_left)
        if proposal.top_left == (40, 30):  # the whole crop's place: the look from there is sure
            return Look(proposal._replace(paired=True, paired_prob=0.8))
        return Look(proposal._replace(top_left=(12, 21), paired=False, paired_prob=0.3, candidates=()))

    monkeypatch.setattr(predictor, "closer_look", closer_look)
    answer = predictor.refine(Proposal(False, False, (10, 20), 0.2, 0.1, candidates=((300, 40),)), None, None)
    if adds:
        assert searched == [(12, 21)] and looks[2] == (40, 30) and answer.top_left == (40, 30) and answer.paired
    else:
        assert not searched and (40, 30) not in looks and not answer.paired


def test_the_whole_crop_search_puts_a_missed_corner_back(pair_files):
    """The test pair's crop lies at (123, 45); from a corner 22 and 14 px off, the whole crop finds it."""
    from cropnet.predict import Proposal

    predictor = Predictor("net")
    original, crop = load_image(pair_files / "original.jpg"), load_image(pair_files / "crop.jpg")
    missed = Proposal(False, False, (123 - 22, 45 + 14), 0.2, 0.1)
    assert predictor.whole_crop_place(missed, original, crop, None, near=missed.top_left)[0] == (123, 45)
    assert not predictor.searches_whole_crop  # the shipped head is a veto: answering never searches so


def test_the_scan_finds_a_crop_over_the_whole_original(pair_files):
    """The shipped model's refining features over the whole of the test pair's original: one of the
    places it offers is within a feature cell of the true corner (123, 45)."""
    predictor = Predictor("net")
    original, crop = load_image(pair_files / "original.jpg"), load_image(pair_files / "crop.jpg")
    proposal = predictor.propose(original, crop)
    corners = predictor.scan(proposal, original, crop, None)
    assert 1 <= len(corners) <= 8
    assert min(max(abs(x - 123), abs(y - 45)) for x, y in corners) <= 8, corners


def look_at(predictor, original, part, said):
    """The `Look` a closer look answering `said` takes: the whole crop's fit of `part` at its corner."""
    import torch

    from cropnet.data import crop_fit_scale, crop_fit_views
    from cropnet.model import crop_fit
    from cropnet.predict import Look

    config = predictor.model.config
    scale = crop_fit_scale(original.shape[1::-1], part.shape[1::-1], config.input_size, config.refine_zoom,
                           config.refine_crop_side)
    crop_view, regions = (torch.from_numpy(views) for views in
                          crop_fit_views(original, part, [said.top_left], scale, config.refine_crop_side))
    return Look(said, crop_view, regions[0], crop_fit(regions, crop_view[None])[0])


def test_a_crop_that_fits_better_mirrored_is_no_crop(pair_files):
    """The test pair's crop and its flipped copy, both said to be at the crop's place (123, 45), with the
    views a closer look takes there: the flip fits better mirrored and is turned down; the true crop is
    left as it was."""
    from cropnet.predict import Proposal

    predictor = Predictor("net")
    original = load_image(pair_files / "original.jpg")
    said = Proposal(True, False, (123, 45), 0.95, 0.1)
    crop, flip = load_image(pair_files / "crop.jpg"), load_image(pair_files / "flip.jpg")
    assert predictor.mirror_check(look_at(predictor, original, crop, said), original, crop, None) == said
    flipped = predictor.mirror_check(look_at(predictor, original, flip, said), original, flip, None)
    assert not flipped.paired and flipped.paired_prob < 0.5 and flipped.top_left == (123, 45)


def test_a_flip_found_at_the_mirrored_place_of_a_nearly_symmetric_picture_is_no_crop():
    """A picture whose right half mirrors its left but for a block; a region that takes in the block,
    flipped, said to be a crop at the mirrored place, where all but the block fits. Compared only there
    (no whole-original search) the flip passes; sought over the whole original, its mirror image fits the
    region it came from to the noise, and the flip is turned down. A true crop at that place stays."""
    from cropnet.model import mirror_excess
    from cropnet.predict import MIRROR_MARGIN, Proposal

    predictor = Predictor("net")
    picture = nearly_symmetric_photo()
    x, y, w, h = 100, 80, 120, 100  # takes in the block at (120..170, 100..160)
    said = Proposal(True, False, (400 - x - w, y), 0.95, 0.1)  # the mirrored place
    flip = np.ascontiguousarray(picture[y:y + h, x:x + w][:, ::-1])
    crop = picture[y:y + h, said.top_left[0]:said.top_left[0] + w]
    assert predictor.mirror_check(look_at(predictor, picture, crop, said), picture, crop, None) == said
    looked = look_at(predictor, picture, flip, said)
    turned_down = predictor.mirror_check(looked, picture, flip, None)
    assert not turned_down.paired and turned_down.paired_prob < 0.5
    # Where it was found, the flip fits about as well as its mirror image: that comparison alone lets it pass.
    assert float(mirror_excess(looked.region[None], looked.crop_view[None], looked.fit[None])[0]) <= MIRROR_MARGIN


@pytest.mark.parametrize("original_size", [(48, 40), (30, 90)])
def test_the_net_answers_pairs_smaller_than_its_views(original_size):
    """Originals smaller than one corner patch of the closer view: the looks, the scan (a crop of
    another photo, so the looks fail) and the mirror check must all still answer."""
    width, height = original_size
    original = textured_photo(5, width, height)
    predictor = Predictor("net")
    crop = original[4:4 + height // 2, 6:6 + width // 2]
    other = textured_photo(6, width, height)[4:4 + height // 2, 6:6 + width // 2]
    for part in (crop, other):
        answer = predictor.predict_arrays(original, np.ascontiguousarray(part))
        assert answer.top_left is None or (0 <= answer.top_left[0] <= width // 2 and
                                           0 <= answer.top_left[1] <= height - height // 2)


def test_two_png_files_must_match_as_a_whole_but_a_jpeg_need_not(tmp_path):
    Image.fromarray(grainy_gradient(1, 4)).save(tmp_path / "original.png")
    same_scene = grainy_gradient(2, 4)[50:170, 80:260]  # the same ramp, other grain
    Image.fromarray(same_scene).save(tmp_path / "scene.png")
    Image.fromarray(same_scene).save(tmp_path / "scene.jpg", quality=90)
    Image.fromarray(grainy_gradient(1, 4)[50:170, 80:260]).save(tmp_path / "crop.png")
    predictor = Predictor("classic")
    original = str(tmp_path / "original.png")
    assert not predictor.predict_files(original, str(tmp_path / "scene.png")).paired
    # As a JPEG, its difference is within what verification forgives, and it verifies at several places
    # along the ramp; at none of them can one picture have made both files (`answer_encoding_gap`).
    as_jpeg = predictor.predict_files(original, str(tmp_path / "scene.jpg"))
    assert not as_jpeg.paired and as_jpeg.scores["encoding_gap"] > 2 * VerifyConfig().max_encoding_gap
    found = predictor.predict_files(str(tmp_path / "crop.png"), original)
    assert (found.paired, found.swapped, found.top_left) == (True, True, (80, 50))


def smooth_field(seed: int, height: int = 300, width: int = 400) -> np.ndarray:
    """Float grey levels of a smooth landscape of light: a random 4 x 5 grid of levels, cubically interpolated."""
    coarse = np.random.default_rng(seed).uniform(-60, 60, (4, 5)).astype(np.float32)
    return np.clip(128 + cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255)


def test_a_resized_smooth_crop_is_turned_down_by_its_files_quantization(tmp_path):
    field = smooth_field(2)
    Image.fromarray(np.rint(field).astype(np.uint8)).save(tmp_path / "original.png")
    x, y, width, height = 120, 90, 96, 72
    larger = field[y:y + round(height * 1.1), x:x + round(width * 1.1)]
    resized = np.rint(cv2.resize(larger, (width, height), interpolation=cv2.INTER_AREA)).astype(np.uint8)
    crop = np.rint(field[y:y + height, x:x + width]).astype(np.uint8)
    predictor = Predictor("classic")
    original = str(tmp_path / "original.png")
    for quality in (90, 60):
        Image.fromarray(resized).save(tmp_path / "resized.jpg", quality=quality)
        Image.fromarray(crop).save(tmp_path / "crop.jpg", quality=quality)
        pixels = load_image(original, grey=True), load_image(tmp_path / "resized.jpg", grey=True)
        verified = match_pair(*pixels)
        assert verified.paired and verified.ambiguous  # it fits within JPEG noise, as a smooth crop does
        # Without the files, the pixels alone turn it down: the original resampled fits it better (test_resampling).
        pixels_only = predictor.predict_arrays(*pixels)
        assert not pixels_only.paired and pixels_only.scores["resampled_share"] < VerifyConfig().max_resampled_share
        turned_down = predictor.predict_files(original, str(tmp_path / "resized.jpg"))
        assert not turned_down.paired and turned_down.scores["encoding_gap"] > 2 * VerifyConfig().max_encoding_gap
        found = predictor.predict_files(original, str(tmp_path / "crop.jpg"))
        assert (found.paired, found.swapped, found.top_left) == (True, False, (x, y))
        assert found.scores["encoding_gap"] < 0.01
    # Decoded arrays and their files' headers, as RGB (what hybrid's network reads): the same answer.
    headers = image_header(original), image_header(tmp_path / "resized.jpg")
    as_rgb = predictor.predict_arrays(load_image(original), load_image(tmp_path / "resized.jpg"), headers=headers)
    assert not as_rgb.paired and as_rgb.scores["encoding_gap"] == turned_down.scores["encoding_gap"]


def test_a_grey_png_against_a_colour_png_is_held_to_rounding_too(tmp_path):
    Image.fromarray(grainy_gradient(1, 4)).convert("RGB").save(tmp_path / "original.png")
    Image.fromarray(grainy_gradient(1, 4)[50:170, 80:260]).save(tmp_path / "crop-grey.png")  # its own pixels
    Image.fromarray(grainy_gradient(2, 4)[50:170, 80:260]).save(tmp_path / "scene-grey.png")  # other grain
    predictor = Predictor("classic")
    original = str(tmp_path / "original.png")
    found = predictor.predict_files(original, str(tmp_path / "crop-grey.png"))
    assert (found.paired, found.swapped, found.top_left) == (True, False, (80, 50))
    assert not predictor.predict_files(original, str(tmp_path / "scene-grey.png")).paired


def crop_files(tmp_path, picture: np.ndarray, quality: int, crop_noise: int = 0) -> tuple:
    """`picture` saved as a JPEG at `quality`, and its 60 x 80 crop at (45, 30) cut from the decoded file,
    with uniform noise of up to `crop_noise` grey levels, saved as a PNG: (original, crop, headers, paths)."""
    paths = tmp_path / "original.jpg", tmp_path / "crop.png"
    Image.fromarray(picture).save(paths[0], quality=quality)
    original = load_image(paths[0], grey=True)
    noise = np.random.default_rng(0).integers(-crop_noise, crop_noise + 1, (80, 60))
    crop = np.clip(original[30:110, 45:105].astype(int) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(crop).save(paths[1])
    return original, crop, tuple(map(image_header, paths)), tuple(map(str, paths))


def repeating_pattern() -> np.ndarray:
    """A textured tile repeated every 37 px across (off the JPEG grid): 222 x 150."""
    return np.tile(textured_photo(4, 37, 150), (1, 6, 1))


def places(original: np.ndarray, crop: np.ndarray) -> set[tuple[int, int]]:
    return {found.top_left for found in verified_places(original, crop, VerifyConfig())}


def test_a_textured_answer_at_another_repeat_moves_to_where_the_files_agree(tmp_path):
    # A repeating texture is answered "ambiguous" at one of its repeats, which need not be where the crop was
    # cut; there the files disagree (the JPEG's grid falls elsewhere on the pattern), at the crop's own place not.
    original, crop, headers, paths = crop_files(tmp_path, repeating_pattern(), quality=50)
    assert step_energy(crop) > VerifyConfig().smooth_crop_energy
    assert {(8, 30), (45, 30), (82, 30), (119, 30), (156, 30)} <= places(original, crop)
    for x in (8, 82, 119, 156):
        elsewhere = PairMatch(True, False, (x, 30), 1.0, ambiguous=True, candidates=1, searched="proposal")
        assert EncodingTest(original, crop, (x, 30), *headers).gap(x, 30) > 2 * VerifyConfig().max_encoding_gap
        moved, gap = answer_encoding_gap(elsewhere, original, crop, headers, VerifyConfig())
        assert (moved.paired, moved.swapped, moved.top_left, moved.ambiguous) == (True, False, (45, 30), True)
        assert moved.searched == "full" and moved.candidates >= 1 and gap < 0.01
    sure = PairMatch(True, False, (82, 30), 1.0, ambiguous=False)
    assert answer_encoding_gap(sure, original, crop, headers, VerifyConfig()) == (sure, None)
    # hybrid: the network's corner at another repeat; the answer is the crop's own place all the same
    at_a_repeat = Proposal(True, False, (119, 30), 0.9, 0.1)
    answer = predict_classic(original, crop, proposal=at_a_repeat, headers=headers)
    assert (answer.paired, answer.swapped, answer.top_left) == (True, False, (45, 30))
    assert answer.scores["encoding_gap"] < 0.01


def test_a_textured_answer_the_files_disagree_with_everywhere_it_verifies_is_turned_down(tmp_path):
    # The crop's pixels moved by up to 12 grey levels: within what verification forgives, beyond the steps of
    # a JPEG at quality 95, so at no place can one picture have made both files. On one picture the answer
    # is the only place the crop verifies; on a repeating pattern every repeat verifies, and none fits.
    for picture, verifying in ((textured_photo(4, 222, 150), 1), (repeating_pattern(), 5)):
        original, crop, headers, paths = crop_files(tmp_path, picture, quality=95, crop_noise=12)
        assert (45, 30) in places(original, crop) and len(places(original, crop)) == verifying
        answer = PairMatch(True, False, (45, 30), 1.0, ambiguous=True)
        kept, gap = answer_encoding_gap(answer, original, crop, headers, VerifyConfig())
        assert kept.top_left == answer.top_left and gap > 2 * VerifyConfig().max_encoding_gap  # measured 3.2 once
    # Through `Predictor`: the pattern's answer is ambiguous, so tested (the one picture's is sure, so not).
    turned_down = Predictor("classic").predict_files(*paths)
    assert not turned_down.paired and turned_down.scores["encoding_gap"] > 2 * VerifyConfig().max_encoding_gap


def test_a_window_answer_at_a_resized_copy_sends_hybrid_to_the_full_search(tmp_path):
    # The network's corner points at a resized copy of the crop's smooth region, far from the true place:
    # within the window the copy fits within JPEG noise, but the original resampled fits it better (and
    # its files leave a gap), so the whole original is searched, as when nothing in the window verifies.
    field = smooth_field(1)
    x, y, width, height = 120, 90, 96, 72
    canvas = np.full((300, 1000), 128, np.float32)
    canvas[:, :400] = field
    larger = field[y:y + round(height * 1.06), x:x + round(width * 1.06)]
    canvas[120:120 + height, 800:800 + width] = cv2.resize(larger, (width, height), interpolation=cv2.INTER_AREA)
    Image.fromarray(np.rint(canvas).astype(np.uint8)).save(tmp_path / "original.png")
    Image.fromarray(np.rint(canvas[y:y + height, x:x + width]).astype(np.uint8)).save(tmp_path / "crop.jpg", quality=90)
    paths = tmp_path / "original.png", tmp_path / "crop.jpg"
    original, crop = (load_image(path, grey=True) for path in paths)
    at_the_copy = Proposal(True, False, (800, 120), 0.9, 0.1)
    without_resampling = replace(VerifyConfig(), min_resampled_gain=math.inf)
    in_window = predict_classic(original, crop, proposal=at_the_copy, verify_config=without_resampling)
    assert in_window.searched == "proposal" and in_window.top_left == (800, 120)  # the copy verifies
    pixels_only = predict_classic(original, crop, proposal=at_the_copy)
    assert (pixels_only.paired, pixels_only.top_left, pixels_only.searched) == (True, (x, y), "full")
    headers = tuple(map(image_header, paths))
    answer = predict_classic(original, crop, proposal=at_the_copy, headers=headers)
    assert (answer.paired, answer.top_left, answer.searched) == (True, (x, y), "full")
    # The files' gap alone sends it there too.
    by_the_files = predict_classic(original, crop, proposal=at_the_copy, headers=headers,
                                   verify_config=without_resampling)
    assert (by_the_files.paired, by_the_files.top_left, by_the_files.searched) == (True, (x, y), "full")


def test_the_encoding_test_looks_where_the_pixels_fit_best_near_the_answer(tmp_path):
    # Verification can answer a smooth crop a pixel or two off (a local minimum of its tiles' residual);
    # the files are compared where the crop's pixels fit best within 3 px, its place when it is a crop.
    Image.fromarray(np.rint(smooth_field(3)).astype(np.uint8)).save(tmp_path / "original.jpg", quality=85)
    original = load_image(tmp_path / "original.jpg", grey=True)
    Image.fromarray(np.ascontiguousarray(original[90:162, 120:216])).save(tmp_path / "crop.png")
    crop = load_image(tmp_path / "crop.png", grey=True)
    headers = image_header(tmp_path / "original.jpg"), image_header(tmp_path / "crop.png")
    test = EncodingTest(original, crop, (123, 88), *headers)
    assert test.best_fit_near(123, 88) == (120, 90)
    assert test.gap(120, 90) < 0.01 and test.gap(123, 88) > 2 * VerifyConfig().max_encoding_gap  # measured 0.61
    off = PairMatch(True, False, (123, 88), 1.0, ambiguous=True)
    assert answer_encoding_gap(off, original, crop, headers, VerifyConfig())[1] < 0.01


def test_an_ambiguous_answer_is_placed_where_the_crops_colour_is_too(tmp_path):
    # One luma everywhere: luma alone puts both crops at the same place; colour tells the halves apart.
    original = two_colour_field()
    left, right = original[150:190, 20:80], original[150:190, 300:360]
    luma_only = [predict_classic(to_grey(original), to_grey(crop)) for crop in (left, right)]
    assert all(answer.paired and answer.ambiguous for answer in luma_only)
    assert luma_only[0].top_left == luma_only[1].top_left
    # Within a few px of its half: a flat crop's corner is a guess, held to the colour gap's tolerance (a
    # region of the crop may hang a few px over a colour edge: 4 px of a 30 px region, 60 chroma levels off,
    # make 8).
    for crop, half in ((left, range(0, 200 - 60 + 7)), (right, range(200 - 6, 400 - 60 + 1))):
        answer = predict_classic(original, crop)
        assert answer.paired and answer.ambiguous and answer.top_left[0] in half
        assert answer.scores["colour_gap"] <= VerifyConfig().max_colour_gap


def test_a_smooth_crop_of_a_colour_the_original_lacks_is_no_crop(tmp_path):
    original = two_colour_field()
    elsewhere = np.full((40, 60, 3), (159, 101, 185), np.uint8)  # luma 128, purple: nowhere in the original
    answer = predict_classic(original, elsewhere)
    assert not answer.paired and answer.scores["colour_gap"] > VerifyConfig().max_colour_gap
    # From files: a PNG as it is; a grey PNG has no colour to compare, and is answered from its luma.
    Image.fromarray(original).save(tmp_path / "original.png")
    Image.fromarray(elsewhere).save(tmp_path / "purple.png")
    Image.fromarray(elsewhere).convert("L").save(tmp_path / "grey.png")
    predictor = Predictor("classic")
    assert not predictor.predict_files(str(tmp_path / "original.png"), str(tmp_path / "purple.png")).paired
    grey = predictor.predict_files(str(tmp_path / "original.png"), str(tmp_path / "grey.png"))
    assert grey.paired and "colour_gap" not in grey.scores
    assert not image_header(tmp_path / "grey.png").colour and image_header(tmp_path / "purple.png").colour


def test_colour_is_checked_from_jpeg_files_read_reduced(tmp_path):
    original = two_colour_field()
    Image.fromarray(original).save(tmp_path / "original.jpg", quality=40)
    Image.fromarray(original[50:80, 55:90]).save(tmp_path / "green.jpg", quality=30)  # in the greenish square
    Image.fromarray(np.full((30, 35, 3), (159, 101, 185), np.uint8)).save(tmp_path / "purple.jpg", quality=30)
    predictor = Predictor("classic")
    found = predictor.predict_files(str(tmp_path / "green.jpg"), str(tmp_path / "original.jpg"))
    assert found.paired and found.swapped and found.ambiguous
    assert 40 - 4 <= found.top_left[0] <= 100 - 35 + 4 and 40 - 4 <= found.top_left[1] <= 100 - 30 + 4
    assert found.scores["colour_gap"] <= VerifyConfig().max_colour_gap
    assert not predictor.predict_files(str(tmp_path / "original.jpg"), str(tmp_path / "purple.jpg")).paired


def test_a_crop_across_an_edge_between_two_colours_of_one_luma_is_found_at_the_edge():
    original = two_colour_field()
    across = original[150:190, 185:225]  # 15 px reddish, 25 px bluish: luma flat, colour pins x
    answer = predict_classic(original, across)
    assert answer.paired and answer.ambiguous and abs(answer.top_left[0] - 185) <= 1
    assert answer.scores["colour_gap"] <= VerifyConfig().max_colour_gap


@pytest.mark.parametrize("method", ["classic", "hybrid"])
def test_a_png_gives_its_colour_from_its_one_decode(tmp_path, monkeypatch, method, tiny_checkpoint):
    original = two_colour_field()
    Image.fromarray(original).save(tmp_path / "original.png")
    Image.fromarray(original[150:190, 185:225]).save(tmp_path / "across.png")
    Image.fromarray(np.full((40, 60, 3), (159, 101, 185), np.uint8)).save(tmp_path / "purple.png")

    def read_again(*args, **kwargs):
        raise AssertionError("a PNG's colour was read again")

    monkeypatch.setattr("cropnet.predict.load_reduced_colour", read_again)
    predictor = Predictor(method, tiny_checkpoint if method == "hybrid" else None)
    found = predictor.predict_files(str(tmp_path / "original.png"), str(tmp_path / "across.png"))
    assert found.paired and abs(found.top_left[0] - 185) <= 1 and "colour_gap" in found.scores
    assert not predictor.predict_files(str(tmp_path / "original.png"), str(tmp_path / "purple.png")).paired


def test_true_crops_of_any_small_picture_and_format_are_found_without_errors(tmp_path):
    # The colour check's paths (files that are not JPEGs give their colour from their one decode, JPEGs are
    # read again; grey, transparent and EXIF-tagged files; crops down to 8 px) on seeded random pairs.
    rng = np.random.default_rng(7)
    predictor = Predictor("classic")
    for index in range(24):
        width, height = (int(side) for side in rng.integers(8, 160, 2))
        picture = (textured_photo(index, width, height), np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8),
                   np.asarray(Image.fromarray(two_colour_field()).resize((width, height))))[index % 3]
        crop_width, crop_height = int(rng.integers(8, width + 1)), int(rng.integers(8, height + 1))
        x, y = int(rng.integers(0, width - crop_width + 1)), int(rng.integers(0, height - crop_height + 1))
        saved = []
        for name, pixels in (("original", picture), ("crop", picture[y:y + crop_height, x:x + crop_width])):
            image, suffix = Image.fromarray(np.ascontiguousarray(pixels)), ("png", "jpg")[int(rng.integers(0, 2))]
            image = image.convert(("RGB", "RGBA", "L")[int(rng.integers(0, 3))]) if suffix == "png" else image
            saved.append(tmp_path / f"{index}-{name}.{suffix}")
            image.save(saved[-1], **({"quality": int(rng.integers(30, 96))} if suffix == "jpg" else {}))
        answer = predictor.predict_files(*map(str, saved))
        assert answer.paired, (index, width, height, (x, y, crop_width, crop_height), saved)
        if not answer.ambiguous:
            assert (answer.swapped, answer.top_left) == (False, (x, y)) or (x, y, crop_width, crop_height) == (
                0, 0, width, height)

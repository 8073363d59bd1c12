"""The benchmark's --quick mode runs end to end and writes its table, JSON and plots.

No timed assertions: times on shared machines drift; the benchmark reports them, tests do not judge them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import textured_photo
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
METHOD_LABELS = ("floor: decode both, RGB (cv2.imread)", "decode both, grey (cv2.imread)",
                 "decode both, RGB (Pillow)", "cropnet classic", "cropnet hybrid", "cropnet net",
                 "reference A: matchTemplate", "reference B: SIFT + RANSAC")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run on three small synthetic photos (tuning and measured pairs from the same folder: CI has
    no held-out photos, and only that the harness works is tested here)."""
    root = tmp_path_factory.mktemp("benchmark")
    photos = root / "photos"
    photos.mkdir()
    for seed in range(3):
        Image.fromarray(textured_photo(seed, 320, 240)).save(photos / f"photo{seed}.png")
    out = root / "out"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--images", str(photos),
                           "--tune-images", str(photos), "--out", str(out), "--cache", str(root / "cache")],
                          capture_output=True, text=True, timeout=300)
    return done, out


def test_quick_run_exits_cleanly(quick_run):
    done, _ = quick_run
    assert done.returncode == 0, done.stderr[-2000:]


def test_markdown_table_names_every_method(quick_run):
    _, out = quick_run
    table = (out / "benchmark.md").read_text()
    for label in METHOD_LABELS:
        assert f"| {label} |" in table, label
    assert "Reference A's threshold" in table


def test_json_has_a_time_per_method_and_set(quick_run):
    _, out = quick_run
    summary = json.loads((out / "benchmark.json").read_text())
    sets = [spec["name"] for spec in summary["specs"]]
    assert len(sets) >= 2
    for name in sets:
        for method in summary["methods"]:
            timing = summary["timing"][name][method]
            assert timing["pairs"] > 0 and timing["median_ms"] > 0, (name, method)
            assert 0 < timing["peak_rss_mb"] and timing["first_pair_mb"] <= timing["work_mb"], (name, method)
    for method in summary["accuracy"]:
        assert summary["accuracy"][method]["categories"]["all pairs"]["n"] > 0, method
    assert summary["failures"] == {}


def test_plots_are_written(quick_run):
    _, out = quick_run
    for name in ("benchmark-time.png", "benchmark-accuracy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_manifest_says_how_far_each_negative_is_from_a_crop(quick_run):
    _, out = quick_run
    summary = json.loads((out / "benchmark.json").read_text())
    entries = [entry for pairs in summary["truth"].values() for entry in pairs]
    assert all(entry["crop_rms"] is None for entry in entries if entry["paired"])
    measured = [entry["crop_rms"] for entry in entries if not entry["paired"] and entry["crop_rms"] is not None]
    assert measured and min(measured) >= 0


def test_crop_rms_is_zero_for_pixels_found_in_the_original_and_large_for_a_flip():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from pairs import crop_rms

    photo = textured_photo(5, 200, 150)
    region = photo[40:100, 30:120]
    assert crop_rms(photo, region) < 1e-3
    assert crop_rms(photo, region[:, ::-1]) > 10  # textured: a mirror image fits nowhere
    flat = np.full((150, 200, 3), 90, np.uint8)
    flat[:, 150:] = 200
    resized = np.asarray(Image.fromarray(flat[10:70, 10:70]).resize((66, 66), Image.Resampling.BILINEAR))
    assert crop_rms(flat, resized) < 1e-3  # a resized patch of one colour is, pixel for pixel, a crop
    assert crop_rms(flat[:50, :50], flat) is None  # larger than the original: fits nowhere


def test_the_last_comparison_leaves_out_flat_crops_and_negatives_within_rounding_of_a_crop():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from report import is_left_out

    entries = {"flat": {"flat_crop": True, "crop_rms": None}, "rms 0.5": {"flat_crop": False, "crop_rms": 0.5},
               "rms 2": {"flat_crop": False, "crop_rms": 2.0}, "true crop": {"flat_crop": False, "crop_rms": None},
               "older manifest": {"flat_crop": False}}
    assert [name for name, entry in entries.items() if is_left_out(entry, "flat")] == ["flat"]
    assert [name for name, entry in entries.items() if is_left_out(entry, "crops")] == ["flat", "rms 0.5"]
    with pytest.raises(ValueError):
        is_left_out(entries["flat"], "textured")

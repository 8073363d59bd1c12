"""The benchmark's --quick mode runs end to end and writes its table, JSON and plots.

No timed assertions: times on shared machines drift; the benchmark reports them, tests do not judge them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
            assert 0 < timing["peak_rss_mb"] and isinstance(timing["first_pair_mb"], float), (name, method)
    for method in summary["accuracy"]:
        assert summary["accuracy"][method]["categories"]["all pairs"]["n"] > 0, method
    assert summary["failures"] == {}


def test_plots_are_written(quick_run):
    _, out = quick_run
    for name in ("benchmark-time.png", "benchmark-accuracy.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

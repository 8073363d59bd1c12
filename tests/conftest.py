"""Shared fixtures: small synthetic photos, a tiny model config, a trained tiny checkpoint, a CLI runner."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # detect.py lives at the top level, beside the package


def textured_photo(seed: int, width: int = 120, height: int = 90) -> np.ndarray:
    """A photo-like RGB image: smooth random shapes plus fine grain, different for every seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-40, 41, size=(height, width, 3))
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def nearly_symmetric_photo() -> np.ndarray:
    """A 400x300 picture whose right half mirrors its left, but for a 50x60 block at (120, 100) on the left
    that the right lacks (the mirror check's hard case: a flip that takes in the block)."""
    grain = np.random.default_rng(0).integers(-30, 31, (300, 400, 3))
    picture = np.clip(textured_photo(21, 400, 300).astype(int) + grain, 0, 255).astype(np.uint8)
    picture[:, 200:] = picture[:, :200][:, ::-1]
    picture[100:160, 120:170] = textured_photo(22, 50, 60)
    return picture


def grainy_gradient(seed: int, amplitude: float, height: int = 300, width: int = 400) -> np.ndarray:
    """A smooth ramp with fine grain of its own (seed): two seeds are one scene, grain apart."""
    rows, cols = np.mgrid[0:height, 0:width]
    grain = np.random.default_rng(seed).normal(0, amplitude, (height, width))
    return np.clip(np.rint(60 + 0.25 * cols + 0.15 * rows + grain), 0, 255).astype(np.uint8)


def assert_one_line_error(result, *fragments):
    """A CLI failure as users must see it: exit code 2, one 'Error: ...' line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Three photos in a nested folder, in three formats, plus a file that is not an image."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(textured_photo(1)).save(folder / "one.png")
    Image.fromarray(textured_photo(2, 100, 110)).save(folder / "two.jpg", quality=95)
    Image.fromarray(textured_photo(3, 130, 80)).save(folder / "nested" / "three.webp", lossless=True)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def tiny_model_config():
    from cropnet.config import ModelConfig

    return ModelConfig(input_size=64, head_channels=8, head_hidden=16)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny model trained for one short epoch through the CLI: fast, and exercises `train`."""
    from detect import cli

    folder = tmp_path_factory.mktemp("train_photos")
    for seed in range(4):
        Image.fromarray(textured_photo(seed)).save(folder / f"photo{seed}.png")
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(cli, ["train", "--images", str(folder), "--out", str(out), "--epochs", "1",
                                      "--pairs-per-epoch", "16", "--val-pairs", "8", "--batch-size", "8",
                                      "--input-size", "64", "--workers", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out / "best.pt"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def two_colour_field(height: int = 300, width: int = 400) -> np.ndarray:
    """RGB of one luma (128) everywhere: reddish on the left half, bluish on the right, a greenish square
    at (40, 40) of side 60 on the left half. Luma cannot tell them apart; colour can."""
    ycrcb = np.empty((height, width, 3), np.uint8)
    ycrcb[:, :] = (128, 160, 110)
    ycrcb[:, width // 2:] = (128, 100, 150)
    ycrcb[40:100, 40:100] = (128, 110, 100)
    rgb = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
    assert (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) == 128).all()
    return rgb

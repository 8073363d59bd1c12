"""The command line, through click's test runner: output text, JSON and exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_one_line_error, textured_photo
from PIL import Image

from detect import cli

SAMPLE_ORIGINAL, SAMPLE_CROP = REPO / "data" / "coffee.jpg", REPO / "data" / "coffee-crop.jpg"
SAMPLE_TOP_LEFT = (212, 104)  # where data/coffee-crop.jpg was cut from data/coffee.jpg (see data/README.md)


@pytest.fixture
def crop_files(tmp_path):
    """An original (PNG) and a crop of it at (30, 20) saved as JPEG."""
    photo = textured_photo(11, 160, 120)
    Image.fromarray(photo).save(tmp_path / "original.png")
    Image.fromarray(photo[20:80, 30:100]).save(tmp_path / "crop.jpg", quality=80)
    return tmp_path / "original.png", tmp_path / "crop.jpg"


def test_help_lists_the_three_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "evaluate", "predict"):
        assert command in result.output
    assert runner.invoke(cli, ["--version"]).output.startswith("cropnet, version")


def test_help_and_input_errors_do_not_import_torch():
    code = ("import sys, detect\n"
            "try:\n    detect.cli(['predict', 'missing-a.jpg', 'missing-b.jpg'])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["2", "False"]
    code = ("import sys, detect\n"
            "try:\n    detect.cli(['--help'])\nexcept SystemExit:\n    print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_train_then_evaluate_then_predict(runner, tiny_checkpoint, photo_folder, crop_files):
    result = runner.invoke(cli, ["evaluate", "--images", str(photo_folder), "--pairs", "12", "--checkpoint",
                                 str(tiny_checkpoint), "--method", "all", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pairs"] == 12 and report["photos"] == 3 and set(report["methods"]) == {"hybrid", "classic", "net"}
    for summary in report["methods"].values():
        assert summary["pairs"] == 12 and 0 <= summary["paired_accuracy"] <= 1
        assert sum(kind["pairs"] for kind in summary["by_kind"].values()) == 12
        assert sum(band["pairs"] for band in summary["by_quality"].values()) == 12
    # The verifying methods on textured photos: every answer right, every corner exact.
    for method in ("hybrid", "classic"):
        summary = report["methods"][method]
        assert summary["paired_accuracy"] == 1.0 and summary["corner_exact"] == 1.0

    text = runner.invoke(cli, ["evaluate", "--images", str(photo_folder), "--pairs", "4", "--method", "classic"])
    assert text.exit_code == 0 and "paired accuracy" in text.stdout and "classic" in text.stdout

    original, crop = crop_files
    for method in ("net", "hybrid"):
        result = runner.invoke(cli, ["predict", str(original), str(crop), "--checkpoint", str(tiny_checkpoint),
                                     "--method", method, "--json"])
        answer = json.loads(result.stdout)
        assert result.exit_code == (0 if answer["paired"] else 1)
        assert answer["a"] == str(original) and answer["b"] == str(crop) and answer["method"] == method
        assert 0 <= answer["scores"]["paired"] <= 1
    # hybrid's answer is the verified one, whatever the one-epoch network believes.
    assert answer["paired"] is True and answer["swapped"] is False and answer["top_left"] == [30, 20]
    assert answer["scores"]["verification"] == 1.0 and answer["ambiguous"] is False


def test_classic_answers_exactly_without_importing_torch(crop_files):
    original, crop = crop_files
    code = ("import sys, detect\n"
            f"try:\n    detect.cli(['predict', '--method', 'classic', '--json', r'{crop}', r'{original}'])\n"
            "except SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    answer_line, status_line = result.stdout.strip().splitlines()[-2:]
    answer = json.loads(answer_line)
    assert status_line == "0 False"
    assert answer["paired"] is True and answer["swapped"] is True and answer["top_left"] == [30, 20]
    assert answer["method"] == "classic" and answer["candidates"] == 1


def test_classic_rejects_a_flipped_crop_and_flags_a_flat_one(runner, tmp_path):
    photo = textured_photo(12, 200, 150)
    photo[100:, :] = 90  # a flat band along the bottom
    Image.fromarray(photo).save(tmp_path / "original.png")
    Image.fromarray(np.ascontiguousarray(photo[10:70, 20:110, :][:, ::-1])).save(tmp_path / "flipped.png")
    Image.fromarray(photo[110:140, 40:90]).save(tmp_path / "flat.png")
    original = tmp_path / "original.png"
    result = runner.invoke(cli, ["predict", "--method", "classic", str(original), str(tmp_path / "flipped.png")])
    assert result.exit_code == 1 and result.stdout.startswith("Neither")
    result = runner.invoke(cli, ["predict", "--method", "classic", str(original), str(tmp_path / "flat.png")])
    assert result.exit_code == 0 and "Ambiguous" in result.stdout
    answer = json.loads(runner.invoke(cli, ["predict", "--method", "classic", "--json", str(original),
                                            str(tmp_path / "flat.png")]).stdout)
    assert answer["paired"] is True and answer["ambiguous"] is True


def test_size_rule_decides_order_and_impossible_pairs(runner, tiny_checkpoint, crop_files, tmp_path):
    original, crop = crop_files
    # --threshold 0 makes every pair "paired": the order then comes from the sizes alone.
    result = runner.invoke(cli, ["predict", str(crop), str(original), "--checkpoint", str(tiny_checkpoint),
                                 "--method", "net", "--threshold", "0", "--json"])
    answer = json.loads(result.stdout)
    assert result.exit_code == 0 and answer["paired"] is True and answer["swapped"] is True
    x, y = answer["top_left"]
    assert 0 <= x <= 160 - 70 and 0 <= y <= 120 - 60  # the corner leaves room for the crop
    text = runner.invoke(cli, ["predict", str(crop), str(original), "--checkpoint", str(tiny_checkpoint),
                               "--method", "net", "--threshold", "0"])
    assert text.stdout.splitlines()[0] == f"{crop} is a cropped version of {original}"
    assert text.stdout.splitlines()[1].startswith(f"The top left corner of {crop} can be found in {original} at")

    # A wide and a tall image: neither can be a crop of the other, whatever the network says.
    Image.fromarray(textured_photo(1, 100, 40)).save(tmp_path / "wide.png")
    Image.fromarray(textured_photo(2, 40, 100)).save(tmp_path / "tall.png")
    wide, tall = tmp_path / "wide.png", tmp_path / "tall.png"
    result = runner.invoke(cli, ["predict", str(wide), str(tall), "--checkpoint", str(tiny_checkpoint),
                                 "--method", "net", "--threshold", "0"])
    assert result.exit_code == 1
    assert result.stdout.strip() == f"Neither {wide} nor {tall} is a cropped version of the other"
    answer = json.loads(runner.invoke(cli, ["predict", str(wide), str(tall), "--checkpoint",
                                            str(tiny_checkpoint), "--method", "net", "--threshold", "0",
                                            "--json"]).stdout)
    assert answer["paired"] is False and answer["swapped"] is None and answer["top_left"] is None


def test_pairs_file_answers_every_row_and_flags_the_bad_one(runner, tiny_checkpoint, crop_files, tmp_path):
    original, crop = crop_files
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"a,b\n{original},{crop}\n{original},{tmp_path / 'gone.jpg'}\n{crop},{original}\n")
    result = runner.invoke(cli, ["predict", "--pairs", str(pairs), "--json", "--checkpoint", str(tiny_checkpoint)])
    assert result.exit_code == 2
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["a"] for line in lines] == [str(original), str(original), str(crop)]
    assert "error" not in lines[0] and "error" not in lines[2]
    assert lines[0]["top_left"] == [30, 20] and lines[2]["top_left"] == [30, 20] and lines[2]["swapped"] is True
    assert "gone.jpg" in lines[1]["error"] and "no such file" in lines[1]["error"]

    good = tmp_path / "good.csv"
    good.write_text(f"a,b\n{original},{crop}\n")
    result = runner.invoke(cli, ["predict", "--pairs", "-", "--json", "--checkpoint", str(tiny_checkpoint)],
                           input=good.read_text())
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1


def test_pairs_file_with_wrong_header_fails_before_any_work(runner, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("first,second\nx.jpg,y.jpg\n")
    result = runner.invoke(cli, ["predict", "--pairs", str(pairs), "--checkpoint", str(tmp_path / "none.pt")])
    assert_one_line_error(result, "header", "a,b")


def test_bad_images_are_one_line_errors(runner, tiny_checkpoint, crop_files, tmp_path):
    original, _ = crop_files
    (tmp_path / "text.jpg").write_text("this is not a picture")
    for bad, reason in ((tmp_path / "missing.jpg", "no such file"), (tmp_path / "text.jpg", "not an image"),
                        (tmp_path, "is a folder")):
        result = runner.invoke(cli, ["predict", str(original), str(bad), "--checkpoint", str(tiny_checkpoint)])
        assert_one_line_error(result, str(bad), reason)


def test_damaged_checkpoint_is_a_one_line_error(runner, crop_files, tmp_path):
    original, crop = crop_files
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 definitely not a model")
    result = runner.invoke(cli, ["predict", str(original), str(crop), "--checkpoint", str(tmp_path / "broken.pt")])
    assert_one_line_error(result, "broken.pt", "not a readable checkpoint")


def test_folders_without_images_are_clear_errors(runner, tiny_checkpoint, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli, ["train", "--images", str(empty), "--out", str(tmp_path / "run")])
    assert_one_line_error(result, "no image files")
    result = runner.invoke(cli, ["evaluate", "--images", str(empty), "--checkpoint", str(tiny_checkpoint)])
    assert_one_line_error(result, "no image files")


@pytest.mark.parametrize("checkpoint", [None, REPO / "checkpoints" / "cropnet-6ch.pt"])
@pytest.mark.parametrize("swap", [False, True])
def test_shipped_model_answers_the_sample_pair(runner, swap, checkpoint):
    """The README's first command: the shipped checkpoint, loaded with no flags, on the bundled pair;
    and the 6-channel model shipped beside it, one --checkpoint away."""
    first, second = (SAMPLE_CROP, SAMPLE_ORIGINAL) if swap else (SAMPLE_ORIGINAL, SAMPLE_CROP)
    choice = [] if checkpoint is None else ["--checkpoint", str(checkpoint)]
    result = runner.invoke(cli, ["predict", str(first), str(second), "--json", *choice])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["method"] == "hybrid" and answer["paired"] is True and answer["swapped"] is swap
    assert tuple(answer["top_left"]) == SAMPLE_TOP_LEFT  # verified at full resolution: exact
    assert np.isfinite(answer["scores"]["paired"]) and answer["scores"]["verification"] == 1.0

    result = runner.invoke(cli, ["predict", str(first), str(second), "--json", "--method", "net", *choice])
    answer = json.loads(result.stdout)
    assert answer["paired"] is True and answer["swapped"] is swap
    x, y = answer["top_left"]
    width, height = Image.open(SAMPLE_ORIGINAL).size
    # The network alone is approximate (it sees the pair at 128-160 px): within 5% of each side.
    assert abs(x - SAMPLE_TOP_LEFT[0]) <= 0.05 * width and abs(y - SAMPLE_TOP_LEFT[1]) <= 0.05 * height


def test_a_resized_crop_of_a_soft_picture_is_no_crop_and_says_why(runner, tmp_path):
    # A lossy WebP crop: no JPEG quantization to compare, so the resampling test is what decides.
    rows, cols = np.mgrid[0:300, 0:400]
    picture = np.clip(128 + 40 * np.sin(cols / 37.0) * np.cos(rows / 29.0)
                      + np.random.default_rng(0).normal(0, 1, (300, 400)), 0, 255).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "original.png")
    Image.fromarray(picture[90:179, 120:231]).resize((100, 80), Image.Resampling.BICUBIC).save(
        tmp_path / "resized.webp", quality=80)
    Image.fromarray(picture[90:170, 120:220]).save(tmp_path / "crop.webp", quality=80)
    original = str(tmp_path / "original.png")
    turned_down = runner.invoke(cli, ["predict", "--method", "classic", "--json", original,
                                      str(tmp_path / "resized.webp")])
    answer = json.loads(turned_down.stdout)
    assert turned_down.exit_code == 1 and answer["paired"] is False
    assert answer["scores"]["resampled_share"] <= 0.5 and "encoding_gap" not in answer["scores"]
    found = runner.invoke(cli, ["predict", "--method", "classic", "--json", original, str(tmp_path / "crop.webp")])
    answer = json.loads(found.stdout)
    assert found.exit_code == 0 and answer["top_left"] == [120, 90] and answer["scores"]["resampled_share"] > 0.9

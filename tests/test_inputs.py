"""Whatever files people have, through the CLI (`--method classic`, no network): every bad input is
one line on stderr with exit code 2, every good one in any mode gets the right answer, and a
batch never loses its good rows."""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
from conftest import assert_one_line_error, textured_photo
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cropnet.images import load_image
from cropnet.verify import match_pair
from detect import cli

CORNER = (30, 20)  # where every crop below is cut


def original_and_crop() -> tuple[np.ndarray, np.ndarray]:
    photo = textured_photo(21, 160, 120)
    x, y = CORNER
    return photo, np.ascontiguousarray(photo[y:y + 60, x:x + 70])


def predict(runner, *args):
    return runner.invoke(cli, ["predict", "--method", "classic", "--json", *map(str, args)])


def truncated(path):
    Image.fromarray(original_and_crop()[0]).save(path, "JPEG", quality=90)
    path.write_bytes(path.read_bytes()[:1500])


def corrupt_png(path):
    Image.fromarray(original_and_crop()[0]).save(path, "PNG")
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)  # zeroed bytes inside the compressed pixels
    path.write_bytes(bytes(data))


BAD_INPUTS = {
    "missing": (lambda p: None, "no such file"),
    "folder": (lambda p: p.mkdir(), "is a folder"),
    "zero bytes": (lambda p: p.write_bytes(b""), "empty"),
    "not an image": (lambda p: p.write_text("a text file with a .jpg name"), "not an image"),
    "truncated": (truncated, "damaged or truncated"),
    "corrupt": (corrupt_png, "damaged or truncated"),
    "too small": (lambda p: Image.new("RGB", (5, 40)).save(p, "PNG"), "too small"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_are_one_line_errors(runner, tmp_path, name):
    make, reason = BAD_INPUTS[name]
    bad = tmp_path / "bad.jpg"
    make(bad)
    Image.fromarray(original_and_crop()[0]).save(tmp_path / "good.png")
    assert_one_line_error(predict(runner, tmp_path / "good.png", bad), str(bad), reason)
    assert_one_line_error(predict(runner, bad, tmp_path / "good.png"), str(bad), reason)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_a_one_line_error(runner, tmp_path):
    original, crop = original_and_crop()
    Image.fromarray(original).save(tmp_path / "a.png")
    Image.fromarray(crop).save(tmp_path / "locked.png")
    (tmp_path / "locked.png").chmod(0)
    assert_one_line_error(predict(runner, tmp_path / "a.png", tmp_path / "locked.png"), "locked.png",
                          "permission denied")


def test_pixel_limit_is_a_one_line_error(runner, tmp_path):
    original, crop = original_and_crop()
    Image.fromarray(original).save(tmp_path / "a.png")
    Image.fromarray(crop).save(tmp_path / "b.png")
    result = runner.invoke(cli, ["predict", "--method", "classic", "--max-pixels", "10000",
                                 str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    assert_one_line_error(result, "a.png", "over the limit of 10,000")


def test_debug_shows_the_traceback(runner, tmp_path):
    result = runner.invoke(cli, ["--debug", "predict", "--method", "classic", str(tmp_path / "gone.jpg"),
                                 str(tmp_path / "gone.png")])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and result.stderr.strip().endswith("gone.jpg: no such file")


def save(array: np.ndarray, path, mode: str, **options):
    image = Image.fromarray(array)
    if mode == "P+transparency":
        image = image.convert("P")
        image.info["transparency"] = 255  # a palette index the image hardly uses
        image.save(path, transparency=255)
        return
    if mode in ("I;16", "I"):
        grey = np.asarray(image.convert("L"), dtype=np.uint16 if mode == "I;16" else np.int32)
        Image.fromarray(grey * 257 if mode == "I;16" else grey).save(path)  # uint16 -> I;16, int32 -> I
        return
    image.convert(mode).save(path, **options)


@pytest.mark.parametrize("mode, suffix", [
    ("L", "png"), ("LA", "png"), ("P", "png"), ("P+transparency", "png"), ("RGBA", "png"),
    ("1", "png"), ("I;16", "png"), ("I", "tif"), ("CMYK", "jpg"), ("CMYK", "tif"), ("RGB", "webp"),
])
def test_every_mode_gives_the_right_answer(runner, tmp_path, mode, suffix):
    original, crop = original_and_crop()
    options = {"quality": 95} if suffix == "jpg" else {"lossless": True} if suffix == "webp" else {}
    if mode == "1":  # dithering depends on where it starts: cut the crop from the 1-bit original
        bits = Image.fromarray(original).convert("1")
        bits.save(tmp_path / "original.png")
        bits.crop((CORNER[0], CORNER[1], CORNER[0] + crop.shape[1], CORNER[1] + crop.shape[0])).save(
            tmp_path / "crop.png")
    else:
        save(original, tmp_path / f"original.{suffix}", mode, **options)
        save(crop, tmp_path / f"crop.{suffix}", mode, **options)
    result = predict(runner, tmp_path / f"crop.{suffix}", tmp_path / f"original.{suffix}")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["paired"] is True and answer["swapped"] is True and tuple(answer["top_left"]) == CORNER


def test_cmyk_with_an_unusable_icc_profile_still_loads(runner, tmp_path):
    original, crop = original_and_crop()
    for name, array in (("original.jpg", original), ("crop.jpg", crop)):
        Image.fromarray(array).convert("CMYK").save(tmp_path / name, quality=95, icc_profile=b"not a profile")
    result = predict(runner, tmp_path / "original.jpg", tmp_path / "crop.jpg")
    assert result.exit_code == 0 and tuple(json.loads(result.stdout)["top_left"]) == CORNER


def test_animated_gif_uses_its_first_frame(runner, tmp_path):
    original, crop = original_and_crop()
    frames = [Image.fromarray(original).convert("P"), Image.fromarray(255 - original).convert("P")]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(np.asarray(frames[0].convert("RGB"))[20:80, 30:100]).save(tmp_path / "crop.png")
    result = predict(runner, tmp_path / "animated.gif", tmp_path / "crop.png")
    assert result.exit_code == 0 and tuple(json.loads(result.stdout)["top_left"]) == CORNER


def test_a_batch_of_50_with_5_bad_rows(runner, tmp_path):
    rows = ["a,b"]
    expected = []
    for index in range(50):
        photo = textured_photo(100 + index, 120, 90)
        x, y = index % 7 * 5, index % 5 * 4
        Image.fromarray(photo).save(tmp_path / f"o{index}.png")
        Image.fromarray(photo[y:y + 50, x:x + 60]).save(tmp_path / f"c{index}.jpg", quality=80)
        crop = tmp_path / f"c{index}.jpg"
        if index % 10 == 3:  # five bad rows: missing files, a text file, an empty cell, a blank line
            crop = {3: tmp_path / "gone.jpg", 13: tmp_path / "notes.txt", 23: ""}.get(index, tmp_path / "gone.png")
        rows.append("" if index == 33 else f"{tmp_path / f'o{index}.png'},{crop}")
        expected.append((x, y))
    (tmp_path / "notes.txt").write_text("not a picture")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(cli, ["predict", "--method", "classic", "--json", "--pairs", str(tmp_path / "pairs.csv")])
    assert result.exit_code == 2
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 50
    for index, answer in enumerate(answers):
        if index % 10 == 3:
            assert "error" in answer and answer["a"] == ("" if index == 33 else str(tmp_path / f"o{index}.png"))
        else:
            assert "error" not in answer and answer["paired"] is True
            assert tuple(answer["top_left"]) == expected[index]


def mutations(data: bytes, rng: np.random.Generator, count: int):
    """Truncations and flipped bytes of `data`, never its first two bytes (so it stays 'an image')."""
    for _ in range(count):
        if rng.random() < 0.5:
            yield data[:int(rng.integers(2, len(data)))]
        else:
            mutated = bytearray(data)
            for position in rng.integers(2, len(data), size=int(rng.integers(1, 20))):
                mutated[position] ^= 1 << int(rng.integers(8))
            yield bytes(mutated)


@pytest.mark.parametrize("format_name", ["JPEG", "PNG"])
def test_mutated_files_never_crash_or_hang(runner, tmp_path, format_name):
    original, crop = original_and_crop()
    Image.fromarray(original).save(tmp_path / "original.png")
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format_name)
    rng = np.random.default_rng(7)
    for index, data in enumerate(mutations(buffer.getvalue(), rng, 30)):
        path = tmp_path / f"mutant{index}"
        path.write_bytes(data)
        started = time.perf_counter()
        result = predict(runner, tmp_path / "original.png", path)
        assert time.perf_counter() - started < 10, "a damaged file must not hang the tool"
        assert result.exit_code in (0, 1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            assert result.stderr.strip().startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1


def test_visualize_draws_the_rectangle_where_the_crop_is(runner, tmp_path):
    original, crop = original_and_crop()
    Image.fromarray(original).save(tmp_path / "original.png")
    Image.fromarray(crop).save(tmp_path / "crop.png")
    picture = tmp_path / "answer.png"
    result = runner.invoke(cli, ["predict", "--method", "classic", "--visualize", str(picture),
                                 str(tmp_path / "crop.png"), str(tmp_path / "original.png")])
    assert result.exit_code == 0, result.output
    drawn = np.asarray(Image.open(picture).convert("RGB"))
    scale = 480 / original.shape[0]  # the original comes first in the picture, 480 px high
    x, y = round(CORNER[0] * scale), round(CORNER[1] * scale)
    assert drawn.shape[0] == 480 + 40
    assert drawn[y + 20, x + 1].tolist() == [255, 40, 40]  # the rectangle's left edge, beside the corner
    (tmp_path / "pairs.csv").write_text(f"a,b\n{tmp_path / 'crop.png'},{tmp_path / 'original.png'}\n")
    result = runner.invoke(cli, ["predict", "--visualize", str(picture), "--pairs", str(tmp_path / "pairs.csv")])
    assert result.exit_code == 2 and "--visualize" in result.output


@settings(max_examples=25, deadline=None, derandomize=True)  # derandomized: the same cases on every run
@given(x=st.integers(0, 90), y=st.integers(0, 70), width=st.integers(24, 70), height=st.integers(24, 50),
       mode=st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK"]),
       quality_original=st.integers(25, 95), quality_crop=st.one_of(st.none(), st.integers(25, 95)))
def test_any_crop_in_any_mode_and_quality_is_found(tmp_path_factory, x, y, width, height, mode, quality_original,
                                                     quality_crop):
    """Whatever the box, the mode and the JPEG qualities, loading raises nothing and the answer is exact."""
    folder = tmp_path_factory.mktemp("property")
    photo = Image.fromarray(textured_photo(31, 160, 120)).convert(mode)  # the crop is cut after the conversion
    crop = photo.crop((x, y, x + width, y + height))
    jpeg_able = mode in ("RGB", "L", "CMYK")
    lossless = ".tif" if mode == "CMYK" else ".png"  # PNG has no CMYK
    original_path = folder / ("original" + (".jpg" if jpeg_able else lossless))
    crop_path = folder / ("crop" + (".jpg" if jpeg_able and quality_crop else lossless))
    photo.save(original_path, **({"quality": quality_original} if jpeg_able else {}))
    crop.save(crop_path, **({"quality": quality_crop} if crop_path.suffix == ".jpg" else {}))
    original_pixels, crop_pixels = load_image(original_path), load_image(crop_path)
    assert original_pixels.shape == (120, 160, 3) and crop_pixels.shape == (height, width, 3)
    answer = match_pair(crop_pixels, original_pixels)
    assert answer.paired and answer.swapped is True and answer.top_left == (x, y)


def test_evaluate_skips_bad_files_and_reports_them_by_kind(runner, photo_folder):
    (photo_folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 half a header")
    (photo_folder / "notes.jpg").write_text("not a picture")
    result = runner.invoke(cli, ["evaluate", "--images", str(photo_folder), "--method", "classic", "--pairs", "2"])
    assert result.exit_code == 0, result.output
    assert "photos: 3, 2 skipped" in result.stderr
    assert "skipped 1 (not an image)" in result.stderr and "skipped 1 (damaged or truncated)" in result.stderr
    # A pixel limit below every photo leaves nothing usable: a clear error, not an empty evaluation.
    result = runner.invoke(cli, ["evaluate", "--images", str(photo_folder), "--method", "classic", "--max-pixels",
                                 "100"])
    assert_one_line_error(result, "none of the 5 image files could be used")

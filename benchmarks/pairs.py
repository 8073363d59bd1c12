"""The benchmark's pair set: synthesized pairs written to image files, with a manifest of the truth.

Every method reads the same files, so decoding is part of what is timed. A set is a
pure function of (photo folder, seed, spec): it is written once under the cache
folder and reused when it is already there.

The synthesizer (`cropnet.data.synthesize_pair`) re-encodes each image in memory and
returns the decoded pixels, not the JPEG bytes. Those pixels are saved here again at
the quality the synthesizer drew (PNG where it kept the image lossless), with Pillow's
default chroma subsampling. So each JPEG file has been through two encodings at that
quality; the truth (kind, order, corner) is unchanged by it.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from cropnet.config import SynthConfig
from cropnet.data import PairDataset, is_flat
from cropnet.evaluate import SMALL_CROP_SIDE, quality_band, scale_to_megapixels
from cropnet.images import find_images, image_size, load_image

MANIFEST = "manifest.json"
# Part of every set's cache key: a manifest written before a field was added is not reused (2: crop_rms).
MANIFEST_FORMAT = 2
# A "negative" whose pixels, before any encoding, lie within this RMS (grey levels, over R, G and B) of the
# original's somewhere is a crop by the project's definition up to the rounding of its resampling; see
# `crop_rms`. Fixed before any run looked at the figures.
WITHIN_ROUNDING = 1.0


@dataclass(frozen=True)
class PairSpec:
    """One group of pairs: originals of about `megapixels`, crop sides drawn from `crop_range`."""

    name: str  # "12mp", "12mp-tiny": the group's label in tables and file names
    megapixels: float
    count: int
    crop_range: tuple = (SynthConfig.crop_min, SynthConfig.crop_max)  # fraction of the original's side

    @property
    def tiny(self) -> bool:
        return self.crop_range != (SynthConfig.crop_min, SynthConfig.crop_max)


class ScaledPhotos:
    """The folder's photos at about `megapixels`, decoded and scaled only when a pair asks for them.

    Held-out photos reach 18 megapixels; holding all of them decoded at 24 MP
    would take gigabytes, so only the last few used are kept.
    """

    def __init__(self, paths: list[Path], megapixels: float, keep: int = 4):
        self.paths, self.megapixels, self.keep = paths, megapixels, keep
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self.cache:
            self.cache[index] = scale_to_megapixels(load_image(self.paths[index]), self.megapixels)
            if len(self.cache) > self.keep:
                self.cache.popitem(last=False)
        self.cache.move_to_end(index)
        return self.cache[index]


def usable_photos(photos: Path) -> list[Path]:
    """The folder's photos that pairs can be drawn from: not one flat colour (see `cropnet.data.is_flat`,
    which looks at 256 px: each photo is decoded reduced, a JPEG by DCT scaling)."""
    return [path for path in find_images(photos)
            if not is_flat(load_image(path, scale=min(1.0, 512 / max(image_size(path)))))]


def set_folder(cache: Path, photos: Path, seed: int, spec: PairSpec, paths: list[Path]) -> Path:
    """Where a set lives: named by spec and seed, keyed by the photos' names and sizes so that a changed folder
    gives a new set instead of a stale one."""
    listing = [(p.relative_to(photos).as_posix(), p.stat().st_size) for p in paths]
    key = hashlib.sha1(json.dumps([str(photos.resolve()), listing, seed, asdict(spec), MANIFEST_FORMAT]).encode()
                       ).hexdigest()[:10]
    return cache / f"{spec.name}-seed{seed}-n{spec.count}-{key}"


def build_pairs(photos: Path, seed: int, spec: PairSpec, cache: Path, paths: list[Path]) -> Path:
    """Write the set's image files and manifest (unless already there); return the manifest's path.
    `paths`: the photos to draw from (`usable_photos(photos)`)."""
    folder = set_folder(cache, photos, seed, spec, paths)
    manifest = folder / MANIFEST
    if manifest.is_file():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    config = replace(SynthConfig(), crop_min=spec.crop_range[0], crop_max=spec.crop_range[1])
    # Epoch 0 for every spec: pair i is the same draw (photo, kind, crop fractions) at every size,
    # so times at different sizes compare the same pairs.
    dataset = PairDataset(ScaledPhotos(paths, spec.megapixels), spec.count, seed, config, transform=None)
    entries = []
    for index in range(spec.count):
        pair = dataset.pair(index)
        names = []
        for role, image, quality in (("a", pair.a, pair.quality[0]), ("b", pair.b, pair.quality[1])):
            name = f"{index:04d}-{role}." + ("png" if quality is None else "jpg")
            save_image(image, folder / name, quality)
            names.append(name)
        entries.append(describe_pair(pair, index, names))
    # Written last: a manifest on disk means the whole set is there.
    header = {"spec": asdict(spec), "seed": seed, "photos": str(photos), "photo_count": len(paths)}
    (folder / (MANIFEST + ".tmp")).write_text(json.dumps({**header, "pairs": entries}, indent=1))
    (folder / (MANIFEST + ".tmp")).replace(manifest)
    return manifest


def save_image(image: np.ndarray, path: Path, quality: int | None) -> None:
    if quality is None:
        Image.fromarray(image).save(path, "PNG", compress_level=1)  # lossless either way; level 1 writes fast
    else:
        Image.fromarray(image).save(path, "JPEG", quality=quality)


def describe_pair(pair, index: int, names: list[str]) -> dict:
    """The truth about one pair, as the manifest records it."""
    original, crop = pair.original, pair.crop
    touches = pair.top_left is not None and (
        min(pair.top_left) == 0 or pair.top_left[0] + crop.shape[1] == original.shape[1]
        or pair.top_left[1] + crop.shape[0] == original.shape[0])
    return {
        "index": index, "a": names[0], "b": names[1], "kind": pair.kind, "paired": pair.paired,
        "swapped": pair.swapped, "top_left": list(pair.top_left) if pair.top_left else None,
        "quality": list(pair.quality), "quality_band": quality_band(pair.quality),
        "size_a": [pair.a.shape[1], pair.a.shape[0]], "size_b": [pair.b.shape[1], pair.b.shape[0]],
        "crop_size": [crop.shape[1], crop.shape[0]], "original_size": [original.shape[1], original.shape[0]],
        "small": min(crop.shape[:2]) < SMALL_CROP_SIDE, "touches_border": bool(touches),
        # A crop of one flat colour (a patch of clear sky) fits many places within JPEG noise: resized,
        # flipped or run past the border, it is still pixel for pixel a crop. Reported apart.
        "flat_crop": is_flat(crop),
        "crop_rms": None if pair.paired else crop_rms(*pair.unencoded),
    }


def crop_rms(original: np.ndarray, crop: np.ndarray) -> float | None:
    """How far a negative's crop is from being a crop: the least RMS difference, in grey levels over the three
    channels, between its pixels and the original's at any offset where it lies wholly inside, before either is
    encoded. None where it fits nowhere.

    A resized crop of a smooth gradient, or a region past the border of a photo whose edge continues in one
    colour, can be within rounding of the original's pixels at some offset: by the definition a tool answers
    to (B's pixels are A's at an integer offset), such a "negative" is a crop, and the benchmark reports the
    pairs without them apart (`WITHIN_ROUNDING`).
    """
    if crop.shape[0] > original.shape[0] or crop.shape[1] > original.shape[1]:
        return None
    squared = cv2.matchTemplate(np.ascontiguousarray(original), np.ascontiguousarray(crop), cv2.TM_SQDIFF)
    return float(np.sqrt(max(0.0, float(squared.min())) / crop.size))


def within_rounding(entry: dict) -> bool:
    """Whether a manifest entry is a negative within rounding of a crop (`crop_rms`, `WITHIN_ROUNDING`);
    False for true crops and for manifests written before it was measured."""
    rms = entry.get("crop_rms")
    return rms is not None and rms <= WITHIN_ROUNDING


def read_manifest(path: Path) -> dict:
    """The manifest with the image names turned into full paths."""
    manifest = json.loads(path.read_text())
    for entry in manifest["pairs"]:
        entry["path_a"], entry["path_b"] = str(path.parent / entry["a"]), str(path.parent / entry["b"])
    return manifest

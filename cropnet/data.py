"""Pair synthesis: labelled crop / non-crop pairs drawn from a folder of photos.

`synthesize_pair(photo, other, rng, config)` is a pure function: the same photo,
generator state and config give the same pair. Everything else here feeds it
(photo loading and the train/validation split) or turns its output into the
network's input (`fit_pair`, `PairTransform`).

Negatives share the positives' crop-size draw so that neither size nor aspect
ratio gives the label away (the write-up's net learned "odd shape = crop").
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .config import PAIR_KINDS, SynthConfig
from .errors import FolderError, ImageError
from .images import DEFAULT_MAX_PIXELS, MIN_SIDE, find_images, load_image, shrink

# ImageNet statistics: keeps inputs near zero mean / unit variance and lets a
# local torchvision state dict be loaded with `--pretrained`.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
JPEG_SUBSAMPLING = (0, 1, 2)  # Pillow's 4:4:4, 4:2:2, 4:2:0


@dataclass
class Pair:
    """Two images and the truth about them."""

    a: np.ndarray  # (H, W, 3) uint8, as decoded after re-encoding
    b: np.ndarray
    kind: str  # one of PAIR_KINDS; only "positive" is a crop
    swapped: bool  # the first image plays the crop's part
    top_left: tuple[int, int] | None  # (x, y) of the crop in the original, positives only
    quality: tuple[int | None, int | None]  # JPEG quality of a and b, None when lossless
    # Where the crop's top-left content comes from in the original's coordinates, for every kind
    # but "other": the spot a matcher is drawn to (past the border, of a resized or a mirrored
    # region). The refining stage is trained around it, as it will meet it.
    source: tuple[int, int] | None = None
    # (original, crop) before either was re-encoded, in that order whichever of a and b each is: whether a
    # "negative" is, pixel for pixel, a crop after all (the benchmark asks, of a smooth photo's resized or
    # past-the-border crop).
    unencoded: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def paired(self) -> bool:
        return self.kind == "positive"

    @property
    def original(self) -> np.ndarray:
        return self.b if self.swapped else self.a

    @property
    def crop(self) -> np.ndarray:
        return self.a if self.swapped else self.b


def synthesize_pair(photo: np.ndarray, other: np.ndarray, rng: np.random.Generator,
                    config: SynthConfig) -> Pair:
    """Draw one labelled pair from `photo` (and `other`, a different photo, for that negative kind)."""
    kinds = list(config.kind_weights)
    weights = np.array([config.kind_weights[k] for k in kinds], dtype=np.float64)
    kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
    original, crop, source = CROPPERS[kind](photo, other, rng, config)
    top_left = source if kind == "positive" else None
    unencoded = (original, crop)
    original, quality_original = reencode(original, rng, config)
    crop, quality_crop = reencode(crop, rng, config)
    if rng.random() < config.swap_probability:
        return Pair(crop, original, kind, True, top_left, (quality_crop, quality_original), source, unencoded)
    return Pair(original, crop, kind, False, top_left, (quality_original, quality_crop), source, unencoded)


def draw_crop_size(width: int, height: int, rng: np.random.Generator, config: SynthConfig) -> tuple[int, int]:
    """Crop width and height, each an independent fraction of the original's side."""
    fw, fh = rng.uniform(config.crop_min, config.crop_max, size=2)
    return max(MIN_SIDE, round(fw * width)), max(MIN_SIDE, round(fh * height))


def random_window(image: np.ndarray, width: int, height: int, rng: np.random.Generator):
    """A random (x, y) and the width x height window of `image` there."""
    x = int(rng.integers(0, image.shape[1] - width + 1))
    y = int(rng.integers(0, image.shape[0] - height + 1))
    return (x, y), image[y:y + height, x:x + width]


def crop_positive(photo, other, rng, config):
    width, height = draw_crop_size(photo.shape[1], photo.shape[0], rng, config)
    (x, y), _ = random_window(photo, width, height, rng)
    if rng.random() < config.edge_probability:
        # Crops touching a border are rare at random positions, and the edge cases of any search.
        edges = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)  # left, top, right, bottom
        x = 0 if 0 in edges else photo.shape[1] - width if 2 in edges else x
        y = 0 if 1 in edges else photo.shape[0] - height if 3 in edges else y
    return photo, photo[y:y + height, x:x + width], (x, y)


def crop_other(photo, other, rng, config):
    width, height = draw_crop_size(photo.shape[1], photo.shape[0], rng, config)
    # The other photo may be smaller than the crop we need: enlarge it to cover.
    scale = max(width / other.shape[1], height / other.shape[0], 1.0)
    if scale > 1.0:
        size = (int(np.ceil(other.shape[1] * scale)), int(np.ceil(other.shape[0] * scale)))
        other = np.asarray(Image.fromarray(other).resize(size, Image.Resampling.BILINEAR))
    _, crop = random_window(other, width, height, rng)
    return photo, crop, None


def crop_flip(photo, other, rng, config):
    width, height = draw_crop_size(photo.shape[1], photo.shape[0], rng, config)
    (x, y), crop = random_window(photo[:, ::-1], width, height, rng)
    return photo, np.ascontiguousarray(crop), (photo.shape[1] - x - width, y)  # the region it mirrors


def crop_border(photo, other, rng, config):
    """The original is the middle of the photo; the crop overlaps it and runs past its border.

    Cutting both from one photo means the part outside the original continues the
    scene naturally, which is what a real "almost a crop" looks like.
    """
    full_h, full_w = photo.shape[:2]
    orig_w, orig_h = round(full_w * 0.75), round(full_h * 0.75)
    orig_x = int(rng.integers(0, full_w - orig_w + 1))
    orig_y = int(rng.integers(0, full_h - orig_h + 1))
    width, height = draw_crop_size(orig_w, orig_h, rng, config)
    axes = [("x",), ("y",), ("x", "y")][rng.choice(3, p=[0.4, 0.4, 0.2])]
    x = orig_x + int(rng.integers(0, orig_w - width + 1))
    y = orig_y + int(rng.integers(0, orig_h - height + 1))
    if "x" in axes:
        x = overrun_start(orig_x, orig_w, width, full_w, rng, config)
    if "y" in axes:
        y = overrun_start(orig_y, orig_h, height, full_h, rng, config)
    original = photo[orig_y:orig_y + orig_h, orig_x:orig_x + orig_w]
    return original, photo[y:y + height, x:x + width], (x - orig_x, y - orig_y)


def overrun_start(orig_start: int, orig_len: int, crop_len: int, full_len: int,
                  rng: np.random.Generator, config: SynthConfig) -> int:
    """Start of a crop along one axis that runs past the original's edge into the photo's margin."""
    low = max(1, int(np.ceil(config.border_overrun[0] * crop_len)))
    high = max(low, int(config.border_overrun[1] * crop_len))
    room = {"before": orig_start, "after": full_len - (orig_start + orig_len)}
    sides = [side for side, space in room.items() if space >= 1]
    side = sides[rng.integers(len(sides))]
    overrun = min(int(rng.integers(low, high + 1)), room[side])
    if side == "before":
        return orig_start - overrun
    return orig_start + orig_len - crop_len + overrun


def crop_resized(photo, other, rng, config):
    """A crop of the original whose pixels were resampled: shrunk or enlarged slightly."""
    width, height = draw_crop_size(photo.shape[1], photo.shape[0], rng, config)
    scale = rng.uniform(*(config.resize_down if rng.random() < 0.5 else config.resize_up))
    box_w, box_h = round(width / scale), round(height / scale)
    if box_w > photo.shape[1] or box_h > photo.shape[0]:
        # Shrinking would need a window larger than the photo: enlarge instead.
        scale = rng.uniform(*config.resize_up)
        box_w, box_h = round(width / scale), round(height / scale)
    (x, y), window = random_window(photo, box_w, box_h, rng)
    resample = [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS][rng.integers(3)]
    crop = np.asarray(Image.fromarray(window).resize((width, height), resample))
    return photo, crop, (x, y)


CROPPERS = {
    "positive": crop_positive,
    "other": crop_other,
    "flip": crop_flip,
    "border": crop_border,
    "resized": crop_resized,
}
assert set(CROPPERS) == set(PAIR_KINDS)


def reencode(image: np.ndarray, rng: np.random.Generator, config: SynthConfig) -> tuple[np.ndarray, int | None]:
    """Save and reload as JPEG at a random quality and chroma subsampling, or keep lossless."""
    if rng.random() < config.png_probability:
        # A PNG round trip gives back the same pixels, so skip the (slow) encode.
        return np.ascontiguousarray(image), None
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    subsampling = JPEG_SUBSAMPLING[rng.integers(len(JPEG_SUBSAMPLING))]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")), quality


# ---------------------------------------------------------------- photos and split

def is_validation(name: str, val_percent: int) -> bool:
    """Stable train/validation assignment from the file's name: a photo is never in both."""
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % 100 < val_percent


def split_names(names: list[str], val_percent: int) -> tuple[list[str], list[str]]:
    train = [n for n in names if not is_validation(n, val_percent)]
    val = [n for n in names if is_validation(n, val_percent)]
    return train, val


@dataclass
class PhotoSet:
    """Decoded photos of a folder, shrunk to a maximum side, and the files that were skipped."""

    names: list[str]  # paths relative to the folder
    photos: list[np.ndarray]
    skipped: list[str]  # "name: reason" for every unreadable file


SKIP_KINDS = ("no such file", "empty", "permission denied", "not an image", "damaged or truncated", "too small",
              "over the limit", "one flat colour")

# Grey levels of standard deviation (the largest of the three channels') below which a photo is one
# flat colour. Seen among held-out wallpapers: transparent PNGs whose pattern is all in the alpha
# channel, white on white once composited (std 0 to 0.5); the least textured real photo had 8.
FLAT_STD = 2.0


def is_flat(photo: np.ndarray) -> bool:
    """A photo with no texture. Every window of it is, pixel for pixel, a crop of every other, so a
    "negative" drawn from it (resized, flipped, past the border) is a crop by definition: pair
    synthesis skips such photos rather than label crops as negatives."""
    small = shrink(photo, 256)
    return float(small.reshape(-1, small.shape[-1]).std(axis=0).max()) < FLAT_STD


def describe_skipped(skipped: list[str], names_shown: int = 3) -> list[str]:
    """One line per kind of unreadable file: how many, and the first few names."""
    by_kind: dict[str, list[str]] = {}
    for reason in skipped:
        name, _, why = reason.partition(": ")
        kind = next((k for k in SKIP_KINDS if k in why), "other")
        by_kind.setdefault(kind, []).append(name)
    return [f"skipped {len(names)} ({kind}): " + ", ".join(names[:names_shown]) + (", ..." if len(names) > names_shown
                                                                                   else "")
            for kind, names in by_kind.items()]


def load_photos(folder: Path, paths: list[Path], max_side: int | None, min_side: int = 2 * MIN_SIDE,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoSet:
    """Decode `paths`, skipping (and recording) the ones that cannot be used."""
    names, photos, skipped = [], [], []
    for path in paths:
        try:
            photo = shrink(load_image(path, max_pixels), max_side)
        except ImageError as error:
            skipped.append(str(error))
            continue
        if min(photo.shape[:2]) < min_side:
            skipped.append(f"{path}: smaller than {min_side} px, too small to crop from")
            continue
        if is_flat(photo):
            skipped.append(f"{path}: one flat colour as loaded (transparent pixels are composited on white), "
                           "so no negative pair can be drawn from it")
            continue
        names.append(path.relative_to(folder).as_posix())
        photos.append(photo)
    return PhotoSet(names, photos, skipped)


def load_folder(folder: Path, max_side: int | None, max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoSet:
    """Every usable photo under `folder`; FolderError when there is none."""
    paths = find_images(folder)
    if not paths:
        raise FolderError(f"{folder}: no image files (jpg, png, webp, bmp, tiff) found")
    photos = load_photos(folder, paths, max_side, max_pixels=max_pixels)
    if not photos.photos:
        raise FolderError(f"{folder}: none of the {len(paths)} image files could be used")
    return photos


def augment_photo(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips and quarter turns of a training photo: a crop of the result is still a crop of it."""
    photo = np.rot90(photo, k=int(rng.integers(4)))
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    return np.ascontiguousarray(photo)


class PairDataset:
    """`length` synthesized pairs; item i is a pure function of (seed, epoch, i).

    A plain map-style dataset (no torch import needed): torch's DataLoader only
    asks for `__len__` and `__getitem__`.
    """

    def __init__(self, photos: list[np.ndarray], length: int, seed: int, config: SynthConfig,
                 transform, augment: bool = False):
        if not photos:
            raise ValueError("no photos to synthesize pairs from")
        self.photos, self.length, self.seed = photos, length, seed
        self.config, self.transform, self.augment = config, transform, augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Training draws new pairs every epoch; validation keeps epoch 0 for comparable numbers."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def pair(self, index: int) -> Pair:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        first = int(rng.integers(len(self.photos)))
        second = first
        if len(self.photos) > 1:
            second = (first + 1 + int(rng.integers(len(self.photos) - 1))) % len(self.photos)
        photo, other = self.photos[first], self.photos[second]
        if self.augment:
            photo, other = augment_photo(photo, rng), augment_photo(other, rng)
        if second == first:
            other = np.ascontiguousarray(np.rot90(other))  # a lone photo: its quarter turn stands in for another
        return synthesize_pair(photo, other, rng, self.config)

    def __getitem__(self, index: int) -> dict:
        # A generator of its own for transforms that draw (RefineTransform), apart from the pair's.
        return self.transform(self.pair(index), np.random.default_rng([self.seed, self.epoch, index, 1]))


# ---------------------------------------------------------------- network input

def fit_pair(a: np.ndarray, b: np.ndarray, input_size: int, fit: str = "common", masks: bool = False) -> np.ndarray:
    """Both images as one (6, N, N) float32 array, normalized; (8, N, N) with `masks`.

    "common": one scale factor for both images, the one that fits the larger side
    of either into N; each is placed at the top-left of its canvas and the rest is
    zero (the mean colour after normalization). The crop then appears at the same
    size as its region of the original, which is what the net has to find.
    "stretch": each image squeezed to N x N on its own (the write-up's input; kept
    so evaluate can show what it costs).
    `masks` adds one channel per image, 1 where the image lies on its canvas: the
    siamese net must keep the padding out of its correlation.
    """
    canvas = np.zeros((8 if masks else 6, input_size, input_size), dtype=np.float32)
    if fit == "common":
        scale = input_size / max(a.shape[0], a.shape[1], b.shape[0], b.shape[1])
    for channel, image in ((0, a), (3, b)):
        height, width = image.shape[:2]
        if fit == "common":
            size = (max(1, min(input_size, round(width * scale))), max(1, min(input_size, round(height * scale))))
        else:
            size = (input_size, input_size)
        resized = np.asarray(
            Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0), dtype=np.float32
        )
        normalized = (resized / 255.0 - MEAN) / STD  # (h, w, 3)
        canvas[channel:channel + 3, :size[1], :size[0]] = normalized.transpose(2, 0, 1)
        if masks:
            canvas[6 + channel // 3, :size[1], :size[0]] = 1.0
    return canvas


class PairTransform:
    """A Pair to the network's input and targets (the same for training and evaluation:
    training variety comes from `augment_photo`, which acts before synthesis)."""

    def __init__(self, *, input_size: int, fit: str = "common", masks: bool = False):
        self.input_size, self.fit, self.masks = input_size, fit, masks

    def __call__(self, pair: Pair, rng: np.random.Generator | None = None) -> dict:
        original = pair.original
        top_left = (0.0, 0.0)
        if pair.top_left is not None:
            top_left = (pair.top_left[0] / original.shape[1], pair.top_left[1] / original.shape[0])
        return {
            "image": fit_pair(pair.a, pair.b, self.input_size, self.fit, self.masks),
            "paired": np.int64(pair.paired),
            "swapped": np.int64(pair.swapped),
            "top_left": np.array(top_left, dtype=np.float32),
            "kind": np.int64(PAIR_KINDS.index(pair.kind)),
            "original_size": np.array([original.shape[1], original.shape[0]], dtype=np.int64),
            "size_a": np.array([pair.a.shape[1], pair.a.shape[0]], dtype=np.int64),
            "size_b": np.array([pair.b.shape[1], pair.b.shape[0]], dtype=np.int64),
        }


# ---------------------------------------------------------------- the refining stage's input

def refine_scale(sizes, input_size: int, zoom: float) -> float:
    """The second view's scale: `zoom` times the first view's (fit_pair's common scale), never above 1."""
    return min(1.0, zoom * input_size / max(max(size) for size in sizes))


def zoomed_view(image: np.ndarray, x: int, y: int, size: int | tuple[int, int], scale: float) -> np.ndarray:
    """(4, size, size) float32, or (4, height, width) for a `size` (width, height): `image`'s region
    from (x, y) seen at `scale`, normalized as fit_pair normalizes, and a mask channel, 1 where the
    image is. The region may run past the image (or lie wholly outside it): that part stays zero, the
    mean colour, with mask 0."""
    size_w, size_h = (size, size) if isinstance(size, int) else size
    view = np.zeros((4, size_h, size_w), dtype=np.float32)
    height, width = image.shape[:2]
    left, top = max(0, x), max(0, y)
    right, bottom = min(width, int(np.ceil(x + size_w / scale))), min(height, int(np.ceil(y + size_h / scale)))
    into_x, into_y = round((left - x) * scale), round((top - y) * scale)  # where the image starts in the view
    view_w = min(size_w - into_x, round((right - left) * scale))
    view_h = min(size_h - into_y, round((bottom - top) * scale))
    if view_w < 1 or view_h < 1:
        return view
    part = np.ascontiguousarray(image[top:bottom, left:right])  # a half-turned image is a view with negative strides
    if part.shape[:2] != (view_h, view_w):
        part = cv2.resize(part, (view_w, view_h), interpolation=cv2.INTER_AREA)
    normalized = (part.astype(np.float32) / 255.0 - MEAN) / STD  # (h, w, 3)
    view[:3, into_y:into_y + view_h, into_x:into_x + view_w] = normalized.transpose(2, 0, 1)
    view[3, into_y:into_y + view_h, into_x:into_x + view_w] = 1.0
    return view


def refine_views(original: np.ndarray, crop: np.ndarray, corner, scale: float, patch: int,
                 window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The refining stage's input for a crop believed to lie at `corner` (x, y) in `original`.

    Returns windows (2, 4, window, window): the original around where the crop's top-left and
    bottom-right corners should be; patches (2, 4, patch, patch): the crop at those corners; and
    origins (2, 2): each window's top-left in original px. All are seen at `scale`. For the
    bottom-right corner both images are turned half a turn, so the network reads every corner as
    a top-left one, and that window's origin is in the turned original's px.
    """
    reach = (window - patch) / 2 / scale  # original px the window reaches each way from the corner
    crop_h, crop_w = crop.shape[:2]
    turned_corner = (original.shape[1] - corner[0] - crop_w, original.shape[0] - corner[1] - crop_h)
    windows, patches, origins = [], [], []
    for image, part, (x, y) in ((original, crop, corner), (original[::-1, ::-1], crop[::-1, ::-1], turned_corner)):
        origin = (round(x - reach), round(y - reach))
        windows.append(zoomed_view(image, *origin, window, scale))
        patches.append(zoomed_view(part, 0, 0, patch, scale))
        origins.append(origin)
    return np.stack(windows), np.stack(patches), np.array(origins, dtype=np.float32)


def scan_views(original: np.ndarray, crop: np.ndarray, scale: float, patch: int,
               cell: int) -> tuple[np.ndarray, np.ndarray]:
    """The input of `Refiner.scan`: the whole original and its half-turn (2, 4, H, W), each from its
    own top-left and padded to whole feature cells of `cell` px (and to at least a patch: the patch is
    correlated over it), and the crop's top-left patch and its half-turned bottom-right one
    (2, 4, patch, patch), as `refine_views` cuts them; all seen at `scale`."""
    height, width = original.shape[:2]
    cells = tuple(max(patch, -(-round(side * scale) // cell) * cell) for side in (width, height))
    wholes = [zoomed_view(image, 0, 0, cells, scale) for image in (original, original[::-1, ::-1])]
    patches = [zoomed_view(part, 0, 0, patch, scale) for part in (crop, crop[::-1, ::-1])]
    return np.stack(wholes), np.stack(patches)


CROP_FIT_RADIUS = 8  # view px the whole crop's fit moves the crop each way around the corner found


def crop_fit_scale(original_size, crop_size, input_size: int, zoom: float, side: int) -> float:
    """The scale of the whole crop's fit: the crop's longer side at `side` px, unless the closer
    view (`refine_scale`) is coarser; a net answers from images decoded at that view's scale."""
    return min(refine_scale((original_size, crop_size), input_size, zoom), side / max(crop_size))


def crop_fit_views(original: np.ndarray, crop: np.ndarray, corners, scale: float, side: int,
                   radius: int = CROP_FIT_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """The input of `model.crop_fit` for a crop believed to lie at each of `corners` (x, y) in `original`.

    Returns the crop (4, side, side), from its top-left, and for each corner the original's region
    (n, 4, side + 2 radius, side + 2 radius) starting `radius` px before it; all seen at `scale`
    (at most 1), with a mask channel as `zoomed_view` makes. The original is reduced once for all corners.
    """
    scale = min(scale, 1.0)  # arrays decoded a little coarser than asked are compared as they are
    shrunk = original
    if scale < 1:
        size = (max(1, round(original.shape[1] * scale)), max(1, round(original.shape[0] * scale)))
        shrunk = cv2.resize(np.ascontiguousarray(original), size, interpolation=cv2.INTER_AREA)
    regions = [zoomed_view(shrunk, round(x * scale) - radius, round(y * scale) - radius, side + 2 * radius, 1.0)
               for x, y in corners]
    return zoomed_view(crop, 0, 0, side, scale), np.stack(regions)


def crop_fit_corner(corner, place, scale: float, radius: int) -> np.ndarray:
    """The crop's top-left (x, y) in original px for a `place` (view px) in the region `crop_fit_views`
    cut around `corner` with that `scale` and `radius`: its inverse."""
    scale = min(scale, 1.0)  # as crop_fit_views clamps it
    return (np.round(np.asarray(corner) * scale) - radius + np.asarray(place)) / scale


def coarse_place(original: np.ndarray, crop: np.ndarray, side: int, finest: float = 1.0) -> tuple[float, float]:
    """Where `crop` fits `original` best, (x, y) in `original`'s px, among the places where it lies wholly
    inside: both reduced alike until the crop's longer side is `side` px (never enlarged, and never finer
    than `finest`), blurred, and compared by their summed squared differences (`cv2.matchTemplate`).
    Coarse: a few px of the reduction off at best, so a finer search follows it. The crop must fit."""
    scale = min(1.0, finest, side / max(crop.shape[:2]))

    def reduced(image: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(image)
        if scale < 1:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(image.astype(np.float32), (5, 5), 1.0)

    # Rounding is monotonic, so a crop that fits the original still fits it reduced.
    differences = cv2.matchTemplate(reduced(original), reduced(crop), cv2.TM_SQDIFF)
    _, _, best, _ = cv2.minMaxLoc(differences)
    return best[0] / scale, best[1] / scale


def refine_targets(top_left, origins: np.ndarray, scale: float, original_size, crop_size) -> np.ndarray:
    """(2, 2): where the crop's patch lies in each window of `refine_views`, in view px."""
    top_left, original_size, crop_size = (np.asarray(v, dtype=np.float32) for v in (top_left, original_size,
                                                                                    crop_size))
    turned = original_size - crop_size - top_left
    return np.stack([top_left - origins[0], turned - origins[1]]) * scale


def refined_corner(offsets: np.ndarray, origins: np.ndarray, scale: float, original_size, crop_size) -> np.ndarray:
    """The crop's top-left (x, y) in original px from the refining stage's two offsets (view px), averaged:
    the inverse of `refine_targets`."""
    from_top_left = origins[0] + offsets[0] / scale
    from_bottom_right = np.asarray(original_size) - np.asarray(crop_size) - (origins[1] + offsets[1] / scale)
    return (from_top_left + from_bottom_right) / 2


class RefineTransform:
    """A Pair to the refining stage's input and targets, for training it.

    The first stage's corner is simulated: the spot the crop's content comes from (`Pair.source`;
    anywhere for a crop of another photo) plus a normal error of `jitter` times the original's
    longer side on each axis, kept inside the window's reach so that a true crop is always there
    to be found.
    """

    def __init__(self, *, input_size: int, zoom: float, patch: int, window: int, jitter: float, crop_side: int = 0):
        self.input_size, self.zoom, self.patch, self.window, self.jitter = input_size, zoom, patch, window, jitter
        self.crop_side = crop_side  # the whole crop's fit (ModelConfig.refine_crop_side); 0: not made

    def __call__(self, pair: Pair, rng: np.random.Generator) -> dict:
        original, crop = pair.original, pair.crop
        original_size = (original.shape[1], original.shape[0])
        crop_size = (crop.shape[1], crop.shape[0])
        scale = refine_scale((original_size, crop_size), self.input_size, self.zoom)
        truth = pair.source
        if truth is None:
            truth = (int(rng.integers(0, max(1, original_size[0] - crop_size[0] + 1))),
                     int(rng.integers(0, max(1, original_size[1] - crop_size[1] + 1))))
        reach = (self.window - self.patch) / 2 / scale
        error = np.clip(rng.normal(0.0, self.jitter * max(original_size), size=2), -0.9 * reach, 0.9 * reach)
        corner = np.round(np.asarray(truth) + error)
        windows, patches, origins = refine_views(original, crop, corner, scale, self.patch, self.window)
        item = {
            "windows": windows,
            "patches": patches,
            "offsets": refine_targets(truth, origins, scale, original_size, crop_size).astype(np.float32),
            "paired": np.int64(pair.paired),
            "kind": np.int64(PAIR_KINDS.index(pair.kind)),
            "origins": origins,
            "scale": np.float32(scale),
            "top_left": np.asarray(truth, dtype=np.float32),
            "original_size": np.array(original_size, dtype=np.int64),
            "crop_size": np.array(crop_size, dtype=np.int64),
        }
        if self.crop_side:
            # Compared where this stage puts the corner: for a true crop the truth within a few view px
            # (the fit's own search forgives them), for the rest where their content comes from.
            fit_scale = crop_fit_scale(original_size, crop_size, self.input_size, self.zoom, self.crop_side)
            error = np.clip(rng.normal(0.0, 2.0, size=2), -6, 6) / fit_scale
            item["crops"], regions = crop_fit_views(original, crop, [np.asarray(truth) + error], fit_scale,
                                                    self.crop_side)
            item["regions"] = regions[0]
        return item

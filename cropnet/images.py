"""The one image loader: every command reads pictures through `load_image`.

Rules, so that both images of a pair are treated the same way:
- EXIF orientation is applied, so coordinates refer to the image as viewers show it.
- Everything becomes 8-bit RGB. CMYK goes through its embedded ICC profile when it has one
  (RGB profiles are ignored, so a crop saved without its original's profile still matches).
  Transparent pixels are composited on white,
  16- and 32-bit greys are scaled to 8 bits, palette and 1-bit images are expanded,
  and animations contribute their first frame.
- The pixel count is checked from the header, before any pixel is decoded.
- Truncated or corrupt files are errors, never silently half-grey images.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

from .errors import FolderError, ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
DEFAULT_MAX_PIXELS = 100_000_000  # a 12-megapixel phone photo is far below; a memory bomb is not
MIN_SIDE = 8  # px; below this there is nothing to compare
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on this
# Pillow's formats of files libjpeg decodes: MPO is a camera's multi-picture file, its first picture a JPEG.
JPEG_FORMATS = ("JPEG", "MPO")
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # Pillow modes without colour

# A half-written JPEG must be an error, not a picture padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow's own decompression-bomb guard has a fixed limit and raises from Image.open with a
# message of its own; load_image checks the header against the caller's limit instead.
Image.MAX_IMAGE_PIXELS = None


@contextmanager
def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Open an image file for reading, its size checked against `max_pixels` from the header.

    Any failure, here or in the caller's block (decoding included), becomes an
    ImageError whose message names the file and the reason in one line.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{path}: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,}"
                )
            yield image
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: damaged or truncated image ({error})") from None


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, grey: bool = False,
               scale: float = 1.0) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    With `grey`, an (H, W) uint8 luma array instead (ITU-R 601 weights, as JPEG's Y
    and OpenCV's RGB2GRAY use). A JPEG then decodes its Y channel alone: libjpeg
    skips the colour planes' inverse DCT, upsampling and colour conversion, which
    makes a 12-megapixel photo decode in about a third of the time its RGB takes.

    With `scale` below 1, each side is reduced to round(side * scale) (the network's
    view of a pair needs no more). A JPEG then decodes straight to a half, a quarter
    or an eighth of its size (libjpeg's DCT scaling), and Pillow resamples the rest.
    """
    with decoded(path, max_pixels, grey, scale) as (image, displayed, pixels, _):
        return pixels if pixels is not None and grey and not displayed else as_array(image, grey, displayed)


def load_grey_and_views(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, scale: float | None = None,
                        colour_factor: int | None = None) -> tuple[np.ndarray, np.ndarray | None, ReducedColour | None]:
    """`load_image(path, grey=True)`, with `scale` `load_image(path, scale=scale)`, and with `colour_factor`
    `load_reduced_colour(path, factor=colour_factor)` (else None for each): the same arrays, from one
    decode when the file is not a JPEG (a 12-megapixel PNG takes 300 ms to decode, and its RGB 36 MB at
    the peak). A JPEG is decoded once for each: its Y channel alone and a DCT-scaled RGB cost less than
    one full decode."""
    if scale is None and not colour_factor:
        return load_image(path, max_pixels, grey=True), None, None
    if is_jpeg(path):
        view = load_image(path, max_pixels, scale=scale) if scale is not None else None
        colour = load_reduced_colour(path, max_pixels, colour_factor) if colour_factor else None
        return load_image(path, max_pixels, grey=True), view, colour
    with decoded(path, max_pixels) as (image, _, _, _):
        width, height = image.size  # as displayed
        grey = as_array(image, True, None)
        image = rgb_or_grey(image)  # converted once for both
        view = None
        if scale is not None:
            view = as_array(image, False, (max(1, round(width * scale)), max(1, round(height * scale)))
                            if scale < 1 else None)
        colour = ReducedColour(box_reduced(image, colour_factor), (0, 0)) if colour_factor else None
        return grey, view, colour


class ReducedColour(NamedTuple):
    """An image as displayed, RGB, reduced by a whole factor: each pixel the mean of a box of factor x factor
    px (of what is left of one at the picture's edges)."""

    rgb: np.ndarray  # (ceil(height / factor), ceil(width / factor), 3) uint8, give or take a partial box
    # (x, y) px of the grid's first box that lie before the picture: its boxes start at -origin + k * factor.
    # Not 0 where a JPEG reduced as stored is then turned or mirrored: its partial boxes, last as stored,
    # come first as displayed (`box_origin`).
    origin: tuple[int, int]


def load_reduced_colour(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, factor: int = 4
                        ) -> ReducedColour:
    """The image as displayed, RGB, reduced by the whole `factor` (`ReducedColour`). A JPEG decodes
    straight to it (libjpeg's DCT scaling, for a factor of 2, 4 or 8); any other file is decoded and
    reduced by Pillow (`Image.reduce`, which makes no intermediate image: a bilinear resize of a
    12-megapixel picture took 36 ms and 12 MB more, its box reduction 6 ms)."""
    with decoded(path, max_pixels, box_factor=factor) as (image, reduced, _, origin):
        if image.size != reduced:  # decoded in full: reduced as displayed
            return ReducedColour(box_reduced(image, factor), (0, 0))
        return ReducedColour(to_rgb(image), origin)


def box_reduced(image: Image.Image, factor: int) -> np.ndarray:
    """A decoded image as RGB (by `to_rgb`'s rules), reduced by Pillow's box averages of `factor` x `factor`."""
    return to_rgb(rgb_or_grey(image).reduce(factor))


def rgb_or_grey(image: Image.Image) -> Image.Image:
    """The image itself when Pillow holds it as RGB or L, else converted to RGB by `to_rgb`'s rules
    (transparency, palettes, CMYK, 16 bits), so that reducing it averages the pixels `load_image` gives."""
    return image if image.mode in ("RGB", "L") else Image.fromarray(to_rgb(image))


@contextmanager
def decoded(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, grey: bool = False, scale: float = 1.0,
            box_factor: int | None = None):
    """The Pillow image of `path`, decoded and turned as displayed, the size (as displayed) `scale`
    reduces it to (None at full size), and a JPEG's luma as an array when it was decoded straight
    into one (`decode_into_array`; else None). A JPEG decodes only what `grey` and `scale` need.

    With `box_factor` (2, 4 or 8) instead of a scale, the size yielded is ceil(side / box_factor),
    and a JPEG decodes straight to it, each pixel about the mean of its box (libjpeg's DCT scaling:
    Pillow picks the scale by whole division of the size asked, so it is asked side // box_factor);
    the last element yielded is then where its grid of boxes starts as displayed (`ReducedColour.origin`;
    (0, 0) for anything else)."""
    with open_image(path, max_pixels) as image:
        width, height = image.size
        if min(width, height) < MIN_SIDE:
            raise ImageError(f"{path}: {width}x{height} is too small (each side must be at least {MIN_SIDE} px)")
        reduced = (max(1, round(width * scale)), max(1, round(height * scale))) if scale < 1 else None
        asked = reduced
        if box_factor:
            reduced = (-(-width // box_factor), -(-height // box_factor))
            asked = (width // box_factor, height // box_factor)
        if image.format in JPEG_FORMATS and (grey or asked):
            image.draft("L" if grey else None, asked)  # the output colour space, and a size at least `asked`
        pixels = decode_into_array(image) if image.format in JPEG_FORMATS and image.mode == "L" else None
        image.load()  # nothing left to do when decoded into the array
        orientation = exif_orientation(image)
        turned = orientation in QUARTER_TURNS
        origin = (0, 0)
        if box_factor and image.size == reduced:  # reduced as stored: its partial boxes may come first as displayed
            origin = box_origin(orientation, (width, height), box_factor)
        if orientation != 1:  # exif_transpose copies even an image it leaves as it is (35 ms at 12 MP)
            image, pixels = ImageOps.exif_transpose(image), None
        yield image, (reduced[::-1] if turned else reduced) if reduced else None, pixels, origin


def box_origin(orientation: int, stored_size: tuple[int, int], factor: int) -> tuple[int, int]:
    """Where the grid of boxes of a picture reduced as stored (`stored_size`, its last box in each direction
    partial) starts once turned as displayed by EXIF `orientation`: (x, y) px before the displayed picture.
    A mirror or turn that brings the partial boxes to the displayed left or top moves the grid by what they
    lack."""
    lack_x, lack_y = ((factor - side % factor) % factor for side in stored_size)
    # Which stored side ends up reversed along the displayed x and y axes (Pillow's exif_transpose).
    return {1: (0, 0), 2: (lack_x, 0), 3: (lack_x, lack_y), 4: (0, lack_y),
            5: (0, 0), 6: (lack_y, 0), 7: (lack_y, lack_x), 8: (0, lack_x)}.get(orientation, (0, 0))


def decode_into_array(image: Image.Image) -> np.ndarray | None:
    """Decode an opened luma (mode "L") image into a new (H, W) uint8 array, and return the array.

    np.asarray(image) copies Pillow's pixels out through `tobytes`, in chunks that are then joined:
    for a 12-megapixel JPEG that took twice as long as the decoding itself (about 50 against 17 ms
    here). Pillow allocates an image's memory only when it has none yet (`ImageFile.load_prepare`),
    so an image sharing the array's memory (`Image.frombuffer`), set beforehand, receives the
    decoded pixels. Returns None, the image decoded as usual, where Pillow made memory of its own.
    """
    width, height = image.size
    pixels = np.empty((height, width), np.uint8)
    target = Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1).im
    image.im = target
    image.load()
    return pixels if image.im is target else None


def as_array(image: Image.Image, grey: bool, size: tuple[int, int] | None) -> np.ndarray:
    """A decoded image as `load_image` returns it: luma or RGB, resized to (width, height) `size` if given."""
    if size and image.mode in ("RGB", "L"):
        # Reduced as Pillow holds it, before any array is made: a 12-megapixel PNG (no DCT scaling)
        # would otherwise be copied to a full-size array and back (130 MB more at the peak).
        image = resize_to(image, size)
    if grey and image.mode == "RGB":  # Pillow's own ITU-R 601 luma: no RGB array is ever made
        image = image.convert("L")
    # np.asarray gives a read-only array over the bytes Pillow's tobytes copied out; nothing writes
    # into it, so it is not copied once more (a grey JPEG skips even that: `decode_into_array`).
    pixels = np.asarray(image) if grey and image.mode == "L" else to_rgb(image)
    if size and pixels.shape[1::-1] != size:  # the other modes, once converted
        pixels = np.asarray(resize_to(Image.fromarray(pixels), size))
    if grey and pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return pixels


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` at (width, height) `size` (as it is when it has that size already): bilinear, with
    Pillow's box reduction first for large factors."""
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter: its displayed sides swap


def exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation, 1 (as stored) when it has none."""
    return image.getexif().get(ExifTags.Base.Orientation, 1)


class ImageHeader(NamedTuple):
    """What a file's header tells, nothing decoded."""

    size: tuple[int, int]  # (width, height) as displayed, EXIF orientation applied
    # The file keeps its 8-bit pixels exactly: a PNG without a palette, colour or grey. Two such files hold a
    # crop's pixels as they are (its luma within rounding, whichever of them is grey): verification then asks
    # the whole crop to match within rounding, not only within JPEG noise (`VerifyConfig.lossless`). Left
    # out: a palette PNG (quantising a photo to 256 colours moves its pixels) and a 16-bit one (brought to 8
    # bits by whichever rounding the program that made the other file chose).
    lossless: bool
    # A JPEG's luma quantization table (64 steps, row by row) where its decoded luma is that table's blocks
    # as stored: not turned by EXIF, luma at full resolution, colour kept as YCbCr or grey. Else None.
    # `quantization.EncodingTest` reads it.
    luma_table: tuple[int, ...] | None = None
    # The file holds colour (RGB, CMYK, a palette): the colour check (`colour`) compares it. A grey file has
    # none to compare: a grey crop of a colour original is answered from its luma alone.
    colour: bool = True
    jpeg: bool = False  # decoded by libjpeg (`JPEG_FORMATS`): it can decode luma alone, or reduced, cheaply


def image_header(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """The file's `ImageHeader`, from one read of its header."""
    with open_image(path, max_pixels) as image:
        width, height = image.size
        raw_modes = {tile.args for tile in image.tile if isinstance(tile.args, str)}
        lossless = (image.format == "PNG" and image.mode in ("RGB", "RGBA", "L", "LA")
                    and not any(";16" in raw_mode for raw_mode in raw_modes))
        # Pillow's getexif() on a PNG decodes all its pixels to look for an eXIf chunk after them (300 ms
        # for a 12-megapixel PNG): the header answers only for a chunk before them, the usual place.
        orientation = 1 if image.format == "PNG" and "exif" not in image.info else exif_orientation(image)
        turned = orientation in QUARTER_TURNS
        table = jpeg_luma_table(image) if orientation == 1 else None
        return ImageHeader((height, width) if turned else (width, height), lossless, table,
                           image.mode not in GREY_MODES, image.format in JPEG_FORMATS)


def jpeg_luma_table(image: Image.Image) -> tuple[int, ...] | None:
    """The opened JPEG's luma quantization table, when its luma decodes as its blocks were stored (see
    `ImageHeader.luma_table`); None for any other file."""
    if image.format not in JPEG_FORMATS or image.mode not in ("L", "RGB") or image.info.get("adobe_transform") == 0:
        return None  # CMYK, or RGB stored as it is (no luma channel)
    layers = getattr(image, "layer", None)
    tables = getattr(image, "quantization", None)
    if not layers or not tables:
        return None
    if [layer[0] for layer in layers] == [ord("R"), ord("G"), ord("B")]:
        return None  # components named R, G, B: libjpeg keeps them as RGB, there is no luma channel
    _, horizontal, vertical, index = layers[0]
    if horizontal < max(layer[1] for layer in layers) or vertical < max(layer[2] for layer in layers):
        return None  # luma subsampled: decoding stretches it, and its blocks no longer sit on an 8-px grid
    table = tables.get(index)
    return tuple(int(step) for step in table) if table is not None and len(table) == 64 else None


def image_size(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header alone: nothing is decoded."""
    return image_header(path, max_pixels).size


def is_jpeg(path: str | os.PathLike) -> bool:
    """The file starts as a JPEG does (its first marker), whatever its name."""
    with open(path, "rb") as file:
        return file.read(3) == b"\xff\xd8\xff"


def to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an (H, W, 3) uint8 array by the module's rules."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0  # 16-bit range to 8-bit range
        grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        image = Image.alpha_composite(canvas, rgba)
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        image = cmyk_to_srgb(image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def cmyk_to_srgb(image: Image.Image) -> Image.Image:
    """A CMYK image through its embedded ICC profile to sRGB; Pillow's plain formula if the profile is unusable.

    Only CMYK goes through its profile: it has to be converted somehow, and the profile says
    how. RGB profiles are ignored on purpose, so a crop saved without its original's profile
    keeps the same pixel values and is still found.
    """
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        return ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image.convert("RGB")


def find_images(folder: str | os.PathLike) -> list[Path]:
    """All files under `folder` (recursively) whose suffix names an image format, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Scale `image` down so its longer side is at most `max_side` (no-op when None or already small)."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))

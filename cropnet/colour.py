"""Does the crop's colour agree with the original's where its luma fits? And where does it fit in colour?

Verification compares luma (`verify`), where JPEG keeps full resolution. A smooth crop fits
wherever the luma does: a patch of another picture's pale red fits a grey sky of the same
brightness, and a flat crop of one colour region fits every region of equal luma, whatever its
colour. Such answers are the ambiguous ones. For them both images are read in colour at a
quarter of their size (`FACTOR`), and the crop's mean chroma over a grid of its regions is
compared with the original's at the answer. Where they disagree, the crop is sought again
where luma and colour fit together (`colour_places`), and verified there in luma at full
resolution.

Chroma, not RGB: the crop's luma was verified already, and JPEG keeps chroma at half resolution
and coarser steps, which region means average out. Means over regions, compared at the answer's
exact fractional place in the reduced images (`region_means`), so the reduction costs no accuracy
on smooth crops, the only ones checked. Numpy, OpenCV and Pillow. Measurements: docs/verification.md.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from .images import ReducedColour, box_reduced
from .verify import lowest_minima

# Both images are read at a quarter of their size, each pixel the mean of a 4 x 4 box: a JPEG decodes
# there cheaply, by DCT scaling (a 12-megapixel one in 6-11 ms and 2 MB here, against about 100 ms and
# 36 MB at full size; `images.load_reduced_colour`). Not an eighth: libjpeg makes each pixel there from
# its block's coefficients alone, and a true crop's region means, on its own block grid, then differed
# from the original's by up to 6.4 chroma levels at colour edges (that crop: 1.0 at a quarter).
FACTOR = 4
# px between the phases the colour search tries (`colour_places`): 0 and 2 of 4, so that the crop's
# own place is never more than a px off the boxes. All 16 phases (tried, with three-channel matching)
# gave the development sets the same paired answers and made their slowest set 50% slower.
PHASE_STEP = 2
MAX_REGIONS = 4  # per side of the crop's grid of regions
NEUTRAL = 2.0  # chroma levels from grey within which a whole picture counts as grey (JPEG's rounding)
MIN_REGION_SIDE = 4  # reduced px a region keeps: fewer regions for a smaller crop


class ColourView(NamedTuple):
    """An image reduced by a whole factor (`images.ReducedColour`), as YCrCb, and its full size."""

    ycrcb: np.ndarray  # (about height / factor, width / factor, 3) float32: luma, red and blue chroma
    size: tuple[int, int]  # (width, height) at full resolution
    factor: int  # each pixel is the mean of a factor x factor box (of what is left of one at the edges)
    origin: tuple[int, int] = (0, 0)  # px of the first box before the picture (`images.ReducedColour.origin`)

    def reduced(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple:
        """Full-resolution (x, y) in the reduced image's px (fractional; pixel i spans i to i + 1)."""
        return (x + self.origin[0]) / self.factor, (y + self.origin[1]) / self.factor


def colour_view(colour: ReducedColour | np.ndarray | None, size: tuple[int, int] | None = None,
                factor: int = FACTOR) -> ColourView | None:
    """The `ColourView` of an image of (width, height) `size` reduced by `factor` (`ReducedColour`), or
    of an RGB uint8 array at full size, reduced here (`images.box_reduced`). None where there is no
    colour to compare: a grey (2-D) array or one of another depth, or a picture whose every reduced
    pixel is grey (within `NEUTRAL` chroma levels: a grey picture kept as RGB, as a grey file is not
    compared either)."""
    if colour is None:
        return None
    if isinstance(colour, np.ndarray):  # an RGB array at full size
        if colour.ndim != 3 or colour.dtype != np.uint8:
            return None
        size = colour.shape[1::-1]
        colour = ReducedColour(box_reduced(Image.fromarray(colour), factor), (0, 0))
    ycrcb = cv2.cvtColor(np.ascontiguousarray(colour.rgb), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    if np.abs(ycrcb[:, :, 1:] - 128).max() <= NEUTRAL:
        return None
    return ColourView(ycrcb, size, factor, colour.origin)


def colour_gap(original: ColourView, crop: ColourView, top_left: tuple[int, int]) -> float:
    """The largest difference, in chroma levels, between the mean red or blue chroma of a region of the
    crop and of the original under it, with the crop at `top_left` (full-resolution px), over a grid
    of up to `MAX_REGIONS` x `MAX_REGIONS` regions of the crop. At most 2.7 measured for true crops
    (docs/verification.md); a grid, not the whole crop, so that a part that differs is not averaged away."""
    width, height = crop.size
    count = int(np.clip(min(crop.ycrcb.shape[:2]) // MIN_REGION_SIDE, 1, MAX_REGIONS))
    xs, ys = np.linspace(0, width, count + 1), np.linspace(0, height, count + 1)
    x0, y0 = (edges.ravel() for edges in np.meshgrid(xs[:-1], ys[:-1]))
    x1, y1 = (edges.ravel() for edges in np.meshgrid(xs[1:], ys[1:]))
    crop_means = region_means(crop.ycrcb[:, :, 1:], np.stack([*crop.reduced(x0, y0), *crop.reduced(x1, y1)], 1))
    x, y = top_left
    placed = np.stack([*original.reduced(x + x0, y + y0), *original.reduced(x + x1, y + y1)], 1)
    original_means = region_means(original.ycrcb[:, :, 1:], placed)
    return float(np.abs(crop_means - original_means).max())


def region_means(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of each channel of `image` (h, w, c) over each box (x0, y0, x1, y1) in its px, fractional,
    as if each pixel were a square of constant value: (boxes, c).

    The integral of such an image from (0, 0) to (x, y) is bilinear between pixel corners, so a
    fractional box's sum is four bilinear reads of the integral image."""
    integral = cv2.integral(np.ascontiguousarray(image, dtype=np.float64))  # (h + 1, w + 1, c)
    if integral.ndim == 2:
        integral = integral[:, :, None]
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (np.clip(boxes[:, i], 0, limit) for i, limit in enumerate((width, height) * 2))

    def cumulative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        left, top = np.minimum(x.astype(int), width - 1), np.minimum(y.astype(int), height - 1)
        fx, fy = (x - left)[:, None], (y - top)[:, None]
        return (integral[top, left] * (1 - fx) * (1 - fy) + integral[top, left + 1] * fx * (1 - fy)
                + integral[top + 1, left] * (1 - fx) * fy + integral[top + 1, left + 1] * fx * fy)

    sums = cumulative(x1, y1) - cumulative(x0, y1) - cumulative(x1, y0) + cumulative(x0, y0)
    area = np.maximum((x1 - x0) * (y1 - y0), 1e-9)[:, None]  # a box squeezed to nothing by the border
    return sums / area


def colour_places(original: ColourView, crop: ColourView, count: int) -> list[tuple[int, int]]:
    """Up to `count` full-resolution corners where the crop fits the original best in luma and colour
    together, best first, each `factor` px or more from the others: squared differences over the
    three channels of the reduced images, with the crop at several phases its corner can have
    against the original's boxes.

    A reduced pixel of the crop averages other pixels than the original's box under it unless the
    corner is a multiple of the factor: at a colour edge the crop's own place can then fit worse than
    a flat region of about its colour (a flat-art true crop, its corner 2 px off the boxes both ways,
    was lost that way). For each phase (px, py), every `PHASE_STEP` px, the crop's reduced pixels are
    resampled to boxes that start px, py into the crop (bilinear: about the boxes of the crop without
    its first px columns and py rows), and a match at the original's box (k, l) is the corner where
    that box starts, less (px, py): within a px of the crop's place when it is there. The caller
    searches each one's neighbourhood at full resolution.
    """
    factor = original.factor
    max_x, max_y = original.size[0] - crop.size[0], original.size[1] - crop.size[1]
    planes = [np.ascontiguousarray(original.ycrcb[:, :, channel]) for channel in range(3)]
    found = []  # (mean squared residual, x, y)
    for phase_y in range(0, factor, PHASE_STEP):
        for phase_x in range(0, factor, PHASE_STEP):
            size = ((crop.size[0] - phase_x) // factor, (crop.size[1] - phase_y) // factor)
            if min(size) < 1 or size[0] > planes[0].shape[1] or size[1] > planes[0].shape[0]:
                continue
            start_x, start_y = crop.reduced(phase_x, phase_y)  # where those boxes start in the crop's reduced px
            further = np.float32([[1, 0, start_x], [0, 1, start_y]])
            template = cv2.warpAffine(crop.ycrcb, further, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_REPLICATE)
            # Plane by plane: OpenCV's three-channel matchTemplate took three times as long as three of one.
            residual = sum(cv2.matchTemplate(plane, np.ascontiguousarray(template[:, :, channel]), cv2.TM_SQDIFF)
                           for channel, plane in enumerate(planes)) / template.size
            # Only boxes whose corner lies inside the original: a minimum past its edge would hide a true
            # corner beside it (a crop 1 px shorter than its original was lost that way).
            shift_x, shift_y = original.origin[0] + phase_x, original.origin[1] + phase_y
            first_x, first_y = -(-shift_x // factor), -(-shift_y // factor)
            inside = residual[first_y:(max_y + shift_y) // factor + 1, first_x:(max_x + shift_x) // factor + 1]
            for x, y in lowest_minima(inside, count, 1) if inside.size else []:
                corner = ((first_x + x) * factor - shift_x, (first_y + y) * factor - shift_y)
                found.append((float(inside[y, x]), *corner))
    places = []
    for _, x, y in sorted(found):
        if all(max(abs(x - kept_x), abs(y - kept_y)) >= factor for kept_x, kept_y in places):
            places.append((x, y))
            if len(places) == count:
                break
    return places

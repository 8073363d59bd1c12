"""Does the crop's colour agree with the original's where its luma fits? And where does it fit in colour?

Verification compares luma (`verify`), where JPEG keeps full resolution. A smooth crop fits
wherever the luma does: a patch of another picture's pale red fits a grey sky of the same
brightness, and a flat crop of one colour region fits every region of equal luma, whatever its
colour. Such answers are the ambiguous ones. For them both images are read again in colour,
reduced to a quarter of their size (cheap for a JPEG: `SCALE`), and the
crop's mean chroma over a grid of its regions is compared with the original's at the answer.
Where they disagree, the crop is sought again where luma and colour fit together
(`colour_places`), and verified there in luma at full resolution.

Chroma, not RGB: the crop's luma was verified already, and JPEG keeps chroma at half resolution
and coarser steps, which region means average out. Means over regions, compared at the answer's
exact fractional place in the reduced images (`region_means`), so the reduction costs no accuracy
on smooth crops, the only ones checked. Numpy and OpenCV only. Measurements: docs/verification.md.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .verify import lowest_minima

# Both images are read at a quarter of their size: a JPEG decodes there cheaply, by DCT scaling (a
# 12-megapixel one in about 25 ms, 2 MB, against 100 ms and 36 MB at full size). Not an eighth: libjpeg
# makes each pixel there from its block's coefficients alone, and a true crop's region means, on its own
# block grid, then differed from the original's by up to 6.4 chroma levels at colour edges (1.0 at a quarter).
SCALE = 1 / 4
MAX_REGIONS = 4  # per side of the crop's grid of regions
MIN_REGION_SIDE = 4  # reduced px a region keeps: fewer regions for a smaller crop


class ColourView(NamedTuple):
    """An image reduced, as YCrCb, and the full size it was reduced from."""

    ycrcb: np.ndarray  # (h, w, 3) float32: luma, red and blue chroma, 0-255
    size: tuple[int, int]  # (width, height) at full resolution

    @property
    def scales(self) -> tuple[float, float]:
        """Reduced px per full-resolution px, (x, y): each side was rounded on its own."""
        return self.ycrcb.shape[1] / self.size[0], self.ycrcb.shape[0] / self.size[1]


def colour_view(rgb: np.ndarray | None, size: tuple[int, int] | None = None, scale: float = 1.0) -> ColourView | None:
    """The `ColourView` of an RGB array (reduced by `scale` here when it is not already): None for a
    grey (2-D) array, which has no colour to compare. `size`: the full size the array was reduced
    from, when it was (a file read at a reduced size); else the array's own."""
    if rgb is None or rgb.ndim != 3:
        return None
    height, width = rgb.shape[:2]
    if size is None:
        size = (width, height)
        if scale < 1:
            reduced = (max(1, round(width * scale)), max(1, round(height * scale)))
            rgb = cv2.resize(np.ascontiguousarray(rgb), reduced, interpolation=cv2.INTER_AREA)
    return ColourView(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb).astype(np.float32), size)


def colour_gap(original: ColourView, crop: ColourView, top_left: tuple[int, int]) -> float:
    """The largest difference, in chroma levels, between the mean red or blue chroma of a region of the
    crop and of the original under it, with the crop at `top_left` (full-resolution px), over a grid
    of up to `MAX_REGIONS` x `MAX_REGIONS` regions of the crop. About 0 to 4 for true crops at any JPEG
    quality; a grid, not the whole crop, so that a part that differs is not averaged away."""
    width, height = crop.size
    crop_scale_x, crop_scale_y = crop.scales
    shorter = min(crop.ycrcb.shape[:2])
    count = int(np.clip(shorter // MIN_REGION_SIDE, 1, MAX_REGIONS))
    xs, ys = np.linspace(0, width, count + 1), np.linspace(0, height, count + 1)
    boxes = np.array([(x0, y0, x1, y1) for y0, y1 in zip(ys[:-1], ys[1:], strict=True)
                      for x0, x1 in zip(xs[:-1], xs[1:], strict=True)])
    crop_means = region_means(crop.ycrcb[:, :, 1:], boxes * ([crop_scale_x, crop_scale_y] * 2))
    scale_x, scale_y = original.scales
    placed = (boxes + [*top_left, *top_left]) * ([scale_x, scale_y] * 2)
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
    together, searched on the reduced images (squared differences over the three channels; each
    a reduced px or more from the others), best first. Off by up to a reduced px: the caller
    searches each one's neighbourhood at full resolution."""
    scale_x, scale_y = original.scales
    # The crop at the original's reduction (each was rounded to whole px on its own).
    size = (max(1, round(crop.size[0] * scale_x)), max(1, round(crop.size[1] * scale_y)))
    template = cv2.resize(crop.ycrcb, size, interpolation=cv2.INTER_AREA)
    if template.shape[0] > original.ycrcb.shape[0] or template.shape[1] > original.ycrcb.shape[1]:
        return []
    residual = cv2.matchTemplate(original.ycrcb, template, cv2.TM_SQDIFF)
    max_x, max_y = original.size[0] - crop.size[0], original.size[1] - crop.size[1]
    return [(min(max_x, round(x / scale_x)), min(max_y, round(y / scale_y)))
            for x, y in lowest_minima(residual, count, 1)]

"""Is the crop the original's pixels resampled? A test of scale for answers that verified.

Verification (verify.py) asks every tile of the crop to fit within JPEG noise and every
textured tile to fit best exactly at the offset. A resized crop of a weakly textured
region (a sky with a soft gradient, a blurred background, a wall) passes both: each tile
is off by a fraction of a pixel, which the little texture there cannot show. Over the whole
crop that drift adds up, though (shrunk by 10%, a crop is 10 px short of its source over
100 px), and a copy of the original resampled by the right scale explains the crop clearly
better than the original as it is.

So: both are blurred (JPEG noise is fine-grained, the drift is not), and the crop is compared
with the original around the answer, a few px of play, as it is and resampled about the
crop's centre at every scale in `SCALES`. A true crop fits best as it is; resampling gains it
no more than the play lets it fit noise. A crop over `MAX_SIDE` px is compared reduced by a
whole factor, its grid kept on the original's. Measurements: docs/verification.md.
OpenCV and numpy only, no torch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from .verify import VerifyConfig, box_mean, to_grey

# Scales of the original tried, about 1 (left out: within +-0.01 a resampled copy is the original, blurred).
# Between two steps a crop of `MAX_SIDE` px drifts by at most 0.005 x 128 = 0.6 px at its edges.
SCALES = tuple(percent / 100 for percent in range(80, 126) if abs(percent - 100) > 1)
MAX_SIDE = 128  # px of the crop's longer side compared; a larger crop is reduced to it (a whole factor)
BLUR_SIGMA = 1.5  # px, Gaussian blur of both before comparing
# px of the blurred crop's border left out: there the blur reads mostly what lies outside the crop (2 sigma;
# the kernel's tail, 5% of its weight, reaches 6 px).
EDGE = 3
PLAY = 6  # px (of the compared, perhaps reduced, images) around the expected place searched, at each scale
# px of the compared crop's shorter side (reduced, less EDGE on both sides) below which it is not tested: with
# fewer, the blur and the play leave too few independent pixels to tell a resampled original from noise fitted
# (a 12 x 12 px true crop, compared 6 x 6, fit one at share 0.24 in scripts/same_answers.py's tiny group).
MIN_COMPARED = 12


class ResampledFit(NamedTuple):
    """Mean squared residual (grey levels, both blurred) of the crop against the original around the answer."""

    as_is: float  # the original as it is
    resampled: float  # the original resampled by `scale`, the best of `SCALES`
    scale: float

    @property
    def share(self) -> float:
        """What resampling leaves of the residual: well over 0.5 for a true crop (measured down to 0.64)
        unless it is near flat, when the gain is tiny (see `looks_resampled`)."""
        return self.resampled / self.as_is if self.as_is > 0 else 1.0

    def looks_resampled(self, config: VerifyConfig) -> bool:
        """The resampled original fits clearly better: by `config.max_resampled_share` and by
        `config.min_resampled_gain` mean squared grey levels."""
        return (self.share <= config.max_resampled_share
                and self.as_is - self.resampled >= config.min_resampled_gain)


def resampled_fit(original: np.ndarray, crop: np.ndarray, top_left: tuple[int, int]) -> ResampledFit | None:
    """How well the crop fits the original at `top_left`, as it is and resampled (see the module's
    docstring); None for a crop too small to tell. Grey or RGB arrays of 8-bit levels (the bars are in them).

    Only the answer's place is tested: an ambiguous answer at a resized copy of the crop's region, where
    the crop's own place is elsewhere in the original, is turned down, its other places not tried (as the
    encoding test tries them). Hybrid's window answer so turned down is sought over the whole original.
    """
    height, width = crop.shape[:2]
    factor = max(1, math.ceil(max(height, width) / MAX_SIDE))
    if min(height, width) // factor - 2 * EDGE < MIN_COMPARED:
        return None
    x, y = top_left
    # Room for the crop's source at the smallest scale, and the play, in the original's px.
    margin = factor * (math.ceil((1 / SCALES[0] - 1) / 2 * max(height, width) / factor) + PLAY + EDGE)
    # The window starts a whole number of reduced px before the crop, so both reduce on one grid.
    left, top = x - factor * (min(x, margin) // factor), y - factor * (min(y, margin) // factor)
    window = reduced_and_blurred(original[top:y + height + margin, left:x + width + margin], factor)
    compared = reduced_and_blurred(crop, factor)[EDGE:-EDGE, EDGE:-EDGE]
    # Both less the crop's mean: matchTemplate's squared differences are sums of squares computed in float32,
    # large near grey level 128. Over 113 true crops of the development sets the best residual was off by up
    # to 0.004 that way, against 0.0004 with the mean taken out: little beside the gain's bar, but much in
    # the share where the residual as it is is near 0.
    level = float(compared.mean())
    window -= level
    compared -= level
    place = ((x - left) // factor + EDGE, (y - top) // factor + EDGE)
    as_is = best_near(window, compared, place, 1.0)
    if not math.isfinite(as_is):
        return None
    # The window is blurred before it is resampled: its blur scales with it (sigma 1.2-1.9 against the
    # crop's 1.5), which the bars were measured with.
    resampled, scale = min(
        (best_near(cv2.resize(window, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR), compared, place, s), s)
        for s in SCALES)
    return ResampledFit(as_is, resampled, scale)


def reduced_and_blurred(image: np.ndarray, factor: int) -> np.ndarray:
    """Luma reduced by a whole `factor` (`verify.box_mean`: an exact grid), blurred, float32."""
    grey = to_grey(image)
    if factor > 1:
        grey = box_mean(grey, (factor, factor))
    return cv2.GaussianBlur(grey.astype(np.float32, copy=False), (0, 0), BLUR_SIGMA)


def best_near(image: np.ndarray, crop: np.ndarray, place: tuple[int, int], scale: float) -> float:
    """Least mean squared residual of `crop` within `PLAY` px of where `place` (its top left corner in the
    window) lands in `image`, the window resampled by `scale`; inf where the crop does not fit there."""
    crop_h, crop_w = crop.shape
    x = round(scale * (place[0] + crop_w / 2) - crop_w / 2) - PLAY
    y = round(scale * (place[1] + crop_h / 2) - crop_h / 2) - PLAY
    # Cut by the image's edges (a crop at the original's border): fewer places, as many as fit.
    region = image[max(0, y):y + crop_h + 2 * PLAY + 1, max(0, x):x + crop_w + 2 * PLAY + 1]
    if region.shape[0] < crop_h or region.shape[1] < crop_w:
        return math.inf
    return float(cv2.matchTemplate(region, crop, cv2.TM_SQDIFF).min()) / crop.size

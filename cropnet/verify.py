"""Exact localization: is one image a region of the other at an integer offset, and where?

Pure functions on arrays (grey or RGB, any size); OpenCV and numpy only, no torch,
so `predict --method classic` starts and answers quickly.

How `locate(original, crop)` works (details and measurements: docs/verification.md):

1. Coarse search. Both images are shrunk by a power of two (at most 4) that leaves
   the crop at least `coarse_min_side` px, and `cv2.matchTemplate` with squared
   differences (TM_SQDIFF) scores every offset. The best `coarse_candidates`
   minima are kept, each a few px from the others: smooth ramps, straight edges
   and repeating patterns give many near-equal minima, and the true one is not
   always the lowest at a reduced scale. When nothing verifies and the crop's own
   place could have lost there (its offset off the coarse grid), every other phase
   of the crop against that grid is searched.
2. Refinement. Each candidate is followed down the scale pyramid, +-2 px at every
   level, by squared differences. Normalised correlation is not used: it slides
   along ramps and edges (an offset 1-30 px off still scores 0.98). Large crops
   are compared on a spread of their most textured tiles, which fixes the offset
   as well as the whole crop does, at a fraction of the cost. Before the last two
   levels, candidates verification would give up (too few tiles within noise) are
   dropped, all but the best. At full resolution the textured tiles together polish
   the offset over a 7 x 7 neighbourhood, unless it already fits best there.
3. Verification at full resolution, tile by tile. Every tile must fit within JPEG
   noise (compared after 4 x 4 averaging, where that noise is small), and each
   textured tile must fit strictly better at the offset than one pixel away. An
   average over the whole crop would let through a region that runs past the
   original's border, a flipped crop or a resized one, since most of such a crop
   can still fit; the per-tile tests require every part to fit.

When the offset barely beats its one-pixel neighbours (flat sky, a gradient, a
crop whose only structure is a horizon), or several distinct offsets verify (a
repeating pattern), the answer is `ambiguous`: the best offset found, not a proof
that it is the only one.

Colour is not compared here: matching works on luma, where JPEG keeps full resolution.
`predict` checks ambiguous answers in colour (`colour`) and against the two files' JPEG
encodings (`quantization`), which can also move a repeating pattern's answer to the repeat
the crop was cut from; a sure answer whose colours alone were edited is still a crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class VerifyConfig:
    """Search and decision parameters (chosen with `scripts/calibrate_verify.py`, see docs/verification.md)."""

    coarse_min_side: int = 24  # px the crop keeps at the coarse scale
    # ... reduced by at most this. Coarser, smooth photos left the minimum too broad (at 16); at 8, a finely
    # textured crop whose offset is not a multiple of 8 could lose its minimum to the half-pixel misalignment
    # of its coarse pixels (2 of 300 true crops of the training photos at 2,000 px; none at 4).
    coarse_max_factor: int = 4
    coarse_candidates: int = 16  # minima of the coarse search that are refined
    coarse_spacing: int = 3  # coarse px between two kept minima
    prune_factor: float = 4.0  # a minimum followed further must be within this times the best one's residual
    refine_candidates: int = 8  # ... and among this many best at its level
    refine_radius: int = 2  # px searched around the estimate at each finer level
    whole_crop_pixels: int = 160_000  # above this, refinement compares textured tiles only
    refine_tiles: int = 6  # ... one per cell of a refine_tiles x refine_tiles grid
    tile: int = 32  # verification tile side, px (16 for crops under 64 px)
    noise_floor: float = 25.0  # mean squared residual any tile may have after 4 x 4 averaging (JPEG noise)
    texture_gain: float = 0.5  # ... plus this share of its one-pixel-shift energy at that scale
    texture_floor: float = 100.0  # one-pixel-shift energy from which a tile must fit best exactly at the offset
    pin_margin: float = 2.0  # mean squared residual by which the offset must beat its neighbours, else ambiguous
    check_tiles: int = 400  # most textured tiles that settle the offset and test "fits best exactly here"
    min_agreement: float = 0.99  # share of tiles that must fit within noise for a crop
    min_best_here: float = 0.9  # share of textured tiles that must fit best exactly at the offset
    # Grey levels: the most the crop may be brighter or darker than the original at the offset, on average
    # over any of a 4 x 4 grid of regions (see `Evidence.region_bias`).
    max_region_bias: float = 3.0
    max_verified: int = 4  # candidates verified per image pair order
    give_up_share: float = 0.5  # a candidate where fewer tiles fit within noise is not polished (see `measure`)
    give_up_levels: int = 2  # ... nor refined to the last this many levels (see `search`)
    # ... in a hint's window: a true offset is found again by the full search that follows
    window_give_up_share: float = 0.9
    # Both images came from files that keep their pixels exactly (`images.ImageHeader.lossless`; a property
    # of the pair, set by the caller): an offset that passes must then also fit the whole crop within this
    # mean squared residual (RMS 3): a true crop differs by 0, or by a level or two where another decoder
    # made one of the files from a JPEG.
    lossless: bool = False
    exact_max_residual: float = 9.0
    # Grey levels (RMS) an ambiguous answer's files may lie apart (`quantization.EncodingTest`) where one of
    # them is a JPEG; applied by `predict.answer_encoding_gap`, which has the files' headers. Over it, a smooth
    # crop (`quantization.step_energy` up to `smooth_crop_energy`) is turned down; one with texture is
    # ambiguous as a repeating pattern, whose true place may be another repeat, where the gap is large (tiled
    # wallpapers of the training photos: step energy 29-1,660, gaps 0.2-4 at the repeat answered, 0 at the
    # true one): its answer moves to another place where it verifies and the files agree, if there is one.
    max_encoding_gap: float = 0.15
    smooth_crop_energy: float = 16.0
    # Chroma levels the crop's mean colour over any of its regions may differ from the original's under it,
    # for an ambiguous answer (`colour.colour_gap`; applied by `predict.answer_in_colour`).
    max_colour_gap: float = 8.0
    # A paired answer is turned down where the original resampled fits the crop clearly better than the
    # original as it is (`resampling.ResampledFit`; applied by `predict.predict_classic`): it leaves at most
    # this share of the residual, and less by at least `min_resampled_gain` mean squared grey levels (both
    # images blurred). The 1,206 true crops of the development and validation pair sets (docs/verification.md):
    # share 0.64 or more where the gain reached 0.2, 0.78 where it reached 0.3; under 0.5 only with a gain
    # of at most 0.05 (near-flat crops).
    max_resampled_share: float = 0.5
    min_resampled_gain: float = 0.3


@dataclass
class Match:
    """Where `crop` sits in `original`, and how sure that is."""

    found: bool  # the crop agrees with the original at `top_left`, tile by tile
    top_left: tuple[int, int] | None  # (x, y) in the original's pixels
    score: float  # share of the crop's tiles that agree at `top_left`, 0..1
    ambiguous: bool = False  # flat crop, or several offsets verify
    candidates: int = 0  # distinct offsets that verify (0 when not found)
    margin: float = 0.0  # lead of the offset over its best one-pixel neighbour (see `pin_margin`)
    searched: str = "full"  # "proposal" when the hint's window alone found it

    @classmethod
    def none(cls) -> Match:
        """A well-formed "no match" for inputs that cannot match (kornia's `_no_match`)."""
        return cls(False, None, 0.0)


@dataclass
class PairMatch:
    """The answer for a pair of images: which is the crop, where, and the evidence."""

    paired: bool
    swapped: bool | None  # the first image is the crop; None when not paired
    top_left: tuple[int, int] | None
    score: float  # verification score of the best order tried
    ambiguous: bool = False
    candidates: int = 0
    searched: str = "full"  # "proposal": found within the hint's window, the rest of the image unsearched


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W) luma of a grey or RGB array: uint8 stays uint8 (never copied when already grey), else float32.

    Matching keeps 8-bit pixels: cv2.matchTemplate and cv2.resize take them as they
    are, and a float copy of a 12-megapixel original would cost more time and
    memory than searching it. Arithmetic on pixel differences converts locally.
    """
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return image if image.dtype == np.uint8 else image.astype(np.float32, copy=False)


def same_depth(original: np.ndarray, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cv2.matchTemplate needs both images of one depth: uint8 when both are, else float32."""
    if original.dtype == crop.dtype:
        return original, crop
    return original.astype(np.float32, copy=False), crop.astype(np.float32, copy=False)


def match_pair(a: np.ndarray, b: np.ndarray, config: VerifyConfig = VerifyConfig(),
               prefer_swapped: bool | None = None, hint: tuple[int, int, int] | None = None,
               prepared: PreparedCrop | None = None) -> PairMatch:
    """Is `b` a crop of `a` or `a` a crop of `b`? Both orders a size allows are searched.

    Parameters
    ----------
    a, b : (H, W) or (H, W, 3) uint8 arrays.
    prefer_swapped : order to try first when both fit (equal sizes); None tries a-as-original first.
    hint : (x, y, radius) proposal for the crop's corner in the order tried first, searched
        before the whole image (see `locate`).
    prepared : a `PreparedCrop` of grey `a` or `b` (the very array passed), reused in the
        order where that image is the crop.

    Returns
    -------
    PairMatch. A crop is never larger than its original, so when only one order
    fits it decides `swapped`; equal sizes are an identity test at (0, 0).
    """
    a_grey, b_grey = to_grey(a), to_grey(b)
    orders = []  # (swapped, original, crop)
    if b_grey.shape[0] <= a_grey.shape[0] and b_grey.shape[1] <= a_grey.shape[1]:
        orders.append((False, a_grey, b_grey))
    if a_grey.shape[0] <= b_grey.shape[0] and a_grey.shape[1] <= b_grey.shape[1]:
        orders.append((True, b_grey, a_grey))
    if not orders:
        return PairMatch(False, None, None, 0.0)
    if a_grey.shape == b_grey.shape:
        orders = orders[:1]  # the same size: one identity test answers both orders
        if prefer_swapped:
            orders = [(True, b_grey, a_grey)]
    elif prefer_swapped is not None:
        orders.sort(key=lambda order: order[0] != prefer_swapped)
    best = None
    for index, (swapped, original, crop) in enumerate(orders):
        match = locate(original, crop, config, hint=hint if index == 0 else None, prepared=prepared)
        if match.found:
            return PairMatch(True, swapped, match.top_left, match.score, match.ambiguous, match.candidates,
                             match.searched)
        if best is None or match.score > best.score:
            best = match
    return PairMatch(False, None, None, best.score)


def locate(original: np.ndarray, crop: np.ndarray, config: VerifyConfig = VerifyConfig(),
           hint: tuple[int, int, int] | None = None, prepared: PreparedCrop | None = None) -> Match:
    """Find `crop` in `original` at an integer offset and verify it at full resolution.

    Parameters
    ----------
    original : (H, W) or (H, W, 3) array.
    crop : (h, w) or (h, w, 3) array with h <= H and w <= W.
    hint : optional (x, y, radius): search offsets within `radius` px of (x, y)
        first, and the whole original only if nothing there verifies.
    prepared : `PreparedCrop(crop)`, when the caller built it already (for instance
        while the original was still being decoded).

    Returns
    -------
    Match, with `found` False (and the best score seen) when no offset verifies.

    Notes
    -----
    Searches use `cv2.TM_SQDIFF`: a crop's pixels equal the original's up to JPEG
    noise, so the plain residual is the right measure, and unlike normalised
    correlation it has a sharp minimum on ramps and edges.

    >>> rng = np.random.default_rng(0)
    >>> image = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    >>> locate(image, image[30:80, 50:110]).top_left
    (50, 30)
    """
    original, crop = same_depth(to_grey(original), to_grey(crop))
    if crop.shape[0] > original.shape[0] or crop.shape[1] > original.shape[1]:
        raise ValueError("Image must be larger than template.")
    prepared = prepare(crop, config, prepared)  # what search and verification need from the crop, computed once
    tests = prepared.tests
    if crop.shape == original.shape:
        return verify_candidates(original, tests, [(0, 0, 0.0)], config)
    if hint is not None:
        match = locate_near(original, prepared, hint, config)
        if match.found:
            match.searched = "proposal"
            return match
    candidates, coarse_best = search(original, prepared, config)
    match = verify_candidates(original, tests, candidates, config)
    if not match.found and prepared.phase_spread() > coarse_best:
        # Off the coarse grid, the crop's own place could have scored worse than the best coarse minimum:
        # search again with the crop at every phase (see `search`).
        match = verify_candidates(original, tests, search(original, prepared, config, phased=True)[0], config)
    return match


def locate_near(original: np.ndarray, prepared: PreparedCrop, window: tuple[int, int, int],
                config: VerifyConfig = VerifyConfig()) -> Match:
    """`locate` within `window` (x, y, radius) alone: offsets within `radius` px of (x, y) are searched
    and verified, the rest of the original is not. `original`: grey, of the prepared crop's depth.

    Verification gives up on a candidate sooner than in a full search (`window_give_up_share`): after a
    hint's window, a true offset missed that way is found by the full search that follows; the colour
    check's windows (`predict.answer_in_colour`) come after their place itself was verified, and one
    that finds nothing leaves the next place to be tried."""
    share = config.window_give_up_share
    candidates, _ = search(original, prepared, config, window=window, give_up_share=share)
    return verify_candidates(original, prepared.tests, candidates, config, give_up_share=share)


# ---------------------------------------------------------------- search

def coarse_factor(crop_shape: tuple[int, int], config: VerifyConfig) -> int:
    """The largest power of two, up to `coarse_max_factor`, that leaves the crop's shorter side at least
    `coarse_min_side`."""
    factor = 1
    while min(crop_shape) // (factor * 2) >= config.coarse_min_side and factor < config.coarse_max_factor:
        factor *= 2
    return factor


def pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """[image, image / 2, image / 4, ...]: each level the 2 x 2 box mean of the one before."""
    scales = [image]
    for _ in range(levels):
        scales.append(half(scales[-1]))
    return scales


PHASE_SAMPLE = 256  # px: side of the crop's middle that `PreparedCrop.phase_spread` measures


class PreparedCrop:
    """What searching for a crop and verifying it need from the crop alone, computed once per crop:
    its scale pyramid, the tiles `refine` compares at each level, and verification's `CropTests`."""

    def __init__(self, crop: np.ndarray, config: VerifyConfig):
        self.crop = crop
        self.factor = coarse_factor(crop.shape, config)
        self.levels = self.factor.bit_length() - 1
        self.pyramid = pyramid(crop, self.levels)  # [crop, crop / 2, ...]
        halved = self.pyramid[1] if self.levels else None
        textures = [None, None]  # of verification's tiles, and of refinement's at half size
        if self.levels >= 2 and halved.size > config.whole_crop_pixels:
            # Both are measured on the crop at half size (see CropTests): its shifted differences once for both.
            textures = shift_energies(halved, (verification_tile(crop.shape, config) // 2, config.tile))
        self.tests = CropTests(crop, config, halved, textures[0])
        # Full resolution's tiles are ranked by the texture verification measured, when its tiles are the same.
        full_texture = self.tests.texture if self.tests.side == config.tile else None
        measured = {0: full_texture, 1: textures[1]}  # levels whose tiles' texture is known already
        self.comparison_tiles = [comparison_tiles(level_crop, config, measured.get(level))
                                 for level, level_crop in enumerate(self.pyramid[:self.levels])]  # not the coarsest
        self._phase_spread = None

    def phase_spread(self) -> float:
        """About the most the coarse search's mean squared residual at the crop's own place can be, over
        the phases its offset can have against the coarse grid: the residual between the crop's coarse
        pixels and those of the crop moved by 1 to factor - 1 px, at their best whole-pixel alignment,
        on the middle `PHASE_SAMPLE` px of the crop, JPEG noise aside (computed once; 0 when not reduced)."""
        if self._phase_spread is None:
            spread = 0.0
            if self.levels:
                height, width = self.crop.shape
                top, left = max(0, (height - PHASE_SAMPLE) // 2), max(0, (width - PHASE_SAMPLE) // 2)
                sample = self.crop[top:top + PHASE_SAMPLE, left:left + PHASE_SAMPLE]
                coarse = coarse_at_phase(sample, 0, 0, self.levels).astype(np.float32)
                for phase_x, phase_y in other_phases(self.factor):
                    moved = coarse_at_phase(sample, phase_x, phase_y, self.levels).astype(np.float32)
                    rows, cols = moved.shape[0] - 1, moved.shape[1] - 1
                    aligned = (coarse[dy:dy + rows, dx:dx + cols] - moved[:rows, :cols]
                               for dy in (0, 1) for dx in (0, 1))
                    spread = max(spread, min(float(np.mean(difference ** 2)) for difference in aligned))
            self._phase_spread = spread  # assigned once, whole
        return self._phase_spread


def prepare(crop: np.ndarray, config: VerifyConfig, prepared: PreparedCrop | None = None) -> PreparedCrop:
    """`prepared` where it was made of this very array (`crop`, grey), else the crop prepared now."""
    return prepared if prepared is not None and prepared.crop is crop else PreparedCrop(crop, config)


def search(original: np.ndarray, prepared: PreparedCrop, config: VerifyConfig,
           window: tuple[int, int, int] | None = None, give_up_share: float | None = None,
           phased: bool = False) -> tuple[list[tuple[int, int, float]], float]:
    """Candidate offsets (x, y, mean squared residual) at full resolution, best first, and the least
    mean squared residual of the coarse search.

    `phased` (for the full search, not a window): the candidates are the coarse minima of the crop at
    every other phase against the coarse grid (its first 0 to factor - 1 rows and columns left out),
    as the whole crop's full-resolution offsets, not refined. A coarse pixel of a crop whose offset is off that
    grid mixes other pixels than the original's does: on a fine repeating texture the true offset's
    coarse residual can then lose to repeats that fall on the grid, and no candidate is the crop's
    place (tiled wallpapers and ripples of the training photos). It costs factor² - 1 coarse
    searches: `locate` runs it only when nothing else verified and the crop's own place could have
    lost to the best minimum (`PreparedCrop.phase_spread`).

    Before each of the last `give_up_levels` refinements, candidates that verification would give
    up (`CropTests.plausible` on the coarser level they come from, at `give_up_share`, by default
    the config's) are dropped, all but the best: a pair that is not a crop leaves every candidate
    near-equal, and refining and measuring each at full resolution was most of the time such a
    pair took. The best one goes on whatever it scores there: it can be the crop's place several
    pixels off, which refinement and polish at full resolution still find (one true crop of 500
    training-photo pairs was lost without it).
    """
    if phased and window is not None:
        raise ValueError("a phased search is a search of the whole original")
    factor, levels, crops = prepared.factor, prepared.levels, prepared.pyramid
    originals = pyramid(original, levels)
    if phased:
        # The crop's own phase was searched, and its minima failed verification: the other phases' minima,
        # each an exact full-resolution offset when its phase is the crop's (the levels between would
        # misalign it again). Verification polishes them.
        candidates = prune(phase_candidates(original.shape, originals[-1], prepared, config),
                           config)[:config.refine_candidates]
        return candidates, min((cost for _, _, cost in candidates), default=np.inf)
    candidates = coarse_minima(originals[-1], crops[-1], factor, config, window)
    coarse_best = min((cost for _, _, cost in candidates), default=np.inf)
    for level in range(levels - 1, -1, -1):
        candidates = prune(candidates, config)[:config.refine_candidates]
        if level < config.give_up_levels and prepared.tests.smoothed.reaches(level + 1):  # they are at level + 1
            candidates = candidates[:1] + [(x, y, cost) for x, y, cost in candidates[1:] if prepared.tests.plausible(
                originals[level + 1], x, y, level + 1, give_up_share)]
        tiles = prepared.comparison_tiles[level]
        candidates = [refine(originals[level], crops[level].shape, tiles, 2 * x, 2 * y, config.refine_radius)
                      for x, y, _ in candidates]
    refined = {}
    for x, y, cost in candidates:
        refined[(x, y)] = min(cost, refined.get((x, y), np.inf))
    return sorted(((x, y, cost) for (x, y), cost in refined.items()), key=lambda c: c[2]), coarse_best


def coarse_minima(coarse_original: np.ndarray, coarse_crop: np.ndarray, factor: int, config: VerifyConfig,
                  window: tuple[int, int, int] | None = None) -> list[tuple[int, int, float]]:
    """The coarse search: the lowest minima of the crop's squared differences over every offset (in the
    `window` (x, y, radius) of full-resolution px, if given), as (x, y, mean squared residual) in
    coarse px; the residual is final when the coarse scale is the full one."""
    max_x = coarse_original.shape[1] - coarse_crop.shape[1]
    max_y = coarse_original.shape[0] - coarse_crop.shape[0]
    x0, y0, x1, y1 = 0, 0, max_x, max_y
    if window is not None:  # only offsets near the proposal, at the coarse scale
        x, y, radius = (value / factor for value in window)
        x0, x1 = int(np.clip(x - radius, 0, max_x)), int(np.clip(x + radius, 0, max_x))
        y0, y1 = int(np.clip(y - radius, 0, max_y)), int(np.clip(y + radius, 0, max_y))
    region = coarse_original[y0:y1 + coarse_crop.shape[0], x0:x1 + coarse_crop.shape[1]]
    residual = cv2.matchTemplate(region, coarse_crop, cv2.TM_SQDIFF)  # (y1 - y0 + 1, x1 - x0 + 1)
    starts = [(x0 + x, y0 + y) for x, y in lowest_minima(residual, config.coarse_candidates, config.coarse_spacing)]
    if window is not None:
        # A minimum on the window's edge (not the image's) is where the residual still falls outward: the
        # best offset lies beyond the window, and polishing what the window holds would only cost time.
        inner_x, inner_y = {x0, x1} - {0, max_x}, {y0, y1} - {0, max_y}
        starts = [(x, y) for x, y in starts if x not in inner_x and y not in inner_y]
    return [(x, y, residual[y - y0, x - x0] / coarse_crop.size) for x, y in starts]


def phase_candidates(original_shape: tuple[int, int], coarse_original: np.ndarray, prepared: PreparedCrop,
                     config: VerifyConfig) -> list[tuple[int, int, float]]:
    """Coarse minima of the crop at every other phase against the coarse grid (see `search`), as
    full-resolution offsets of the whole crop (inside the original of `original_shape`) and coarse
    mean squared residuals."""
    factor, crop = prepared.factor, prepared.crop
    # From the full-resolution sizes: the coarse ones, rounded down, can allow offsets past the border.
    max_y, max_x = np.subtract(original_shape, crop.shape)
    candidates = []
    for phase_x, phase_y in other_phases(factor):
        shifted = coarse_at_phase(crop, phase_x, phase_y, prepared.levels)
        residual = cv2.matchTemplate(coarse_original, shifted, cv2.TM_SQDIFF)
        for x, y in lowest_minima(residual, config.coarse_candidates, config.coarse_spacing):
            # The shifted crop starts at full-resolution x * factor, the whole crop phase_x px before that.
            whole_x = min(max_x, max(0, x * factor - phase_x))
            whole_y = min(max_y, max(0, y * factor - phase_y))
            candidates.append((int(whole_x), int(whole_y), residual[y, x] / shifted.size))
    return candidates


def other_phases(factor: int) -> list[tuple[int, int]]:
    """(x, y) phases 0 to factor - 1 of an offset against a grid of `factor` px, but (0, 0)."""
    return [(phase_x, phase_y) for phase_y in range(factor) for phase_x in range(factor) if phase_x or phase_y]


def coarse_at_phase(crop: np.ndarray, phase_x: int, phase_y: int, levels: int) -> np.ndarray:
    """The crop without its first `phase_y` rows and `phase_x` columns, reduced `levels` times by 2."""
    return pyramid(crop[phase_y:, phase_x:], levels)[-1]


def prune(candidates: list[tuple[int, int, float]], config: VerifyConfig) -> list[tuple[int, int, float]]:
    """The candidates whose residual is within `prune_factor` times the best one's (plus JPEG noise).

    Following every coarse minimum down to full resolution cost most of a search's
    time. At a reduced scale the true offset is off by up to half a pixel, which
    adds texture to its residual, so the bar is generous; near-equal minima (flat
    photos, repeating patterns) all stay, and verification sees them.
    """
    candidates = sorted(candidates, key=lambda c: c[2])
    best = candidates[0][2] if candidates else 0.0
    return [c for c in candidates if c[2] <= config.prune_factor * best + config.noise_floor]


def lowest_minima(residual: np.ndarray, count: int, spacing: int) -> list[tuple[int, int]]:
    """Up to `count` (x, y) minima of `residual`, each at least `spacing` px from the ones before."""
    residual = residual.copy()
    minima = []
    for _ in range(count):
        index = int(np.argmin(residual))
        y, x = divmod(index, residual.shape[1])
        if not np.isfinite(residual[y, x]):
            break
        minima.append((x, y))
        residual[max(0, y - spacing):y + spacing + 1, max(0, x - spacing):x + spacing + 1] = np.inf
    return minima


def comparison_tiles(crop: np.ndarray, config: VerifyConfig,
                     texture: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What `refine` compares: the whole crop while small, else the most textured tile of each
    cell of a refine_tiles x refine_tiles grid. Returns their (n, 2) x, y in the crop and their
    pixels, (1, h, w) as they are for the whole crop, (n, tile, tile) float32 for tiles. `texture`
    is `least_shift_energy(crop, config.tile)` when the caller has it."""
    if crop.size <= config.whole_crop_pixels or min(crop.shape) < config.tile:
        return np.zeros((1, 2), dtype=int), crop[None]
    side = config.tile
    if texture is None:
        texture = least_shift_energy(crop, side)  # (rows, cols) of tiles
    rows = np.array_split(np.arange(texture.shape[0]), min(config.refine_tiles, texture.shape[0]))
    cols = np.array_split(np.arange(texture.shape[1]), min(config.refine_tiles, texture.shape[1]))
    tiles = []
    for row_group in rows:
        for col_group in cols:
            cell = texture[np.ix_(row_group, col_group)]
            r, c = np.unravel_index(int(np.argmax(cell)), cell.shape)
            ty = min(int(row_group[r]) * side, crop.shape[0] - side)
            tx = min(int(col_group[c]) * side, crop.shape[1] - side)
            tiles.append((tx, ty))
    corners = np.array(tiles)
    return corners, sliding_window_view(crop, (side, side))[corners[:, 1], corners[:, 0]].astype(np.float32)


def refine(original: np.ndarray, crop_shape: tuple[int, int], tiles: tuple[np.ndarray, np.ndarray],
           x: int, y: int, radius: int) -> tuple[int, int, float]:
    """The offset within `radius` px of (x, y) with the least mean squared residual over `tiles`
    (from `comparison_tiles`), and that residual. Offsets keep the whole crop inside the original."""
    height, width = crop_shape
    x0, x1 = max(0, x - radius), min(original.shape[1] - width, x + radius)
    y0, y1 = max(0, y - radius), min(original.shape[0] - height, y + radius)
    corners, pixels = tiles
    if len(corners) == 1:  # the whole crop: one large matchTemplate call
        window = original[y0:y1 + height, x0:x1 + width]
        residual = cv2.matchTemplate(window, pixels[0], cv2.TM_SQDIFF)  # (y1 - y0 + 1, x1 - x0 + 1)
    else:
        residual = tile_residuals(original, pixels, corners + (x0, y0), (y1 - y0 + 1, x1 - x0 + 1)).sum(axis=0)
    best_y, best_x = np.unravel_index(int(np.argmin(residual)), residual.shape)
    return x0 + int(best_x), y0 + int(best_y), float(residual[best_y, best_x]) / pixels.size


# ---------------------------------------------------------------- verification

def tile_starts(length: int, side: int) -> np.ndarray:
    """Tile starts along one axis; a remainder under half a tile joins the last tile."""
    starts = np.arange(0, length, side)
    if len(starts) > 1 and length - starts[-1] < side // 2:
        starts = starts[:-1]
    return starts


def tile_means(values: np.ndarray, side: int | tuple[int, int]) -> np.ndarray:
    """Mean of `values` over each side x side (or (height, width)) tile: (h, w) -> (rows, cols)."""
    side_y, side_x = (side, side) if isinstance(side, int) else side
    rows, cols = tile_starts(values.shape[0], side_y), tile_starts(values.shape[1], side_x)
    sums = tile_sums_down(tile_sums_down(values, len(rows), side_y).T, len(cols), side_x).T  # (rows, cols)
    heights = np.diff(np.append(rows, values.shape[0]))
    widths = np.diff(np.append(cols, values.shape[1]))
    return sums / np.outer(heights, widths)


def tile_sums_down(values: np.ndarray, count: int, side: int) -> np.ndarray:
    """Sums of `values` over `count` bands of rows, each `side` rows but the last, which runs to the end.

    A reshape and a sum, not np.add.reduceat: several times faster on the large
    arrays a full-resolution crop gives.
    """
    full = count - 1
    head = values[:full * side].reshape(full, side, *values.shape[1:]).sum(axis=1)  # (full, ...)
    return np.concatenate([head, values[full * side:].sum(axis=0, keepdims=True)])


def least_shift_energy(image: np.ndarray, side: int | tuple[int, int]) -> np.ndarray:
    """Per tile, the mean squared change of its pixels under a one-pixel shift, in the direction
    (across, down, either diagonal) where that change is least.

    This is what the tile's residual would grow by if the offset were one pixel
    off in the direction the tile constrains least: near zero for flat areas and
    straight edges, large for texture. The last row and column are edge-padded.
    """
    return shift_energies(image, (side,))[0]


def shift_energies(image: np.ndarray, sides: tuple) -> list[np.ndarray]:
    """`least_shift_energy` of one image for each tile side of `sides`, its shifted differences taken once."""
    # A row below and a column each side, repeating the edge (cv2's copy is much faster than np.pad).
    padded = cv2.copyMakeBorder(image.astype(np.float32, copy=False), 0, 1, 1, 1, cv2.BORDER_REPLICATE)
    centre = padded[:-1, 1:-1]
    neighbours = (padded[:-1, 2:], padded[1:, 1:-1], padded[1:, 2:], padded[1:, :-2])  # right, down, diagonals
    change = np.empty_like(centre)  # one buffer for the four shifts: this runs on every full-resolution crop
    energies = [[] for _ in sides]
    for neighbour in neighbours:
        np.subtract(neighbour, centre, out=change)
        np.square(change, out=change)
        for per_side, side in zip(energies, sides, strict=True):
            per_side.append(tile_means(change, side))
    return [np.min(per_side, axis=0) for per_side in energies]


def tile_energy(image: np.ndarray, tiles: list[tuple[int, int]], side: int) -> np.ndarray:
    """`least_shift_energy(image, side)` of a few tiles only, given by their (x, y) in `tile_grid`: (n,).

    Tiles are measured together, as windows of one size: the regular ones at
    `side`, and the longer ones of the last row and column (a remainder under half
    a tile joins them) at the longest a tile can be, with what lies past each one's
    own extent masked out.
    """
    if not tiles:
        return np.zeros(0)
    height, width = image.shape
    span = side + side // 2  # the longest a tile can be
    # Edges repeated as least_shift_energy does, with room for every window.
    padded = cv2.copyMakeBorder(image, 0, span + 1, 1, span + 1, cv2.BORDER_REPLICATE)
    xs, ys = np.array(tiles).T
    heights = np.where(ys == tile_starts(height, side)[-1], height - ys, side)  # the last row and column of
    widths = np.where(xs == tile_starts(width, side)[-1], width - xs, side)  # tiles run to the image's edge
    regular = (heights == side) & (widths == side)
    energy = np.empty(len(tiles))
    for chosen, extent in ((regular, side), (~regular, span)):
        if chosen.any():
            energy[chosen] = window_energy(padded, xs[chosen], ys[chosen], heights[chosen], widths[chosen], extent)
    return energy


def window_energy(padded: np.ndarray, xs: np.ndarray, ys: np.ndarray, heights: np.ndarray, widths: np.ndarray,
                  extent: int) -> np.ndarray:
    """`tile_energy` for tiles that fit an extent x extent window; `padded` as tile_energy pads the image."""
    # (n, extent + 1, extent + 2) from (ys, xs) of padded, whose column 0 is the image's column -1: fancy indexing
    # of the sliding-window view gathers them in one copy.
    windows = sliding_window_view(padded, (extent + 1, extent + 2))[ys, xs].astype(np.float32)
    centre = windows[:, :-1, 1:-1]  # (n, extent, extent), as are its four neighbours below
    inside = ((np.arange(extent)[None, :, None] < heights[:, None, None])
              & (np.arange(extent)[None, None, :] < widths[:, None, None]))
    energies = []
    for neighbour in (windows[:, :-1, 2:], windows[:, 1:, 1:-1], windows[:, 1:, 2:], windows[:, 1:, :-2]):
        change = neighbour - centre
        if not inside.all():
            change *= inside
        energies.append(np.einsum("nij,nij->n", change, change))
    return np.min(energies, axis=0) / (heights * widths)


def half(image: np.ndarray) -> np.ndarray:
    """The image at half size, each pixel the mean of a 2 x 2 block (as `pyramid` makes it)."""
    return box_mean(image, (2, 2))


def box_mean(image: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """The image reduced by whole (y, x) factors, each pixel the mean of its block.

    The last rows and columns that do not fill a whole block are left out: with an
    exact factor cv2's INTER_AREA takes its fast path, about 40 times faster than
    the fractional one on an odd-sized 12-megapixel image, and every reduced pixel
    stands for the same full-resolution pixels in the crop and in the original.
    """
    rows, cols = max(1, image.shape[0] // factors[0]), max(1, image.shape[1] // factors[1])
    whole = image[:rows * factors[0], :cols * factors[1]]
    return cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_AREA)


def block_means(image: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """`box_mean` of `image`, float32 and exact: each pixel the mean of its (y, x) block, the
    fraction kept (box_mean rounds an 8-bit image's means to whole grey levels).

    An 8-bit image is summed into 16-bit rows, then into float32 blocks: no float copy of the
    whole image is made. The smoothed test takes these means of the full-resolution crop and of
    the original under it at every offset it checks; a float copy of a large crop's region (40 MB
    for 10 megapixels) was made each time, and took four times as long (docs/speed.md, 19).
    """
    factor_y, factor_x = factors
    if image.dtype != np.uint8 or image.shape[0] < factor_y or image.shape[1] < factor_x:
        return box_mean(image.astype(np.float32, copy=False), factors)
    assert factor_y <= 257, "16-bit row sums hold up to 257 rows of 255"
    rows, cols = image.shape[0] // factor_y, image.shape[1] // factor_x
    whole = image[:rows * factor_y, :cols * factor_x]
    row_sums = whole[0::factor_y].astype(np.uint16)  # (rows, width): at most 255 x factor_y
    for offset in range(1, factor_y):
        row_sums += whole[offset::factor_y]
    sums = row_sums[:, 0::factor_x].astype(np.float32)
    for offset in range(1, factor_x):
        sums += row_sums[:, offset::factor_x]
    return sums * np.float32(1 / (factor_y * factor_x))


def verification_tile(crop_shape: tuple[int, int], config: VerifyConfig) -> int:
    """Tile side for a crop: smaller tiles for small crops, so that each still has several."""
    return config.tile if min(crop_shape) >= 2 * config.tile else config.tile // 2


def tile_grid(crop_shape: tuple[int, int], side: int, indices: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(x, y) of each tile's top-left corner, row by row, in the order `tile_means` reports tiles;
    only those at `indices` of that order when given (a large crop has thousands of tiles)."""
    rows, cols = tile_starts(crop_shape[0], side), tile_starts(crop_shape[1], side)
    if indices is None:
        indices = np.arange(len(rows) * len(cols))
    row, col = np.divmod(np.asarray(indices, dtype=int), len(cols))
    return list(zip(cols[col].tolist(), rows[row].tolist(), strict=True))


def neighbour_residuals(original: np.ndarray, crop: np.ndarray, x: int, y: int, tiles: list[tuple[int, int]],
                        side: int, radius: int = 1) -> np.ndarray:
    """(n, 2r+1, 2r+1) mean squared residual of each tile at offsets within `radius` px of (x, y).

    The centre [:, r, r] is (x, y) itself; offsets that would leave the original are +inf.
    """
    size = 2 * radius + 1
    maps = np.full((len(tiles), size, size), np.inf)
    pixels = np.empty(len(tiles))
    height, width = original.shape
    one_by_one = range(len(tiles))
    if radius == 1 and tiles:
        # matchTemplate costs about 40 us a call whatever the window; shifted differences cost per offset.
        # For a 3 x 3 neighbourhood, whole side x side tiles well inside the original go in one batch.
        in_crop = np.array(tiles)  # (n, 2) x, y
        xs, ys = (in_crop + (x - radius, y - radius)).T  # each window's corner in the original
        whole = ((xs >= 0) & (ys >= 0) & (xs + side + 2 * radius <= width) & (ys + side + 2 * radius <= height)
                 & (in_crop + side <= crop.shape[::-1]).all(axis=1))
        batch = np.flatnonzero(whole)
        if len(batch):
            corners = in_crop[batch]
            tile_pixels = sliding_window_view(crop, (side, side))[corners[:, 1], corners[:, 0]].astype(np.float32)
            maps[batch] = tile_residuals(original, tile_pixels, corners + (x - radius, y - radius), (size, size))
            pixels[batch] = side * side
        one_by_one = np.flatnonzero(~whole)
    for index in one_by_one:  # this loop is verification's hot spot: keep its body lean
        tx, ty = tiles[index]
        tile = crop[ty:ty + side, tx:tx + side]
        pixels[index] = tile.size
        left, top = x + tx - radius, y + ty - radius  # the window's corner in the original
        bottom, right = top + tile.shape[0] + 2 * radius, left + tile.shape[1] + 2 * radius
        if left >= 0 and top >= 0 and right <= width and bottom <= height:
            maps[index] = cv2.matchTemplate(original[top:bottom, left:right], tile, cv2.TM_SQDIFF)
            continue
        x0, y0 = max(0, left), max(0, top)  # near a border: offsets that leave the original stay +inf
        found = cv2.matchTemplate(original[y0:min(height, bottom), x0:min(width, right)], tile, cv2.TM_SQDIFF)
        maps[index, y0 - top:y0 - top + found.shape[0], x0 - left:x0 - left + found.shape[1]] = found
    return maps / pixels[:, None, None]  # mean per pixel


def tile_residuals(original: np.ndarray, pixels: np.ndarray, corners: np.ndarray, span: tuple[int, int],
                   ) -> np.ndarray:
    """(n, rows, cols) summed squared residual of n same-size tiles ((n, h, w) float32 `pixels`) over
    windows of the original, each tile's window starting at its (x, y) of `corners` and spanning
    `span` (rows, cols) offsets, every window inside the original.

    What cv2.matchTemplate(window, tile, TM_SQDIFF) gives tile by tile (up to its rounding), for
    all tiles at once: a call costs about 40 us whatever its size, so for a few offsets of many
    small tiles, shifted differences of the whole batch are two to three times faster.
    """
    rows, cols = span
    height, width = pixels.shape[1:]
    # Fancy indexing of the sliding-window view gathers every window in one copy.
    windows = sliding_window_view(original, (height + rows - 1, width + cols - 1))[corners[:, 1], corners[:, 0]]
    windows = windows.astype(np.float32)
    sums = np.empty((len(pixels), rows, cols))
    for dy in range(rows):
        for dx in range(cols):
            difference = windows[:, dy:dy + height, dx:dx + width] - pixels
            sums[:, dy, dx] = np.einsum("nij,nij->n", difference, difference)
    return sums


def polish(original: np.ndarray, crop: np.ndarray, x: int, y: int, tiles: list[tuple[int, int]], side: int,
           radius: int = 3, steps: int = 4) -> tuple[int, int]:
    """Move (x, y) to the best offset within `radius` px, by the textured tiles' summed residual, until it stays.

    The coarse-to-fine search can end a few pixels off on smooth photos, where
    a few tiles of JPEG block edges weigh as much as the scene, and the residual's
    valley can run diagonally; all textured tiles together at full resolution,
    over a 7 x 7 neighbourhood, settle it. Any gain moves it, even on a crop too flat
    to pin down: requiring a gain over the pin margin there (tried, to save the steps)
    left such true crops a pixel off, where they failed verification (5 of 527 held-out
    true crops answered "not a crop" instead of "a crop, ambiguous"). Returns the offset
    where it stayed, or where its steps ran out.
    """
    if not tiles:
        return x, y
    max_x, max_y = original.shape[1] - crop.shape[1], original.shape[0] - crop.shape[0]
    for _ in range(steps):
        dx, dy = best_move(neighbour_residuals(original, crop, x, y, tiles, side, radius), x, y, max_x, max_y)
        if (dx, dy) == (0, 0):
            break
        x, y = x + dx, y + dy
    return x, y


def best_move(maps: np.ndarray, x: int, y: int, max_x: int, max_y: int) -> tuple[int, int]:
    """(dx, dy) to the least summed residual of (n, 2r+1, 2r+1) `maps` around (x, y); moves that
    would push the crop out of the original (offsets past max_x, max_y) are barred. Of equal
    residuals (a flat crop fits everywhere alike) the shortest move: an equal fit is no reason to move."""
    radius = maps.shape[1] // 2
    total = maps.sum(axis=0)
    offsets = np.arange(-radius, radius + 1)
    total[(y + offsets < 0) | (y + offsets > max_y), :] = np.inf
    total[:, (x + offsets < 0) | (x + offsets > max_x)] = np.inf
    rows, columns = np.nonzero(total <= total.min())
    shortest = np.argmin(np.maximum(np.abs(rows - radius), np.abs(columns - radius)))
    return int(columns[shortest]) - radius, int(rows[shortest]) - radius


SPREAD_CELLS = 10  # tiles are chosen from every cell of a SPREAD_CELLS x SPREAD_CELLS grid of the crop


def spread_tiles(texture: np.ndarray, grid_shape: tuple[int, int], count: int, cells: int = SPREAD_CELLS
                 ) -> np.ndarray:
    """Indices of up to `count` tiles: the most textured ones of each cell of a cells x cells grid,
    so that one busy corner of the crop does not stand for all of it."""
    rows, cols = np.divmod(np.arange(texture.size), grid_shape[1])
    cell = (rows * cells // grid_shape[0]) * cells + cols * cells // grid_shape[1]
    order = np.lexsort((-texture, cell))  # by cell, most textured first within each
    rank = np.arange(texture.size) - np.searchsorted(cell[order], cell[order])  # 0, 1, ... within a cell
    per_cell = max(1, count // cells ** 2)
    return order[rank < per_cell]


class SmoothedCrop:
    """The crop as the "within noise" test sees it: reduced by a box filter, tile by tile.

    JPEG noise is mostly fine detail: two encodings of grainy texture at quality
    25 differ by a mean squared residual of 100-200 grey levels at full resolution,
    as much as some real mismatches. Averaged over 4 x 4 blocks it shrinks to a
    few grey levels, while a different scene, a flip, a region past the border or
    a brightness change still differs by the whole picture.
    """

    def __init__(self, crop: np.ndarray, side: int):
        # Each axis reduced by 4 where the crop is long enough (2, or 1, for thin crops).
        factors = [4 if length >= 32 else 2 if length >= 16 else 1 for length in crop.shape]  # (y, x)
        # Less averaging keeps more JPEG noise: a larger floor, 4 / sqrt(pixels averaged). Scaling by
        # the full pixel count let 8-16 px negatives through on small synthetic pairs; no scaling
        # rejected thin true crops (tests/test_verify.py, tests/test_cli.py).
        self.noise_scale = 4 / float(np.sqrt(factors[0] * factors[1]))
        self.side = (max(2, side // factors[0]), max(2, side // factors[1]))
        self.shape, self.factors = crop.shape, tuple(factors)
        self.crop = block_means(crop, self.factors)
        texture = least_shift_energy(self.crop, self.side)  # (rows, cols) of tiles
        self.grid = texture.shape
        self.texture = texture.ravel()  # (tiles,)

    def reaches(self, level: int) -> bool:
        """Whether `residual` can read the pyramid's `level`: its blocks are whole pixels there."""
        return all(factor % 2 ** level == 0 for factor in self.factors)

    def residual(self, original: np.ndarray, x: int, y: int, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(tiles,) mean squared residual against the original at (x, y), at the reduced scale, and
        (tiles,) mean signed difference (crop minus original).

        `original` may be the pyramid's `level` (see `reaches`), (x, y) then in its pixels: its
        pixels are means of 2**level-px blocks, so the same blocks come out of a fraction of the
        pixels (up to the rounding of its 8-bit pixels).
        """
        step = 2 ** level
        region = original[y:y + self.shape[0] // step, x:x + self.shape[1] // step]
        difference = self.crop - block_means(region, (self.factors[0] // step, self.factors[1] // step))
        return tile_means(difference ** 2, self.side).ravel(), tile_means(difference, self.side).ravel()


class CropTests:
    """What verifying any offset needs from the crop, computed once per crop: the tile grid,
    each tile's texture, the tiles checked at full resolution and the smoothed crop."""

    def __init__(self, crop: np.ndarray, config: VerifyConfig, halved: np.ndarray | None = None,
                 texture: np.ndarray | None = None):
        """`halved` is `half(crop)` when the caller has it (the pyramid's second level); `texture` is
        the tiles' texture as measured below, when the caller measured it."""
        self.crop, self.config = crop, config
        self.side = verification_tile(crop.shape, config)
        # (rows, cols): what a one-pixel error costs each tile. On a large crop, measured on the crop
        # at half size (the same tile grid, a quarter of the pixels), which ranks tiles just as well;
        # the tiles chosen are then measured exactly.
        half_size = crop.size > config.whole_crop_pixels
        if texture is not None:
            self.texture = texture
        elif half_size:
            self.texture = least_shift_energy(half(crop) if halved is None else halved, self.side // 2)
        else:
            self.texture = least_shift_energy(crop, self.side)
        # The most textured tiles of every part of the crop settle the offset at full resolution (even
        # below the floor, on a smooth photo); those above the floor must each fit best exactly at it.
        chosen = spread_tiles(self.texture.ravel(), self.texture.shape, config.check_tiles)
        self.check = tile_grid(crop.shape, self.side, chosen)
        # Polish walks on the most textured tile of each cell alone, a quarter of the cost per step.
        walk = np.isin(chosen, spread_tiles(self.texture.ravel(), self.texture.shape, SPREAD_CELLS ** 2))
        self.walk = [tile for tile, walks in zip(self.check, walk, strict=True) if walks]
        self.check_texture = (tile_energy(crop, self.check, self.side) if half_size
                              else self.texture.ravel()[chosen])
        self.smoothed = SmoothedCrop(crop, self.side)

    def fit_enough(self, residual: np.ndarray, give_up_share: float | None = None) -> bool:
        """Whether at least `give_up_share` (by default the config's) of the tiles fit within noise."""
        config = self.config
        fits = within_noise(residual, self.smoothed.texture, self.smoothed.noise_scale, config.noise_floor,
                            config.texture_gain)
        return fits.mean() >= (config.give_up_share if give_up_share is None else give_up_share)

    def plausible(self, original: np.ndarray, x: int, y: int, level: int = 0,
                  give_up_share: float | None = None) -> bool:
        """Whether `measure` would go on at (x, y) rather than give up, judged on the pyramid's `level`
        of the original (x, y in its pixels; `SmoothedCrop.reaches` must allow it)."""
        return self.fit_enough(self.smoothed.residual(original, x, y, level)[0], give_up_share)

    def measure(self, original: np.ndarray, x: int, y: int, give_up_share: float | None = None,
                polish_offset: bool = True) -> Evidence:
        """Polish (x, y) at full resolution and gather both tests' per-tile evidence there (without
        `polish_offset`, at (x, y) itself).

        A candidate where fewer than `give_up_share` (by default the config's) of the
        tiles fit within noise is given up before polishing, the costly part: the
        smoothed test forgives an offset a pixel or two off (that is what its texture
        allowance is for), and the search leaves a true offset about that close, so
        such a candidate (a flipped crop's best guess, say) is not the crop's place.
        On 500 pairs from the training photos a share of 0.5 gave up no true crop
        and 0.9 gave up one; the strict share is for a hint's window only.
        """
        residual, bias = self.smoothed.residual(original, x, y)
        if not self.fit_enough(residual, give_up_share):
            return self.evidence(x, y, np.full((len(self.check), 3, 3), np.inf), residual, bias)  # none fits best
        # A 3 x 3 look first, a third of the cost of polish's 7 x 7 one (see neighbour_residuals): an offset
        # that no one-pixel neighbour beats and that passes every test there is the search's exact answer,
        # as it is for most true crops. Stopping at any such local minimum (tried) left two thin, smooth
        # true crops of 500 training-photo pairs 3 px off, where they failed verification.
        maps = neighbour_residuals(original, self.crop, x, y, self.check, self.side)
        evidence = self.evidence(x, y, maps, residual, bias)
        if not polish_offset:
            return evidence
        max_x, max_y = original.shape[1] - self.crop.shape[1], original.shape[0] - self.crop.shape[0]
        if best_move(maps, x, y, max_x, max_y) == (0, 0) and evidence.passes(self.config)[0]:
            return evidence
        moved = polish(original, self.crop, x, y, self.walk, self.side)
        maps = neighbour_residuals(original, self.crop, *moved, self.check, self.side)
        if moved != (x, y):
            residual, bias = self.smoothed.residual(original, *moved)
        return self.evidence(*moved, maps, residual, bias)

    def evidence(self, x: int, y: int, maps: np.ndarray, residual: np.ndarray, bias: np.ndarray) -> Evidence:
        """The evidence at (x, y), from the checked tiles' (n, 3, 3) maps and the smoothed residual and bias."""
        flat = maps.reshape(len(self.check), 9)
        best_here = flat[:, 4] < np.delete(flat, 4, axis=1).min(axis=1)  # the centre is the offset itself
        return Evidence(x, y, maps, residual, best_here, self.smoothed.texture, self.smoothed.noise_scale,
                        self.check_texture, bias.reshape(self.smoothed.grid))


def within_noise(residual: np.ndarray, texture: np.ndarray, noise_scale: float, noise_floor: float,
                 texture_gain: float) -> np.ndarray:
    """(tiles,) whether each tile's smoothed residual is within JPEG noise plus a share of its own texture."""
    return residual <= noise_floor * noise_scale + texture_gain * texture


@dataclass
class Evidence:
    """The two tests' per-tile evidence at one polished offset, and the crop's share of it (not copied)."""

    x: int
    y: int
    maps: np.ndarray  # (n, 3, 3) mean squared residual of each checked tile around the offset
    residual: np.ndarray  # (tiles,) smoothed residual of every tile
    best_here: np.ndarray  # (n,) each checked tile fits strictly best at the offset
    texture: np.ndarray  # (tiles,) smoothed texture of every tile
    noise_scale: float  # SmoothedCrop.noise_scale
    check_texture: np.ndarray  # (n,) full-resolution texture of each checked tile
    bias: np.ndarray  # (rows, cols) smoothed mean signed difference (crop minus original) of every tile

    def region_bias(self, regions: int = 4) -> float:
        """The largest mean signed difference over a regions x regions grid of the crop, in grey levels.

        Every tile of a resized crop of a gradient, or of a crop slid along a ramp
        past the border, can fit within JPEG noise while one part of the crop stays
        brighter than the original and another darker. JPEG moves the mean of
        a region of a true crop little: at most 2.07 grey levels over 600 true
        crops of the training photos, median 0.2 (docs/verification.md has the
        command). A region of a tiny crop is a single 16 px tile, four JPEG blocks.
        """
        rows = np.array_split(np.arange(self.bias.shape[0]), min(regions, self.bias.shape[0]))
        cols = np.array_split(np.arange(self.bias.shape[1]), min(regions, self.bias.shape[1]))
        return max(abs(float(self.bias[np.ix_(r, c)].mean())) for r in rows for c in cols)

    def passes(self, config: VerifyConfig) -> tuple[bool, float]:
        """Whether the offset verifies (every test, at `config`'s thresholds), and its score: the
        smaller of the two shares `scores` gives."""
        within_noise, best_here = self.scores(config.noise_floor, config.texture_gain, config.texture_floor)
        passed = (within_noise >= config.min_agreement and best_here >= config.min_best_here
                  and self.region_bias() <= config.max_region_bias)
        return passed, min(within_noise, best_here)

    def scores(self, noise_floor: float, texture_gain: float, texture_floor: float) -> tuple[float, float]:
        """(share of tiles within noise, share of textured tiles that fit best exactly at the offset)."""
        fits = within_noise(self.residual, self.texture, self.noise_scale, noise_floor, texture_gain).mean()
        decisive = self.check_texture >= texture_floor
        best_here = float(self.best_here[decisive].mean()) if decisive.any() else 1.0
        return float(fits), best_here


def verify_candidates(original: np.ndarray, tests: CropTests, candidates: list[tuple[int, int, float]],
                      config: VerifyConfig, give_up_share: float | None = None) -> Match:
    """Verify candidates, best first, tile by tile at full resolution.

    Two tests per tile. Every tile's residual, averaged over 4 x 4 blocks, must
    stay within JPEG noise plus a share of its own texture (a tile of a different
    scene, a flipped one or one past the border fails it). Each textured tile must
    also fit best exactly at the offset, not one pixel away (a resized crop drifts
    by a fraction of a pixel per tile and fails it; JPEG noise lets a few true tiles
    fail, hence its lower bar). The score is the smaller of the two pass rates.
    And no region of the crop may be brighter or darker than the original there
    beyond what JPEG does to a region's mean (`Evidence.region_bias`).

    The first candidate that passes is the answer. Later candidates with a residual
    near its own are verified too: each that also passes at a distinct offset makes
    the answer ambiguous. When the answer barely beats its one-pixel neighbours
    (too flat to pin down, ambiguous whatever else fits), they are not: `candidates`
    is then 1.

    With `config.lossless` (both files lossless), an offset that passes must also fit as a whole within
    `config.exact_max_residual`: the tests above forgive what JPEG changes, which two lossless
    files do not need, and a smooth crop of another picture can fit a smooth region within them.
    """
    best, verified, verified_cost = Match.none(), [], np.inf
    best_cost = candidates[0][2] if candidates else 0.0
    for x, y, cost in candidates[:config.max_verified]:
        if cost > 2 * (verified_cost if verified else best_cost) + config.noise_floor:
            # Clearly worse than the verified answer: cannot be an equally good offset. Clearly worse than
            # a best candidate that failed: at full resolution a true offset leaves only JPEG noise, so it
            # would have been the best.
            break
        evidence = tests.measure(original, x, y, give_up_share)
        passed, score = verdict(original, tests.crop, evidence, config)
        if passed:
            if not verified:
                best = Match(True, (evidence.x, evidence.y), score, margin=pin_margin(evidence.maps))
                verified_cost = cost
            if all(max(abs(evidence.x - vx), abs(evidence.y - vy)) > 1 for vx, vy in verified):
                verified.append((evidence.x, evidence.y))
            if best.margin < config.pin_margin:
                break  # too flat to pin down: ambiguous already, and counting more offsets that fit costs time
        elif not verified and score > best.score:
            best = Match(False, None, score)
    if best.found:
        best.candidates = len(verified)
        best.ambiguous = best.margin < config.pin_margin or len(verified) > 1
    return best


def verify_at(original: np.ndarray, tests: CropTests, x: int, y: int, config: VerifyConfig) -> Match:
    """Verification's tests at (x, y) itself, not polished: for a place found by other means (the colour
    check's search, `predict.answer_in_colour`) on a crop too flat in luma to pin it, where polishing
    walks off along whatever the luma's noise favours (a flat crop of a two-colour picture walked 7 px,
    over the colour edge). An answer found this way is ambiguous."""
    evidence = tests.measure(original, x, y, give_up_share=0.0, polish_offset=False)  # 0: never given up
    passed, score = verdict(original, tests.crop, evidence, config)
    if not passed:
        return Match(False, None, score)
    return Match(True, (x, y), score, ambiguous=True, candidates=1, margin=pin_margin(evidence.maps))


def verdict(original: np.ndarray, crop: np.ndarray, evidence: Evidence, config: VerifyConfig) -> tuple[bool, float]:
    """Whether the crop passes at the evidence's offset, and its score (`Evidence.passes`); with
    `config.lossless`, only if the whole crop also fits there within `config.exact_max_residual`."""
    passed, score = evidence.passes(config)
    if passed and config.lossless:
        passed = whole_residual(original, crop, evidence.x, evidence.y) <= config.exact_max_residual
    return passed, score


def whole_residual(original: np.ndarray, crop: np.ndarray, x: int, y: int) -> float:
    """Mean squared difference between the whole crop and the original at (x, y), full resolution."""
    region = original[y:y + crop.shape[0], x:x + crop.shape[1]]
    return cv2.norm(region, crop, cv2.NORM_L2SQR) / crop.size


def pin_margin(maps: np.ndarray) -> float:
    """How much better the offset fits than its best one-pixel neighbour, in mean squared grey levels.

    Near zero when the crop is flat or only has edges in one direction (a gradient
    sky, a horizon): then a neighbouring offset fits as well and the corner is a guess.
    """
    if len(maps) == 0:
        return 0.0
    total = maps.mean(axis=0)  # (3, 3) over the tiles; +inf where a neighbour leaves the original
    neighbours = np.delete(total.ravel(), 4)
    neighbours = neighbours[np.isfinite(neighbours)]
    return float(neighbours.min() - total[1, 1]) if len(neighbours) else float("inf")


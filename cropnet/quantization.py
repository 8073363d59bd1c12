"""Can the two files of a pair hold one picture? A test of their JPEG quantization.

A JPEG file keeps, for every 8 x 8 block of its grid, the block's DCT coefficients
rounded to multiples of its quantization table. Any picture whose coefficients
round to the same multiples makes the same file, so the file stands for a set of
pictures: a box in the block-DCT basis, as wide as the table's steps. A lossless
file stands for its own pixels, within rounding.

Where a crop sits in its original, both files came from the same pixels, so their
two sets share a picture. A smooth negative can fit within JPEG noise pixel by pixel
(a resized crop of a sky, a region running past the border where the picture goes
on in one tone) while no single picture is in both sets: the coefficients one file
kept put that region somewhere the other file's do not allow.

Alternating projections onto two convex sets find a point of both when they meet
and settle at the distance between them when they do not; each projection is exact
and cheap (block DCT, clip each coefficient to its step, inverse DCT). `EncodingTest.gap`
returns that distance in grey levels: about 0 for true crops, whatever their
qualities, and more for such negatives. Luma only (what the files'
luma tables quantize); numpy and OpenCV, no torch. Measurements: docs/verification.md.
"""

from __future__ import annotations

import cv2
import numpy as np

from .images import ImageHeader
from .verify import best_move, neighbour_residuals

BLOCK = 8
_n = np.arange(BLOCK)
# Orthonormal DCT-II: its coefficients of a block are what JPEG's forward DCT gives (before quantizing).
DCT = (np.cos((2 * _n[None, :] + 1) * _n[:, None] * np.pi / (2 * BLOCK))
       * np.where(_n[:, None] == 0, np.sqrt(1 / BLOCK), np.sqrt(2 / BLOCK))).astype(np.float32)

# Coefficient units a JPEG picture's coefficient may lie outside its step: the encoder's integer DCT and
# the decoded pixels' rounding each move a coefficient by up to about one.
COEFFICIENT_SLACK = 1.0
# Grey levels a lossless file's luma may differ from the picture: the luma of an RGB file is rounded, by
# this program and by the encoder that made the other file, each its own way.
PIXEL_SLACK = 1.5
WINDOW = 64  # px: side of the windows a large crop is tested in
WINDOWS = 16  # ... how many: those where the two files differ most
WHOLE_PIXELS = 160 * 160  # a crop up to this many pixels is tested whole
ITERATIONS = 30
CONVERGED = 1e-3  # grey levels: a gap this small means the sets meet (alternating projections then stop)
FIT_RADIUS = 3  # px around an answer where `EncodingTest.best_fit_near` looks


class FileSet:
    """The pictures one file stands for, over a stack of windows of its pixels ((K, H, W) float32).

    `table`: the file's 8 x 8 luma quantization table, or None for a lossless file.
    `grid`: (x, y) of a block corner of the file's grid, in the windows' pixels.
    """

    def __init__(self, pixels: np.ndarray, table: np.ndarray | None, grid: tuple[int, int]):
        self.pixels, self.table = pixels, table
        height, width = pixels.shape[1:]
        self.x0, self.y0 = grid[0] % BLOCK, grid[1] % BLOCK
        self.columns, self.rows = (width - self.x0) // BLOCK, (height - self.y0) // BLOCK
        if table is None or self.columns <= 0 or self.rows <= 0:
            return
        coefficients = self.transform(pixels)
        steps = np.round(coefficients / table)
        self.low = table * (steps - 0.5) - COEFFICIENT_SLACK
        self.high = table * (steps + 0.5) + COEFFICIENT_SLACK
        # A block with a pixel at 0 or 255 was clipped after decoding: its coefficients are not the file's.
        blocks = self.blocks(pixels)
        clipped = ((blocks <= 0) | (blocks >= 255)).any(axis=(-2, -1))
        self.low[clipped], self.high[clipped] = -np.inf, np.inf

    def blocks(self, pixels: np.ndarray) -> np.ndarray:
        """(K, rows, columns, 8, 8) view of the whole blocks of the file's grid within the windows."""
        inner = pixels[:, self.y0:self.y0 + BLOCK * self.rows, self.x0:self.x0 + BLOCK * self.columns]
        return inner.reshape(len(pixels), self.rows, BLOCK, self.columns, BLOCK).swapaxes(2, 3)

    def transform(self, pixels: np.ndarray) -> np.ndarray:
        return DCT @ (self.blocks(pixels) - 128) @ DCT.T

    def project(self, pixels: np.ndarray) -> np.ndarray:
        """The picture of this set nearest to `pixels` (a new array); pixels outside whole blocks stay."""
        if self.table is None:
            return np.clip(pixels, self.pixels - PIXEL_SLACK, self.pixels + PIXEL_SLACK)
        nearest = pixels.copy()
        if self.columns <= 0 or self.rows <= 0:
            return nearest
        coefficients = np.clip(self.transform(pixels), self.low, self.high)
        self.blocks(nearest)[...] = DCT.T @ coefficients @ DCT + 128
        return nearest


def luma_table(header: ImageHeader) -> np.ndarray | None:
    """(8, 8) float32 quantization table of the file's luma, or None when the file has none."""
    return None if header.luma_table is None else np.array(header.luma_table, np.float32).reshape(BLOCK, BLOCK)


def encodings_comparable(headers: tuple[ImageHeader, ImageHeader]) -> bool:
    """Whether `EncodingTest` can tell anything: both files known (a JPEG's table, or lossless), one a JPEG
    (two lossless files are held to rounding by verification itself, `VerifyConfig.lossless`)."""
    known = all(header.luma_table is not None or header.lossless for header in headers)
    return known and any(header.luma_table is not None for header in headers)


class EncodingTest:
    """Whether the two files leave room for one picture with the crop at one offset or another near it.

    `original`, `crop`: (H, W) uint8 luma as decoded; the headers say how each file keeps it
    (`encodings_comparable` must hold). The crop's windows and its file's set are made once, at
    `top_left`: a crop over `WHOLE_PIXELS` is tested in the `WINDOWS` windows where it differs most
    from the original there, each on its own (a picture that fits both files fits every part), and
    the gap is over all of them: a few blocks of saturated colour, whose luma the RGB round trip
    between two encodings moves, do not decide alone (a true crop's windows there reached 0.15 when
    each window was judged alone). The RMS is over every pixel of the windows, those outside whole
    blocks of a JPEG's grid too (no file's steps hold them: the gap is diluted on a small crop,
    never made).
    """

    def __init__(self, original: np.ndarray, crop: np.ndarray, top_left: tuple[int, int],
                 original_header: ImageHeader, crop_header: ImageHeader):
        self.original, self.crop, self.original_table = original, crop, luma_table(original_header)
        x, y = top_left
        corners = window_corners(original[y:y + crop.shape[0], x:x + crop.shape[1]], crop)
        self.corners = [(0, 0)] if corners is None else corners
        self.side = crop.shape if corners is None else (WINDOW, WINDOW)
        self.crop_windows = self.windows(crop, 0, 0)
        # Window corners are multiples of 8 in the crop: its file's grid starts at each window's corner.
        self.crop_set = FileSet(self.crop_windows, luma_table(crop_header), (0, 0))

    def windows(self, image: np.ndarray, x: int, y: int) -> np.ndarray:
        """(K, H, W) float32 stack of the windows, with the crop at (x, y) in `image`."""
        rows, columns = self.side
        return np.stack([image[y + top:y + top + rows, x + left:x + left + columns]
                         for left, top in self.corners]).astype(np.float32)

    def gap(self, x: int, y: int) -> float:
        """Grey levels (RMS) between the pictures the two files allow with the crop at (x, y): about 0
        when one picture fits both (a true crop there: within a few projections), more when none does
        (it settles there; each projection can only shrink it)."""
        region_windows = self.windows(self.original, x, y)
        original_set = FileSet(region_windows, self.original_table, (-x, -y))  # its grid: its multiples of 8
        picture = (self.crop_windows + region_windows) / 2
        gap = np.inf
        for _ in range(ITERATIONS):
            in_crop_set = self.crop_set.project(picture)
            picture = original_set.project(in_crop_set)
            gap = float(np.sqrt(np.mean((picture - in_crop_set) ** 2)))
            if gap < CONVERGED:
                break
        return gap

    def best_fit_near(self, x: int, y: int, radius: int = FIT_RADIUS) -> tuple[int, int]:
        """The offset within `radius` px of (x, y) where the windows' pixels fit the original best
        (verification's `neighbour_residuals` and `best_move`: of equal fits, the nearest).

        Verification's answer on a smooth crop can rest on a local minimum of its tiles' residual a
        pixel or two from the crop's place, where the files do not quite agree: one of 640 crops cut
        from decoded training photos, 2 px off, had a gap of 0.19 there and 0.0002 at its place,
        where its pixels fit exactly.
        """
        height, width = self.original.shape
        # Windows are square but a whole crop: one tile of the crop's longer side, cut to the crop.
        maps = neighbour_residuals(self.original, self.crop, x, y, self.corners, max(self.side), radius)
        dx, dy = best_move(maps, x, y, width - self.crop.shape[1], height - self.crop.shape[0])
        return x + dx, y + dy


def step_energy(crop: np.ndarray) -> float:
    """Mean squared difference between neighbouring pixels, along whichever axis changes more: how far
    the crop is from smooth. A repeating texture is far from it even when it is flat along one axis."""
    across = cv2.norm(crop[:, 1:], crop[:, :-1], cv2.NORM_L2SQR) / max(1, crop[:, 1:].size)
    down = cv2.norm(crop[1:], crop[:-1], cv2.NORM_L2SQR) / max(1, crop[1:].size)
    return max(across, down)


def window_corners(region: np.ndarray, crop: np.ndarray) -> list[tuple[int, int]] | None:
    """(x, y) corners, multiples of 8, of the `WINDOWS` windows of side `WINDOW` where the crop and the
    original's region differ most (mean absolute difference); None when the crop is tested whole."""
    height, width = crop.shape
    if height * width <= WHOLE_PIXELS or min(height, width) < WINDOW:
        return None
    # Windows on block corners, at most WINDOW - BLOCK apart so that, rounded down to block corners, they
    # still overlap: every pixel is in one but the last few (under 8) of each side.
    tops, lefts = (np.unique(np.linspace(0, side - WINDOW, -(-side // (WINDOW - BLOCK))).astype(int) // BLOCK * BLOCK)
                   for side in (height, width))
    # Each window's summed absolute difference from the 8 x 8 blocks' sums (a running sum over blocks).
    rows, columns = height // BLOCK, width // BLOCK
    difference = cv2.absdiff(crop[:rows * BLOCK, :columns * BLOCK], region[:rows * BLOCK, :columns * BLOCK])
    block_sums = difference.reshape(rows, BLOCK, columns, BLOCK).sum(axis=(1, 3), dtype=np.int64)
    running = np.pad(block_sums.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    span = WINDOW // BLOCK
    top_blocks, left_blocks = np.meshgrid(tops // BLOCK, lefts // BLOCK, indexing="ij")
    sums = (running[top_blocks + span, left_blocks + span] - running[top_blocks, left_blocks + span]
            - running[top_blocks + span, left_blocks] + running[top_blocks, left_blocks]).ravel()
    corners = [(int(left), int(top)) for top in tops for left in lefts]
    return [corners[index] for index in np.argsort(-sums, kind="stable")[:WINDOWS]]

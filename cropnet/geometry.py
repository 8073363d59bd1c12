"""Geometric facts about crops that hold whatever the network says."""

from __future__ import annotations

import numpy as np


def apply_size_rule(paired: np.ndarray, swapped: np.ndarray, size_a: np.ndarray, size_b: np.ndarray):
    """A crop is never larger than its original in either dimension.

    When only one order fits, it decides `swapped`; when neither does, the pair
    cannot be a crop. Sizes are (..., 2) arrays of (width, height).
    """
    a_fits_b = np.all(size_a <= size_b, axis=-1)
    b_fits_a = np.all(size_b <= size_a, axis=-1)
    paired = paired & (a_fits_b | b_fits_a)
    swapped = np.where(a_fits_b & ~b_fits_a, True, np.where(b_fits_a & ~a_fits_b, False, swapped))
    return paired, swapped


def corner_in_pixels(top_left: np.ndarray, original_size, crop_size) -> tuple[int, int]:
    """The network's normalized corner in the original's pixels, kept where the crop still fits."""
    x = int(np.clip(round(float(top_left[0]) * original_size[0]), 0, max(0, original_size[0] - crop_size[0])))
    y = int(np.clip(round(float(top_left[1]) * original_size[1]), 0, max(0, original_size[1] - crop_size[1])))
    return x, y

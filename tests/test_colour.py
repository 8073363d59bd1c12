"""The colour check: region means at fractional places, the gap at a crop's place, the colour search."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import textured_photo, two_colour_field

from cropnet.colour import ColourView, colour_gap, colour_places, colour_view, region_means
from cropnet.images import ReducedColour


def test_region_means_weigh_pixels_by_the_share_of_them_a_fractional_box_covers():
    image = np.zeros((4, 6, 1), np.float32)
    image[:, 1] = 10.0
    image[2:, :, 0] += 100.0
    boxes = np.array([(0.5, 0, 1.5, 2), (0.5, 1, 1.5, 3), (1, 0, 2, 4), (0, 0, 6, 4)], dtype=np.float64)
    means = region_means(image, boxes)[:, 0]
    # (0.5 px of 0 + 0.5 px of 10) over rows 0-1; the same over rows 1-2, half of them 100 higher.
    np.testing.assert_allclose(means, [5.0, 55.0, 60.0, 10 / 6 + 50.0])


def test_a_box_past_the_border_is_clipped_to_the_image():
    ramp = np.arange(4, dtype=np.float32)[None, :, None].repeat(3, axis=0)  # columns 0, 1, 2, 3
    np.testing.assert_allclose(region_means(ramp, np.array([(-2.0, -2.0, 9.0, 9.0), (2.5, 0, 6, 3)]))[:, 0],
                               [1.5, (0.5 * 2 + 3) / 1.5])


def test_a_crop_at_its_place_has_no_colour_gap_and_a_recoloured_one_has(photo_size=(400, 300)):
    original = textured_photo(5, *photo_size)
    x, y, width, height = 123, 57, 150, 100
    crop = original[y:y + height, x:x + width]
    original_view, crop_view = colour_view(original), colour_view(crop)
    assert colour_gap(original_view, crop_view, (x, y)) < 1.0  # reduced, at a place off their grid
    # The same luma, red and blue chroma swapped: a recoloured crop.
    ycrcb = cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb)
    recoloured = cv2.cvtColor(ycrcb[:, :, [0, 2, 1]], cv2.COLOR_YCrCb2RGB)
    assert colour_gap(original_view, colour_view(recoloured), (x, y)) > 8.0


def test_a_part_that_differs_is_not_averaged_away():
    original = two_colour_field()
    crop = original[150:230, 60:180].copy()
    crop[:20, :30] = original[0, -1]  # one corner region bluish
    views = colour_view(original), colour_view(crop)
    assert colour_gap(*views, (60, 150)) > 30.0
    assert colour_gap(views[0], colour_view(original[150:230, 60:180]), (60, 150)) < 0.5


def test_images_without_colour_to_compare_have_no_colour_view():
    assert colour_view(np.zeros((10, 10), np.uint8)) is None  # grey
    assert colour_view(np.full((10, 10, 3), 0.5, np.float32)) is None  # of another depth: not compared
    assert colour_view(np.full((12, 12, 3), (120, 121, 119), np.uint8)) is None  # grey kept as RGB


def test_a_reduced_colour_view_keeps_its_full_size_and_where_its_boxes_start():
    view = colour_view(ReducedColour(np.full((10, 12, 3), (200, 90, 60), np.uint8), (1, 2)), size=(47, 40))
    assert isinstance(view, ColourView) and view.size == (47, 40) and view.origin == (1, 2)
    assert view.reduced(3, 2) == (1.0, 1.0)  # full-resolution px 3 is 4 px into the grid that starts 1 px early
    reduced = colour_view(np.full((41, 47, 3), (200, 90, 60), np.uint8))  # reduced here: boxes of 4, what is left
    assert reduced.ycrcb.shape == (11, 12, 3) and reduced.size == (47, 41) and reduced.origin == (0, 0)


def test_the_colour_search_finds_the_region_of_the_crops_colour():
    original = two_colour_field()
    crop = original[50:80, 55:90]  # inside the greenish square
    places = colour_places(colour_view(original), colour_view(crop), 4)
    assert places and all(40 - 4 <= x <= 100 - 35 + 4 and 40 - 4 <= y <= 100 - 30 + 4 for x, y in places)


@pytest.mark.parametrize("corner", [(120, 56), (123, 57), (121, 59), (122, 58)])
def test_the_colour_search_puts_the_corner_within_a_px_whatever_its_phase_against_the_boxes(corner):
    original = textured_photo(6, 300, 200)
    x, y = corner
    crop = original[y:y + 60, x:x + 80]
    places = colour_places(colour_view(original), colour_view(crop), 3)
    assert max(abs(places[0][0] - x), abs(places[0][1] - y)) <= 1  # phases 0 and 2 of the boxes of 4

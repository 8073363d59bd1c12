import numpy as np
import pytest
from conftest import textured_photo
from PIL import Image

from cropnet.errors import ImageError
from cropnet.images import (
    MIN_SIDE,
    find_images,
    image_header,
    is_jpeg,
    load_grey_and_views,
    load_image,
    load_reduced_colour,
    shrink,
)


def test_jpeg_and_png_load_as_rgb(tmp_path):
    photo = textured_photo(0)
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(photo).save(tmp_path / "p.jpg", quality=95, subsampling=0)
    png, jpg = load_image(tmp_path / "p.png"), load_image(tmp_path / "p.jpg")
    assert png.dtype == np.uint8 and png.shape == (90, 120, 3)
    assert np.array_equal(png, photo)  # lossless round trip
    assert jpg.shape == png.shape and np.abs(jpg.astype(int) - photo).mean() < 10


def test_exif_orientation_is_applied(tmp_path):
    photo = textured_photo(0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(photo).save(tmp_path / "rotated.png", exif=exif)
    loaded = load_image(tmp_path / "rotated.png")
    assert loaded.shape == (120, 90, 3)
    assert np.array_equal(loaded, np.rot90(photo, k=-1))


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[:, :10] = (10, 20, 30, 255)  # left half opaque, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    loaded = load_image(tmp_path / "alpha.png")
    assert loaded[0, 0].tolist() == [10, 20, 30]
    assert loaded[0, 15].tolist() == [255, 255, 255]


def test_sixteen_bit_grey_is_scaled(tmp_path):
    grey = np.full((16, 16), 257 * 100, dtype=np.uint16)
    grey[0, 0] = 65535
    Image.fromarray(grey).save(tmp_path / "deep.png")
    loaded = load_image(tmp_path / "deep.png")
    assert loaded[1, 1].tolist() == [100, 100, 100]
    assert loaded[0, 0].tolist() == [255, 255, 255]


def truncated_jpeg(path):
    Image.fromarray(textured_photo(0)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make, reason", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, not a picture"), "not an image"),
    (truncated_jpeg, "truncated"),
    (lambda p: Image.new("RGB", (MIN_SIDE - 1, 40)).save(p, "PNG"), "too small"),
])
@pytest.mark.parametrize("grey", [False, True])  # grey: a JPEG is decoded straight into an array
def test_bad_files_raise_image_error_naming_the_file(tmp_path, make, reason, grey):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageError) as error:
        load_image(path, grey=grey)
    assert str(path) in str(error.value) and reason in str(error.value)


@pytest.mark.parametrize("orientation", [1, 6])
def test_grey_jpeg_decoded_into_an_array_is_what_pillow_decodes(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(textured_photo(0)).save(tmp_path / "p.jpg", quality=80, exif=exif)
    with Image.open(tmp_path / "p.jpg") as image:
        image.draft("L", None)
        stored = np.asarray(image)  # Pillow's pixels, copied out the usual way
    grey = load_image(tmp_path / "p.jpg", grey=True)
    assert grey.dtype == np.uint8
    assert np.array_equal(grey, stored if orientation == 1 else np.rot90(stored, k=-1))
    if orientation == 1:  # decoded into an array of its own: what np.asarray copies out of Pillow is read-only
        assert grey.flags.writeable


def test_pixel_limit_is_checked(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="over the limit"):
        load_image(tmp_path / "big.png", max_pixels=9999)


def test_find_images_recurses_and_ignores_other_files(photo_folder):
    names = [p.relative_to(photo_folder).as_posix() for p in find_images(photo_folder)]
    assert names == ["nested/three.webp", "one.png", "two.jpg"]


def test_shrink_keeps_aspect_ratio():
    image = np.zeros((100, 300, 3), dtype=np.uint8)
    assert shrink(image, 150).shape == (50, 150, 3)
    assert shrink(image, 1000) is image


def test_images_past_pillows_own_bomb_limit_get_the_pixel_limit_message(tmp_path):
    """200 megapixels: over Pillow's built-in guard too, yet the reason must be the size, not "damaged"."""
    Image.new("1", (20000, 10000)).save(tmp_path / "huge.png")  # 24 KB on disk
    with pytest.raises(ImageError, match="200,000,000 pixels, over the limit of 100,000,000"):
        load_image(tmp_path / "huge.png")


def test_image_size_reads_headers_with_exif_orientation(tmp_path):
    from PIL import Image

    from cropnet.images import image_size

    turned = Image.new("RGB", (300, 200))
    exif = turned.getexif()
    exif[0x0112] = 6  # a quarter turn: displayed 200 x 300
    for suffix in ("png", "jpg"):
        turned.save(tmp_path / f"turned.{suffix}", exif=exif)
        Image.new("RGB", (300, 200)).save(tmp_path / f"plain.{suffix}")
        assert image_size(tmp_path / f"turned.{suffix}") == (200, 300)
        assert image_size(tmp_path / f"plain.{suffix}") == (300, 200)
        assert load_image(tmp_path / f"turned.{suffix}").shape[:2] == (300, 200)  # (H, W) as displayed


@pytest.mark.parametrize("name, mode, orientation", [("p.png", "RGB", 1), ("p.png", "RGBA", 1), ("p.png", "L", 6),
                                                     ("p.webp", "RGB", 8), ("p.jpg", "RGB", 6)])
def test_grey_and_view_from_one_decode_are_what_two_loads_give(tmp_path, name, mode, orientation):
    """One decode of a non-JPEG file: the same luma and the same reduced RGB views (hybrid's network's, the
    colour check's), pixel for pixel."""
    photo = Image.fromarray(textured_photo(3, 200, 150)).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo.save(tmp_path / name, exif=exif, **({"lossless": True} if name.endswith("webp") else {}))
    grey, view, colour = load_grey_and_views(tmp_path / name, scale=0.3, colour_factor=4)
    smaller = load_grey_and_views(tmp_path / name, scale=0.2)[1]
    assert np.array_equal(grey, load_image(tmp_path / name, grey=True))
    assert np.array_equal(view, load_image(tmp_path / name, scale=0.3))
    assert np.array_equal(smaller, load_image(tmp_path / name, scale=0.2))
    if not name.endswith("jpg"):  # a JPEG's is read on its own, by DCT scaling (below)
        reduced = load_reduced_colour(tmp_path / name, factor=4)
        assert np.array_equal(colour.rgb, reduced.rgb) and colour.origin == reduced.origin == (0, 0)
    assert view.shape[:2] == ((60, 45) if orientation in (6, 8) else (45, 60))
    assert is_jpeg(tmp_path / name) == name.endswith("jpg")


def test_only_8_bit_pngs_without_a_palette_count_as_lossless(tmp_path):
    import cv2

    photo = Image.fromarray(textured_photo(3, 64, 48))
    photo.save(tmp_path / "colour.png")
    photo.convert("RGBA").save(tmp_path / "alpha.png")
    photo.convert("L").save(tmp_path / "grey.png")
    photo.convert("LA").save(tmp_path / "grey-alpha.png")
    photo.convert("P").save(tmp_path / "palette.png")  # quantised: its pixels moved
    photo.save(tmp_path / "photo.jpg", quality=95)
    wide = np.asarray(photo).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "colour16.png"), wide)  # 16 bits a channel: Pillow opens it as "RGB" all the same
    Image.fromarray(wide[:, :, 0]).save(tmp_path / "grey16.png")
    names = ("colour.png", "alpha.png", "grey.png", "grey-alpha.png", "palette.png", "photo.jpg", "colour16.png",
             "grey16.png")
    assert [name for name in names if image_header(tmp_path / name).lossless] == ["colour.png", "alpha.png", "grey.png",
                                                                        "grey-alpha.png"]
    assert [name for name in names if image_header(tmp_path / name).jpeg] == ["photo.jpg"]


def box_means(picture: np.ndarray, origin: tuple[int, int], shape: tuple[int, int], factor: int = 4) -> np.ndarray:
    """Each box's mean of `picture` (H, W, 3), the grid starting `origin` (x, y) px before it, over the pixels
    a box has (`images.ReducedColour`); `shape`: the grid's (rows, columns)."""
    means = np.zeros((*shape, 3))
    for row in range(shape[0]):
        for column in range(shape[1]):
            top, left = max(0, row * factor - origin[1]), max(0, column * factor - origin[0])
            box = picture[top:row * factor - origin[1] + factor, left:column * factor - origin[0] + factor]
            means[row, column] = box.reshape(-1, 3).mean(axis=0)
    return means


def test_reduced_colour_is_box_means_and_a_jpeg_decodes_close_to_them(tmp_path):
    photo = textured_photo(4, 203, 150)  # sides not multiples of 4: the last boxes are partial
    Image.fromarray(photo).save(tmp_path / "p.png")
    Image.fromarray(photo).save(tmp_path / "p.jpg", quality=95, subsampling=0)
    boxes = load_reduced_colour(tmp_path / "p.png", factor=4)
    assert boxes.rgb.shape == (38, 51, 3) and boxes.origin == (0, 0)
    # Pillow's box means: whole boxes exactly (to rounding), partial ones over the pixels they have.
    assert np.abs(boxes.rgb - box_means(photo, (0, 0), (38, 51))).max() <= 0.5 + 1e-9
    from_jpeg = load_reduced_colour(tmp_path / "p.jpg", factor=4)
    assert from_jpeg.rgb.shape == boxes.rgb.shape
    assert np.abs(from_jpeg.rgb.astype(float) - boxes.rgb).mean() < 1.0  # measured 0.6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_turned_jpegs_reduced_colour_says_where_its_boxes_start(tmp_path, orientation):
    """libjpeg reduces a JPEG as stored, partial boxes last; turned as displayed, they can come first."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(textured_photo(4, 203, 150)).save(tmp_path / "p.jpg", quality=95, subsampling=0, exif=exif)
    reduced = load_reduced_colour(tmp_path / "p.jpg", factor=4)
    displayed = load_image(tmp_path / "p.jpg").astype(float)
    assert displayed.shape[:2] == ((203, 150) if orientation >= 5 else (150, 203))
    # 203 = 50 * 4 + 3 and 150 = 37 * 4 + 2: a grid turned so that those boxes come first starts 1 or 2 px early.
    expected = {1: (0, 0), 2: (1, 0), 3: (1, 2), 4: (0, 2), 5: (0, 0), 6: (2, 0), 7: (2, 1), 8: (0, 1)}
    assert reduced.origin == expected[orientation]
    error = np.abs(box_means(displayed, reduced.origin, reduced.rgb.shape[:2]) - reduced.rgb).mean()
    assert error < 1.0  # measured 0.6 for every orientation; 8 levels with the grid taken to start at 0


def test_a_cameras_multi_picture_file_decodes_as_its_first_jpeg_does(tmp_path):
    """MPO (stereo and depth cameras): its first picture is a JPEG, read the same fast ways (grey alone,
    DCT-scaled colour) and with its quantization table, as the same picture saved as a JPEG is."""
    photo = Image.fromarray(textured_photo(3, 403, 301))
    photo.save(tmp_path / "p.jpg", quality=80)
    photo.save(tmp_path / "p.mpo", format="MPO", quality=80, save_all=True,
               append_images=[photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    assert Image.open(tmp_path / "p.mpo").format == "MPO" and is_jpeg(tmp_path / "p.mpo")
    jpeg, mpo = tmp_path / "p.jpg", tmp_path / "p.mpo"
    assert np.array_equal(load_image(mpo, grey=True), load_image(jpeg, grey=True))
    assert np.array_equal(load_reduced_colour(mpo).rgb, load_reduced_colour(jpeg).rgb)
    assert image_header(mpo).luma_table == image_header(jpeg).luma_table is not None
    assert image_header(mpo).jpeg and image_header(jpeg).jpeg

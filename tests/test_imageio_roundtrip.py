"""Round trips through enhance.imageio found wanting by a fuzz of formats, depths and EXIF orientations.
Every image is made here, in tmp_path."""

import struct

import numpy as np
import pytest
import tifffile
from PIL import Image, features

from enhance.imageio import ImageReadError, read_image

H, W = 17, 23  # odd and not square, so a wrong turn shows in the shape


def exif_with(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    return exif


@pytest.mark.parametrize("orientation, upright", [(3, lambda a: a[::-1, ::-1]), (6, lambda a: np.rot90(a, -1)),
                                                  (7, lambda a: np.rot90(a, -1)[::-1])])
@pytest.mark.parametrize("mode, dtype", [("I;16", np.uint16), ("F", np.float32)])
def test_lzw_16bit_and_float_tiffs_are_turned_once(tmp_path, mode, dtype, orientation, upright):
    # Without imagecodecs, tifffile cannot decode LZW, so these are read through OpenCV, which turns
    # the pixels by the Orientation tag itself: they used to be turned twice (or back to stored).
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 65536, (H, W)).astype(dtype)
    if dtype == np.float32:
        stored /= 65535
    src = tmp_path / "in.tif"
    Image.frombytes(mode, (W, H), stored.tobytes()).save(src, compression="tiff_lzw", exif=exif_with(orientation))

    photo = read_image(src)
    assert photo.grayscale
    np.testing.assert_array_equal(photo.pixels[..., 0], upright(stored))
    tags = Image.Exif()  # EXIF survives, with orientation 1 since the pixels are upright
    tags.load(photo.exif)
    assert tags[0x010F] == "TestCam" and tags[0x0112] == 1


@pytest.mark.parametrize("extrasamples, dropped", [(["assocalpha"], 0), (["unspecified"], 1),
                                                   (["unassalpha", "unspecified"], 1)])
def test_8bit_gray_tiffs_with_layouts_pillow_cannot_read(tmp_path, extrasamples, dropped):
    # Pillow reads 8-bit gray alone or with one unassociated alpha, and called these files corrupt.
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 256, (H, W, 1 + len(extrasamples)), dtype=np.uint8)
    if extrasamples[0] == "assocalpha":
        stored[..., 0] = stored[..., 0] * (stored[..., 1] / 255)  # premultiplied: colour <= alpha
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stored, photometric="minisblack", extrasamples=extrasamples,
                     extratags=[(0x0112, "H", 1, 6, True)])

    photo = read_image(src)
    assert photo.grayscale and photo.bit_depth == 8 and photo.pixels.dtype == np.uint8
    upright = np.rot90(stored, -1)
    alpha = None if extrasamples == ["unspecified"] else upright[..., 1]
    if alpha is None:
        assert photo.alpha is None
    else:
        np.testing.assert_array_equal(photo.alpha, alpha)
    if extrasamples[0] == "assocalpha":  # straight colour again, to within a level of rounding
        straight = np.where(alpha > 0, np.rint(upright[..., 0] * 255.0 / np.maximum(alpha, 1)), 0)
        assert np.abs(photo.pixels[..., 0] - straight).max() <= 1
    else:
        np.testing.assert_array_equal(photo.pixels[..., 0], upright[..., 0])
    assert (f"{dropped} extra channel (not colour or alpha) dropped" in photo.notes) == bool(dropped)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_alpha_after_a_mask_channel_is_kept(tmp_path, dtype):
    # The alpha is the first extra channel marked as alpha, not always the first extra channel.
    stored = np.random.default_rng(2).integers(0, 200, (H, W, 5)).astype(dtype)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stored, photometric="rgb", extrasamples=["unspecified", "unassalpha"])
    photo = read_image(src)
    np.testing.assert_array_equal(photo.pixels, stored[..., :3])
    np.testing.assert_array_equal(photo.alpha, stored[..., 4])
    assert photo.notes == ["1 extra channel (not colour or alpha) dropped"]


def damaged_tiff(tmp_path, dtype, code, value):
    """A small RGB TIFF of `dtype` whose tag `code` has its first value overwritten with `value`."""
    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, np.zeros((H, W, 3), dtype), photometric="rgb", metadata=None)
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[code]
        offset, kind = tag.valueoffset, tag.dataformat[-1]
    data = bytearray(path.read_bytes())
    struct.pack_into("<" + kind, data, offset, value)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("dtype, code, value", [
    (np.uint16, 258, 8),      # BitsPerSample 8, 16, 16: tifffile gives a tuple, compared with 16
    (np.float32, 256, 0),     # ImageWidth 0: no pixels to take the range of
    (np.uint16, 262, 99),     # Photometric 99: no name to put in the message
])
def test_damaged_16bit_and_float_tiff_headers_are_one_line_read_errors(tmp_path, dtype, code, value):
    src = damaged_tiff(tmp_path, dtype, code, value)
    with pytest.raises(ImageReadError) as err:  # was TypeError, ValueError, AttributeError
        read_image(src)
    assert "\n" not in str(err.value) and src.name in str(err.value)


def test_damaged_avif_is_a_one_line_read_error(tmp_path):
    if not features.check("avif"):
        pytest.skip("Pillow without AVIF")
    src = tmp_path / "in.avif"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(src, quality=90)
    # No primary-item box: Pillow's AVIF decoder fails while opening the file, with a RuntimeError.
    src.write_bytes(src.read_bytes().replace(b"pitm", b"xitm", 1))
    with pytest.raises(ImageReadError) as err:  # was the RuntimeError itself
        read_image(src)
    assert "\n" not in str(err.value) and src.name in str(err.value)


def test_a_name_too_long_for_the_file_system_is_a_write_error(tmp_path):
    from enhance.imageio import ImageWriteError, Photo, write_image

    photo = Photo(np.zeros((4, 4, 3), np.uint8), None, False, 8, "PNG", None, None)
    with pytest.raises(ImageWriteError, match="cannot write a file of this name"):
        write_image(tmp_path / ("x" * 300 + ".png"), photo)

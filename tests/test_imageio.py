"""Tests for enhance.imageio. Every image is made here, in tmp_path."""

import dataclasses
import doctest
import os
import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from enhance import imageio
from enhance.imageio import (
    DEFAULT_MAX_PIXELS, SUPPORTED_EXTENSIONS, ImageIOWarning, ImageReadError, ImageWriteError, Photo,
    is_image_path, output_extension, read_image, write_image,
)

H, W = 12, 20  # small and not square, so rotations show in the shape


def rgb8(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def smooth8():
    """A gradient: lossy codecs keep it close, unlike random noise."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 12, y * 20, (x + y) * 6], axis=2).astype(np.uint8)


def rgb16(seed=0):
    return np.random.default_rng(seed).integers(0, 65536, (H, W, 3), dtype=np.uint16)


def write_png16(path, rgb, alpha=None):
    """A 16-bit PNG written with OpenCV (BGR order)."""
    data = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    if alpha is not None:
        data = np.dstack([data, alpha])
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(data))
    assert ok
    path.write_bytes(buf.tobytes())


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width, height, bit_depth=8, color_type=2, raw=None):
    """A PNG built by hand; raw=None gives a header with no image data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr)
    if raw is not None:
        body += png_chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IEND", b"")


def srgb_profile():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_with(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make: shows that the rest of the EXIF survives
    return exif


def assert_one_line_error(err, path):
    text = str(err.value)
    assert "\n" not in text
    assert path.name in text


def listdir(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".tif", "TIFF"), (".bmp", "BMP"), (".tiff", "TIFF")])
def test_lossless_8bit_round_trip(tmp_path, suffix, fmt):
    src = tmp_path / f"in{suffix}"
    Image.fromarray(rgb8()).save(src)
    photo = read_image(src)
    assert photo.format == fmt
    assert photo.pixels.dtype == np.uint8 and photo.bit_depth == 8
    assert photo.pixels.shape == (H, W, 3)
    assert not photo.grayscale and photo.alpha is None and photo.notes == []
    np.testing.assert_array_equal(photo.pixels, rgb8())

    out = write_image(tmp_path / f"out{suffix}", photo)
    np.testing.assert_array_equal(read_image(out).pixels, rgb8())


def test_webp_lossless_round_trip(tmp_path):
    src = tmp_path / "in.webp"
    Image.fromarray(rgb8()).save(src, lossless=True)
    photo = read_image(src)
    assert photo.format == "WEBP"
    np.testing.assert_array_equal(photo.pixels, rgb8())
    out = write_image(tmp_path / "out.webp", photo, webp_lossless=True)
    np.testing.assert_array_equal(read_image(out).pixels, rgb8())


@pytest.mark.parametrize("suffix, fmt", [(".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP")])
def test_lossy_round_trip(tmp_path, suffix, fmt):
    src = tmp_path / f"in{suffix}"
    Image.fromarray(smooth8()).save(src, quality=95)
    photo = read_image(src)
    assert photo.format == fmt and photo.pixels.dtype == np.uint8
    out = write_image(tmp_path / f"out{suffix}", photo)
    again = read_image(out).pixels.astype(int)
    assert np.abs(again - smooth8()).mean() < 4


def test_jpeg_quality_option(tmp_path):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    small = write_image(tmp_path / "q30.jpg", photo, jpeg_quality=30)
    large = write_image(tmp_path / "q95.jpg", photo)
    assert small.stat().st_size < large.stat().st_size


@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["4:4:4", "4:2:2", "4:2:0"])
def test_jpeg_keeps_the_source_chroma_subsampling(tmp_path, subsampling):
    from PIL import JpegImagePlugin

    photo = read_image(_saved(tmp_path / "in.jpg", rgb8(), quality=98, subsampling=subsampling))
    assert photo.jpeg_subsampling == subsampling
    with Image.open(write_image(tmp_path / "out.jpg", photo)) as out:
        assert JpegImagePlugin.get_sampling(out) == subsampling
    # A source that is not a JPEG gets Pillow's default, 4:2:0; a grayscale JPEG has none to keep.
    assert read_image(_saved(tmp_path / "in.png", rgb8())).jpeg_subsampling is None
    assert read_image(_saved(tmp_path / "gray.jpg", rgb8()[..., 0])).jpeg_subsampling is None


SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("options", [{}, {"save_all": True, "append_images": [Image.new("RGB", (W, H))]},
                                     {"icc_profile": SRGB_PROFILE}], ids=["simple", "animated", "extended"])
def test_a_lossless_webp_stays_lossless(tmp_path, options):
    lossless = read_image(_saved(tmp_path / "in.webp", rgb8(), lossless=True, **options))
    assert lossless.webp_lossless
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "out.webp", lossless)).pixels, rgb8())
    lossy = read_image(_saved(tmp_path / "lossy.webp", rgb8(), quality=80, **options))
    assert not lossy.webp_lossless


def _saved(path, array, **options):
    Image.fromarray(array).save(path, **options)
    return path


# --------------------------------------------------------------------------- 16 bit

def test_16bit_png_round_trip_is_exact(tmp_path):
    src = tmp_path / "in16.png"
    write_png16(src, rgb16())
    photo = read_image(src)
    assert photo.pixels.dtype == np.uint16 and photo.bit_depth == 16
    assert photo.pixels.max() > 255
    np.testing.assert_array_equal(photo.pixels, rgb16())

    out = write_image(tmp_path / "out16.png", photo)
    np.testing.assert_array_equal(read_image(out).pixels, rgb16())


def test_16bit_tiff_round_trip_is_exact(tmp_path):
    src = tmp_path / "in16.tif"
    tifffile.imwrite(src, rgb16(), photometric="rgb")
    photo = read_image(src)
    assert photo.pixels.dtype == np.uint16 and photo.bit_depth == 16 and photo.format == "TIFF"
    np.testing.assert_array_equal(photo.pixels, rgb16())

    out = write_image(tmp_path / "out16.tiff", photo)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].bitspersample == 16
    np.testing.assert_array_equal(read_image(out).pixels, rgb16())


def test_16bit_tiff_planar_and_lzw(tmp_path):
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(rgb16(), 2, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(planar).pixels, rgb16())

    lzw = tmp_path / "lzw.tif"  # OpenCV writes LZW, which tifffile needs imagecodecs for
    ok, buf = cv2.imencode(".tif", rgb16()[..., ::-1])
    lzw.write_bytes(buf.tobytes())
    np.testing.assert_array_equal(read_image(lzw).pixels, rgb16())


def test_16bit_grayscale_png_and_tiff(tmp_path):
    gray = rgb16()[..., 0]
    png = tmp_path / "g16.png"
    write_png16(png, gray)
    tif = tmp_path / "g16.tif"
    tifffile.imwrite(tif, gray, photometric="minisblack")
    for src in (png, tif):
        photo = read_image(src)
        assert photo.grayscale and photo.bit_depth == 16
        for channel in range(3):
            np.testing.assert_array_equal(photo.pixels[..., channel], gray)
        out = write_image(tmp_path / f"out_{src.name}", photo)
        with Image.open(out) as written:
            assert written.mode.startswith("I;16")  # single channel, 16 bit
        np.testing.assert_array_equal(read_image(out).pixels[..., 0], gray)


def test_16bit_alpha_png_and_tiff(tmp_path):
    alpha = rgb16(1)[..., 0]
    png = tmp_path / "rgba16.png"
    write_png16(png, rgb16(), alpha)
    tif = tmp_path / "rgba16.tif"
    tifffile.imwrite(tif, np.dstack([rgb16(), alpha]), photometric="rgb", extrasamples=["unassalpha"])
    for src in (png, tif):
        photo = read_image(src)
        np.testing.assert_array_equal(photo.alpha, alpha)
        out = read_image(write_image(tmp_path / f"out_{src.name}", photo))
        np.testing.assert_array_equal(out.pixels, rgb16())
        np.testing.assert_array_equal(out.alpha, alpha)


def test_16bit_gray_alpha_png(tmp_path):
    """Colour type 4 (gray + alpha), 16 bit: made by hand since no library here writes it."""
    data = np.random.default_rng(2).integers(0, 65536, (H, W, 2), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\x00" + data[y].tobytes() for y in range(H))
    src = tmp_path / "ga16.png"
    src.write_bytes(png_bytes(W, H, 16, 4, raw))
    photo = read_image(src)
    assert photo.grayscale and photo.bit_depth == 16
    np.testing.assert_array_equal(photo.pixels[..., 1], data[..., 0])
    np.testing.assert_array_equal(photo.alpha, data[..., 1])
    # Written back as 16-bit gray + alpha (colour type 4), with the values kept.
    out = write_image(tmp_path / "out.png", photo)
    assert out.read_bytes()[24:26] == bytes([16, 4])  # IHDR bit depth and colour type
    again = read_image(out)
    assert again.grayscale and again.bit_depth == 16
    np.testing.assert_array_equal(again.pixels[..., 0], data[..., 0])
    np.testing.assert_array_equal(again.alpha, data[..., 1])
    # TIFF holds gray + alpha directly.
    out = read_image(write_image(tmp_path / "out.tif", photo))
    assert out.grayscale
    np.testing.assert_array_equal(out.pixels[..., 2], data[..., 0])
    np.testing.assert_array_equal(out.alpha, data[..., 1])


def test_16bit_gray_alpha_png_keeps_icc_and_exif(tmp_path):
    gray = rgb16(3)[..., 0]
    alpha = rgb16(4)[..., 0]
    icc = b"\0" * 16 + b"GRAY" + b"\0" * 108  # header says: gray profile
    photo = Photo(np.dstack([gray] * 3), alpha, True, 16, "PNG", icc, exif_with(1).tobytes())
    out = write_image(tmp_path / "ga16.png", photo)
    assert out.read_bytes()[24:26] == bytes([16, 4])  # IHDR bit depth and colour type
    with Image.open(out) as written:
        assert written.info["icc_profile"] == icc
        assert written.getexif()[0x010F] == "TestCam"
    cv_read = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # a second decoder agrees on the values
    assert cv_read.dtype == np.uint16
    np.testing.assert_array_equal(cv_read[..., 0], gray)
    np.testing.assert_array_equal(cv_read[..., 3], alpha)


def test_16bit_to_8bit_formats(tmp_path):
    photo = read_image(_png16(tmp_path))
    expected = np.rint(rgb16() / 257)  # 65535 -> 255, rounded
    for suffix in (".webp", ".bmp"):  # lossless: exact
        out = read_image(write_image(tmp_path / f"out{suffix}", photo, webp_lossless=True))
        assert out.pixels.dtype == np.uint8 and out.bit_depth == 8
        np.testing.assert_array_equal(out.pixels, expected)

    smooth16 = smooth8().astype(np.uint16) * 257 + 100
    write_png16(tmp_path / "smooth16.png", smooth16)
    out = read_image(write_image(tmp_path / "out.jpg", read_image(tmp_path / "smooth16.png")))
    assert out.pixels.dtype == np.uint8
    assert np.abs(out.pixels - np.rint(smooth16 / 257)).mean() < 4


def _png16(tmp_path):
    path = tmp_path / "src16.png"
    write_png16(path, rgb16())
    return path


def test_8bit_photo_in_16bit_file_and_float_pixels(tmp_path):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    photo.bit_depth = 16  # caller asks for 16-bit output from 8-bit pixels
    out = read_image(write_image(tmp_path / "out.png", photo))
    np.testing.assert_array_equal(out.pixels, rgb8().astype(np.uint16) * 257)

    photo = read_image(_saved(tmp_path / "in2.png", rgb8()))
    photo.pixels = photo.pixels / 255.0  # floats in 0..1 are accepted too
    out = read_image(write_image(tmp_path / "out2.png", photo))
    np.testing.assert_array_equal(out.pixels, rgb8())


# --------------------------------------------------------------------------- alpha, gray, palette, CMYK

def test_rgba_png_alpha_passes_through_untouched(tmp_path):
    alpha = np.random.default_rng(3).integers(0, 256, (H, W), dtype=np.uint8)
    alpha[0, :] = 0  # fully transparent row: its colour must survive too
    src = _saved(tmp_path / "in.png", np.dstack([rgb8(), alpha]))
    photo = read_image(src)
    assert photo.pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(photo.alpha, alpha)
    np.testing.assert_array_equal(photo.pixels, rgb8())
    for name in ("out.png", "out.tif", "out.webp"):
        out = read_image(write_image(tmp_path / name, photo, webp_lossless=True))
        np.testing.assert_array_equal(out.alpha, alpha)
        np.testing.assert_array_equal(out.pixels, rgb8())


def test_rgba_to_jpeg_drops_alpha_with_warning(tmp_path):
    alpha = np.full((H, W), 255, np.uint8)
    alpha[0, 0] = 10
    photo = read_image(_saved(tmp_path / "in.png", np.dstack([rgb8(), alpha])))
    with pytest.warns(ImageIOWarning, match="alpha"):
        out = write_image(tmp_path / "out.jpg", photo)
    assert read_image(out).alpha is None

    photo.alpha = np.full((H, W), 255, np.uint8)  # fully opaque: nothing is lost, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_image(tmp_path / "opaque.jpg", photo)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp"])
def test_grayscale_in_grayscale_out(tmp_path, suffix):
    gray = smooth8()[..., 0]
    photo = read_image(_saved(tmp_path / f"in{suffix}", gray, quality=95))  # quality: JPEG only
    assert photo.grayscale and photo.pixels.shape == (H, W, 3)
    assert (photo.pixels[..., 0] == photo.pixels[..., 2]).all()
    out = write_image(tmp_path / f"out{suffix}", photo)
    with Image.open(out) as written:
        assert written.mode == "L"
    if suffix != ".jpg":
        np.testing.assert_array_equal(read_image(out).pixels[..., 0], gray)


def test_grayscale_to_webp_is_written_as_rgb(tmp_path):
    photo = read_image(_saved(tmp_path / "in.png", smooth8()[..., 0]))
    out = read_image(write_image(tmp_path / "out.webp", photo, webp_lossless=True))
    np.testing.assert_array_equal(out.pixels[..., 0], smooth8()[..., 0])


def test_gray_with_alpha(tmp_path):
    la = np.dstack([smooth8()[..., 0], rgb8()[..., 1]])
    photo = read_image(_saved(tmp_path / "in.png", la))
    assert photo.grayscale
    np.testing.assert_array_equal(photo.alpha, la[..., 1])
    out = write_image(tmp_path / "out.png", photo)
    with Image.open(out) as written:
        assert written.mode == "LA"
    np.testing.assert_array_equal(read_image(out).alpha, la[..., 1])


def test_palette_images(tmp_path):
    plain = Image.fromarray(smooth8()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    plain.save(tmp_path / "p.png")
    photo = read_image(tmp_path / "p.png")
    assert photo.alpha is None and photo.pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(photo.pixels, np.array(plain.convert("RGB")))

    plain.info["transparency"] = 0  # palette entry 0 is transparent
    plain.save(tmp_path / "pt.png", transparency=0)
    photo = read_image(tmp_path / "pt.png")
    assert photo.alpha is not None
    np.testing.assert_array_equal(photo.alpha == 0, np.array(plain) == 0)

    bilevel = Image.fromarray(smooth8()[..., 0] > 100)
    bilevel.save(tmp_path / "1bit.png")
    photo = read_image(tmp_path / "1bit.png")
    assert photo.grayscale and set(np.unique(photo.pixels)) <= {0, 255}


def test_png_colour_key_becomes_alpha(tmp_path):
    """A tRNS chunk on an RGB or gray PNG makes one colour transparent, as in every viewer."""
    colour = rgb8()
    colour[0, :5] = (1, 2, 3)  # the key colour, in a few pixels
    Image.fromarray(colour).save(tmp_path / "rgb.png", transparency=(1, 2, 3))
    gray = colour[..., 1]
    Image.fromarray(gray).save(tmp_path / "gray.png", transparency=2)
    Image.fromarray(gray > 100).save(tmp_path / "1bit.png", transparency=0)
    for name, expected in (("rgb.png", (colour != (1, 2, 3)).any(axis=2)), ("gray.png", gray != 2),
                           ("1bit.png", gray > 100)):
        photo = read_image(tmp_path / name)
        assert photo.alpha is not None, name
        np.testing.assert_array_equal(photo.alpha, np.where(expected, 255, 0))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png").pixels, colour)

    # 16 bits: OpenCV applies an RGB key itself, but not a gray one.
    data = rgb16()[..., 0].copy()
    data[0, :5] = 1000
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in data)
    png = png_bytes(W, H, 16, 0, raw)
    src = tmp_path / "gray16.png"
    src.write_bytes(png[:33] + png_chunk(b"tRNS", struct.pack(">H", 1000)) + png[33:])
    photo = read_image(src)
    np.testing.assert_array_equal(photo.alpha, np.where(data != 1000, 65535, 0))
    np.testing.assert_array_equal(photo.pixels[..., 0], data)


def test_cmyk_jpeg_is_converted_with_note(tmp_path):
    cmyk = np.zeros((H, W, 4), np.uint8)
    cmyk[:, : W // 2, 0] = 255  # left half full cyan, right half paper white
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(cmyk, "CMYK").save(src, quality=100)
    photo = read_image(src)
    assert photo.pixels.shape == (H, W, 3) and photo.icc_profile is None
    assert any("CMYK" in note for note in photo.notes)
    right, left = photo.pixels[:, -1].astype(int), photo.pixels[:, 0].astype(int)
    assert (right > 240).all()  # white stays white
    assert (left[:, 0] < 40).all() and (left[:, 2] > 200).all()  # cyan: no red, full blue


# --------------------------------------------------------------------------- EXIF and ICC

@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg(tmp_path, orientation):
    array = smooth8()
    array[:4, :4] = (255, 0, 0)  # a red corner shows where "top left" went
    src = tmp_path / "rot.jpg"
    Image.fromarray(array).save(src, quality=95, exif=exif_with(orientation))
    with Image.open(src) as im:
        expected = np.array(ImageOps.exif_transpose(im))

    photo = read_image(src)
    assert photo.pixels.shape == (W, H, 3)  # rotated: width and height swapped
    assert np.abs(photo.pixels.astype(int) - expected).max() == 0
    assert Image.Exif().load(photo.exif) is None  # parses
    out = write_image(tmp_path / "out.jpg", photo)
    with Image.open(out) as written:
        assert written.size == (H, W)
        assert written.getexif()[0x0112] == 1
        assert written.getexif()[0x010F] == "TestCam"
    again = read_image(out)  # orientation 1: not rotated a second time
    assert again.pixels.shape == (W, H, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path, orientation):
    src = tmp_path / "o.png"
    Image.fromarray(rgb8()).save(src, exif=exif_with(orientation))
    with Image.open(src) as im:
        expected = np.array(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(read_image(src).pixels, expected)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "CMYK"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_in_8bit_tiffs(tmp_path, orientation, mode, compression):
    """Pillow memory-maps an uncompressed L, RGBA or CMYK TIFF opened by name, and used to scramble
    one with orientation 5-8; and it deletes the orientation tag, which must come back as 1."""
    stored = Image.frombytes(mode, (W, H), np.random.default_rng(8).bytes(W * H * len(mode)))
    src = tmp_path / "o.tif"
    stored.save(src, exif=exif_with(orientation), **({"compression": compression} if compression else {}))
    upright = stored.copy()
    upright.getexif()[0x0112] = orientation
    upright = ImageOps.exif_transpose(upright)
    expected = np.array(upright.convert("RGB") if mode != "RGBA" else upright)

    photo = read_image(src)
    pixels = photo.pixels if mode != "RGBA" else np.dstack([photo.pixels, photo.alpha])
    np.testing.assert_array_equal(pixels, expected)
    tags = Image.Exif()
    tags.load(photo.exif)
    assert tags[0x0112] == 1 and tags[0x010F] == "TestCam"  # kept, and reset: pixels are upright


def test_exif_orientation_in_16bit_files(tmp_path):
    png = tmp_path / "rot16.png"
    write_png16(png, rgb16())
    # add an eXIf chunk (orientation 6) after IHDR, as write_image does
    data = png.read_bytes()
    exif = exif_with(6).tobytes()[6:]  # without the "Exif\0\0" prefix
    png.write_bytes(data[:33] + png_chunk(b"eXIf", exif) + data[33:])
    photo = read_image(png)
    np.testing.assert_array_equal(photo.pixels, np.rot90(rgb16(), -1))

    tif = tmp_path / "rot16.tif"
    tifffile.imwrite(tif, rgb16(), photometric="rgb", extratags=[(274, "H", 1, 8, True)])
    photo = read_image(tif)
    np.testing.assert_array_equal(photo.pixels, np.rot90(rgb16(), 1))
    out = write_image(tmp_path / "out16.png", photo)
    with Image.open(out) as written:
        assert written.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_and_exif_kept(tmp_path, suffix):
    icc = srgb_profile()
    src = tmp_path / "in.jpg"
    Image.fromarray(smooth8()).save(src, icc_profile=icc, exif=exif_with(1))
    photo = read_image(src)
    assert photo.icc_profile == icc
    out = write_image(tmp_path / f"out{suffix}", photo)
    with Image.open(out) as written:
        assert written.info.get("icc_profile") == icc
        assert written.getexif().get(0x010F) == "TestCam"


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_16bit_and_float_tiffs_keep_the_exif_and_gps_directories(tmp_path, dtype, caplog):
    exif = exif_with(6)
    exif[0x011A] = exif[0x011B] = 300  # X/YResolution
    exif[0x0128] = 2  # inches
    exif[0x0131] = "RawConverter 5.1"  # Software: the photo's, not tifffile's name
    camera = exif.get_ifd(0x8769)
    camera.update({0x829A: (1, 50), 0x8827: 3200, 0x9003: "2026:12:03 10:00:00"})  # exposure, ISO, date
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.5)})  # GPS latitude
    src = tmp_path / "in.tif"
    pixels = rgb16() if dtype == np.uint16 else rgb16().astype(np.float32) / 65535
    tifffile.imwrite(src, pixels, photometric="rgb")
    photo = dataclasses.replace(read_image(src), exif=exif.tobytes())

    out = write_image(tmp_path / "out.tif", photo)
    written = read_image(out)
    np.testing.assert_array_equal(written.pixels, pixels)  # the appended directories left the pixels alone
    tags = Image.Exif()
    tags.load(written.exif)
    assert tags[0x010F] == "TestCam" and tags.get(0x0112, 1) == 1  # upright pixels: orientation 1
    assert tags[0x0131] == "RawConverter 5.1"
    assert tags.get_ifd(0x8769) == {0x829A: (1, 50), 0x8827: 3200, 0x9003: "2026:12:03 10:00:00"}
    assert tags.get_ifd(0x8825) == {1: "N", 2: (52.0, 31.0, 12.5)}
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.tags["XResolution"].value == (300, 1) and page.tags["ResolutionUnit"].value == 2
        assert page.tags["ExifTag"].value["ISOSpeedRatings"] == 3200
        assert 0x8768 not in page.tags and 0x8824 not in page.tags  # stand-in codes renamed
    assert not caplog.records  # tifffile logged no refused tag


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_premultiplied_alpha_tiff_is_read_as_straight_colour(tmp_path, dtype):
    rng = np.random.default_rng(3)
    straight = rng.random((H, W, 3)).astype(np.float32)
    alpha = (rng.random((H, W)) * 0.9 + 0.1).astype(np.float32)
    premultiplied = np.dstack([straight * alpha[..., None], alpha])
    white = 65535 if dtype == np.uint16 else 1
    src = tmp_path / "assoc.tif"
    tifffile.imwrite(src, (premultiplied * white).round().astype(dtype) if white > 1 else premultiplied,
                     photometric="rgb", extrasamples=["assocalpha"])
    photo = read_image(src)
    np.testing.assert_allclose(photo.pixels.astype(np.float32) / white, straight, atol=2e-3)
    with tifffile.TiffFile(write_image(tmp_path / "out.tif", photo)) as tif:
        assert tif.pages[0].extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)  # and labelled as such


def test_tifffile_layout_note_is_not_copied(tmp_path):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, rgb16()[None], photometric="rgb")  # a one-page stack: {"shape": [1, 12, 20, 3]}
    out = write_image(tmp_path / "out.tif", read_image(src))
    with tifffile.TiffFile(out) as tif:
        assert "ImageDescription" not in tif.pages[0].tags


def camera_exif():
    """EXIF as a camera writes it: an EXIF and a GPS directory below the first one."""
    exif = exif_with(1)
    exif.get_ifd(0x8769).update({0x8827: 400, 0x9003: "2024:01:02 03:04:05"})  # ISO, date taken
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.5)})  # GPS latitude
    return exif


@pytest.mark.parametrize("source", ["in.tif", "in.jpg"])
def test_8bit_tiff_keeps_the_exif_and_gps_directories(tmp_path, source):
    src = tmp_path / source
    Image.fromarray(rgb8()).save(src, exif=camera_exif().tobytes(), quality=95)  # quality: JPEG only
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is lost, so no warning
        out = write_image(tmp_path / "out.tif", read_image(src))
    written = read_image(out)
    assert written.bit_depth == 8
    if source == "in.tif":
        np.testing.assert_array_equal(written.pixels, rgb8())
    tags = Image.Exif()
    tags.load(written.exif)
    assert tags[0x010F] == "TestCam"
    assert tags.get_ifd(0x8769) == {0x8827: 400, 0x9003: "2024:01:02 03:04:05"}
    assert tags.get_ifd(0x8825) == {1: "N", 2: (52.0, 31.0, 12.5)}


def test_tiff_writer_keeps_other_first_directory_tags_with_their_types(tmp_path):
    exif = camera_exif()
    exif[0x4746] = 4  # Rating (SHORT)
    exif[0x9C9B] = "Harbour".encode("utf-16-le") + b"\0\0"  # XPTitle (BYTE), as Windows writes it
    exif[0x013E] = (0.3127, 0.329)  # WhitePoint (RATIONAL)
    exif[0x0213] = 1  # YCbCrPositioning: the JPEG's layout, meaningless in an RGB TIFF
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    photo.exif = exif.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing worth keeping is lost
        out = write_image(tmp_path / "out.tif", photo)
    tags = Image.Exif()
    tags.load(read_image(out).exif)
    assert tags[0x010F] == "TestCam" and tags[0x4746] == 4 and tags[0x013E] == (0.3127, 0.329)
    assert tags[0x9C9B] == "Harbour".encode("utf-16-le") + b"\0\0" and 0x0213 not in tags
    assert tags.get_ifd(0x8769)[0x8827] == 400  # the EXIF directory still follows its pointer


def test_tiff_writer_says_which_exif_tags_it_drops(tmp_path):
    from enhance.tiff import write_tiff

    exif = camera_exif()
    exif[0x010D] = "Hafen S?d"  # DocumentName; Pillow writes only ASCII, so the byte is put in below
    latin1 = exif.tobytes().replace(b"S?d", b"S\xfcd")  # as some software writes it: TIFF text must be ASCII
    with open(tmp_path / "out.tif", "w+b") as file:
        lost = write_tiff(file, rgb8(), None, None, latin1)
    assert lost == ["these EXIF tags could not be written to the TIFF and were dropped: DocumentName"]
    tags = Image.Exif()
    tags.load(read_image(tmp_path / "out.tif").exif)
    assert tags[0x010F] == "TestCam" and 0x010D not in tags


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_icc_profile_kept_16bit(tmp_path, suffix):
    photo = read_image(_png16(tmp_path))
    icc = srgb_profile()  # made once: a new profile carries the current second in its header
    photo.icc_profile = icc
    photo.exif = exif_with(1).tobytes()
    out = write_image(tmp_path / f"out16{suffix}", photo)
    again = read_image(out)
    assert again.icc_profile == icc and again.bit_depth == 16
    if suffix == ".png":
        with Image.open(out) as written:
            assert written.getexif().get(0x010F) == "TestCam"


def test_exif_too_long_for_jpeg_is_dropped_with_a_warning(tmp_path):
    """A JPEG APP1 segment holds 65,533 bytes of EXIF, its "Exif\\0\\0" prefix included; Pillow's
    EXIF always has an even length, so 65,532 is the most that fits."""
    photo = read_image(_saved(tmp_path / "in.png", smooth8()))

    def exif_of_size(size):
        exif = exif_with(1)
        exif[0x010E] = "x" * 100  # ImageDescription, grown to reach `size`
        exif[0x010E] = "x" * (100 + size - len(exif.tobytes()))
        data = exif.tobytes()
        assert len(data) == size
        return data

    photo.exif = exif_of_size(65_532)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = write_image(tmp_path / "fits.jpg", photo)
    with Image.open(out) as written:
        assert written.getexif()[0x010F] == "TestCam"

    photo.exif = exif_of_size(65_534)
    with pytest.warns(ImageIOWarning, match="EXIF") as caught:
        out = write_image(tmp_path / "too_long.jpg", photo)
    assert "\n" not in str(caught[0].message)
    with Image.open(out) as written:
        assert not written.getexif()
    with warnings.catch_warnings():  # other formats hold it
        warnings.simplefilter("error")
        out = write_image(tmp_path / "too_long.png", photo)
    with Image.open(out) as written:
        assert written.getexif()[0x010F] == "TestCam"


def test_gray_icc_not_put_into_rgb_file(tmp_path):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    photo.icc_profile = b"\0" * 16 + b"GRAY" + b"\0" * 108  # header says: gray profile
    out = write_image(tmp_path / "out.png", photo)
    with Image.open(out) as written:
        assert "icc_profile" not in written.info


# --------------------------------------------------------------------------- HEIC / AVIF

def test_heic_read(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    src = tmp_path / "in.heic"
    try:
        pillow_heif.from_pillow(Image.fromarray(smooth8())).save(src, quality=95)
    except Exception as err:  # libheif built without an HEVC encoder
        pytest.skip(f"no HEIC encoder available: {err}")
    photo = read_image(src)
    assert photo.format == "HEIF" and photo.pixels.shape == (H, W, 3) and photo.bit_depth == 8
    assert np.abs(photo.pixels.astype(int) - smooth8()).mean() < 8
    assert output_extension(src, "same") == ".png"
    out = write_image(tmp_path / ("out" + output_extension(src, "same")), photo)
    assert read_image(out).pixels.shape == (H, W, 3)


@pytest.mark.parametrize("bits", [10, 12])
def test_10_and_12_bit_heic_are_read_as_16_bit(tmp_path, monkeypatch, bits):
    """iPhones and recent cameras write 10-bit HEIF; those levels survive as 16 bits, white at 65535."""
    pillow_heif = pytest.importorskip("pillow_heif")
    monkeypatch.setattr(pillow_heif.options, "SAVE_HDR_TO_12_BIT", bits == 12)
    top = (1 << bits) - 1
    y, x = np.mgrid[0:H, 0:W]
    levels = np.stack([x * (top // 20), y * (top // 12), (x + y) * (top // 32)], axis=2).astype(np.uint16)
    src = tmp_path / "deep.heic"
    try:
        heif = pillow_heif.from_bytes(mode="RGB;16", size=(W, H), data=(levels << (16 - bits)).tobytes())
        heif.save(src, quality=-1, chroma=444, matrix_coefficients=0)  # lossless RGB
    except Exception as err:  # libheif built without a 10/12-bit HEVC encoder
        pytest.skip(f"no {bits}-bit HEIC encoder available: {err}")
    photo = read_image(src)
    assert photo.format == "HEIF" and photo.bit_depth == 16 and photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, np.rint(levels * (65535 / top)).astype(np.uint16))
    assert np.any(photo.pixels % 257 != 0)  # finer than 8-bit levels scaled up
    assert read_image(write_image(tmp_path / "out.png", photo)).bit_depth == 16


def test_avif_read(tmp_path):
    src = tmp_path / "in.avif"
    try:
        Image.fromarray(smooth8()).save(src, quality=95)
    except Exception as err:
        pytest.skip(f"no AVIF encoder available: {err}")
    photo = read_image(src)
    assert photo.format == "AVIF" and photo.pixels.shape == (H, W, 3)
    assert np.abs(photo.pixels.astype(int) - smooth8()).mean() < 8


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_heic_avif_orientation(tmp_path, suffix):
    """HEIF stores rotation in the container (pillow-heif applies it and resets EXIF to 1);
    Pillow's AVIF reports it as EXIF orientation. Either way the photo comes out upright."""
    array = smooth8()
    array[:4, :4] = (255, 0, 0)
    src = tmp_path / f"rot{suffix}"
    try:
        Image.fromarray(array).save(src, quality=95, exif=exif_with(6).tobytes())
    except Exception as err:
        pytest.skip(f"no {suffix} encoder available: {err}")
    with Image.open(src) as im:
        expected = np.array(ImageOps.exif_transpose(im))
    photo = read_image(src)
    assert photo.pixels.shape == (W, H, 3)
    np.testing.assert_array_equal(photo.pixels, expected)
    red = photo.pixels[..., 0].astype(int) - photo.pixels[..., 1]
    assert red[:4, -4:].mean() > 150  # top-left corner went to the top-right


# --------------------------------------------------------------------------- refusing bad files

def test_truncated_files(tmp_path):
    for name, options in (("cut.jpg", {"quality": 95}), ("cut.png", {}), ("cut.webp", {})):
        full = tmp_path / f"full_{name}"
        Image.fromarray(rgb8()).save(full, **options)
        cut = tmp_path / name
        cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
        with pytest.raises(ImageReadError, match="truncated or corrupt") as err:
            read_image(cut)
        assert_one_line_error(err, cut)


def test_truncated_16bit_files(tmp_path):
    png = _png16(tmp_path)
    tif = tmp_path / "full16.tif"
    tifffile.imwrite(tif, rgb16(), photometric="rgb")
    for full in (png, tif):
        cut = tmp_path / f"cut_{full.name}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(ImageReadError, match="truncated or corrupt") as err:
            read_image(cut)
        assert_one_line_error(err, cut)


def test_zero_byte_missing_and_folder(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty") as err:
        read_image(empty)
    assert_one_line_error(err, empty)

    with pytest.raises(ImageReadError, match="not found") as err:
        read_image(tmp_path / "missing.png")
    assert_one_line_error(err, tmp_path / "missing.png")

    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(ImageReadError, match="folder"):
        read_image(folder)


def test_text_file_named_png(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a picture\n" * 5)
    with pytest.raises(ImageReadError, match="not an image") as err:
        read_image(fake)
    assert_one_line_error(err, fake)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_huge_png_header_refused_before_decoding(tmp_path, bit_depth):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(100_000, 100_000, bit_depth))  # 10 gigapixels, no pixel data
    with pytest.raises(ImageReadError, match="limit") as err:
        read_image(bomb)
    assert_one_line_error(err, bomb)
    assert "DOS attack" not in str(err.value)  # our message, not Pillow's
    assert "image of 10,000,000,000 pixels is above the limit" in str(err.value)  # and its size


def test_max_pixels_parameter(tmp_path):
    header_only = tmp_path / "header.png"
    header_only.write_bytes(png_bytes(100, 100))  # no pixel data: decoding would fail differently
    with pytest.raises(ImageReadError, match="100x100 = 10,000 pixels is above the limit of 5,000") as err:
        read_image(header_only, max_pixels=5_000)
    assert_one_line_error(err, header_only)

    tif = tmp_path / "big16.tif"
    tifffile.imwrite(tif, rgb16(), photometric="rgb")
    with pytest.raises(ImageReadError, match="limit"):
        read_image(tif, max_pixels=100)
    assert read_image(tif, max_pixels=H * W).pixels.shape == (H, W, 3)


def test_pillow_bomb_limit_does_not_interfere(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow alone would refuse 240 pixels
    src = _saved(tmp_path / "in.png", rgb8())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning either
        assert read_image(src).pixels.shape == (H, W, 3)

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(1000, 1000))
    with pytest.raises(ImageReadError, match="limit") as err:  # our message even if Pillow refuses first
        read_image(bomb, max_pixels=40)
    assert_one_line_error(err, bomb)


def test_error_types_are_one_line():
    err = ImageReadError("dir/photo.jpg", "line one\nline two")
    assert str(err) == "dir/photo.jpg: line one line two"
    assert str(ImageWriteError("x.png", "bad")) == "x.png: bad"


# --------------------------------------------------------------------------- paths and writing rules

def test_non_ascii_paths(tmp_path):
    folder = tmp_path / "ночные снимки"
    folder.mkdir()
    src = _saved(folder / "фото ночь.png", rgb8())
    out = write_image(folder / "фото ночь — итог.jpg", read_image(src))
    assert read_image(out).pixels.shape == (H, W, 3)

    png16 = folder / "фото 16.png"
    write_png16(png16, rgb16())
    out16 = write_image(folder / "итог 16.tif", read_image(png16))
    np.testing.assert_array_equal(read_image(out16).pixels, rgb16())
    np.testing.assert_array_equal(read_image(write_image(folder / "итог 16.png", read_image(out16))).pixels, rgb16())


def test_write_refuses_to_overwrite(tmp_path):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(ImageWriteError, match="exists") as err:
        write_image(target, photo)
    assert_one_line_error(err, target)
    assert target.read_bytes() == b"precious"

    write_image(target, photo, overwrite=True)
    np.testing.assert_array_equal(read_image(target).pixels, rgb8())
    assert listdir(tmp_path) == ["in.png", "out.png"]


def test_failed_encode_leaves_no_temp_file(tmp_path, monkeypatch):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageWriteError, match="disk full") as err:
        write_image(tmp_path / "out.png", photo)
    assert_one_line_error(err, tmp_path / "out.png")
    assert listdir(tmp_path) == ["in.png"]


def test_failed_rename_leaves_no_temp_file_and_keeps_old_file(tmp_path, monkeypatch):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(imageio.os, "replace", broken_replace)
    with pytest.raises(ImageWriteError, match="read-only"):
        write_image(target, photo, overwrite=True)
    assert listdir(tmp_path) == ["in.png", "out.png"]
    assert target.read_bytes() == b"old"


def test_write_errors(tmp_path):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    with pytest.raises(ImageWriteError, match="cannot write '.gif'"):
        write_image(tmp_path / "out.gif", photo)
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_image(tmp_path / "no" / "out.png", photo)
    photo.pixels = photo.pixels[..., 0]
    with pytest.raises(ImageWriteError, match="H x W x 3"):
        write_image(tmp_path / "out.png", photo)
    assert listdir(tmp_path) == ["in.png"]


def test_atomic_write_uses_hidden_temp_name(tmp_path, monkeypatch):
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    seen = []
    real_replace = imageio.os.replace

    def spy(src, dst):
        seen.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(imageio.os, "replace", spy)
    out = write_image(tmp_path / "out.webp", photo)
    (temp, final), = seen
    assert final == out
    assert temp.parent == tmp_path and temp.name.startswith(".") and temp.name.endswith(".tmp.webp")
    assert not is_image_path(temp)


@pytest.mark.parametrize("length", [200, 241, 242, 250, 255])
def test_names_up_to_the_file_system_limit_can_be_written(tmp_path, monkeypatch, length):
    if not hasattr(os, "pathconf") or os.pathconf(tmp_path, "PC_NAME_MAX") != 255:
        pytest.skip("this file system does not limit names to 255 bytes")
    photo = read_image(_saved(tmp_path / "in.png", rgb8()))
    seen = []
    real_replace = imageio.os.replace

    def spy(src, dst):
        seen.append(src)
        real_replace(src, dst)

    monkeypatch.setattr(imageio.os, "replace", spy)
    name = "é" * 10 + "n" * (length - 20 - 4) + ".png"  # "é" is 2 bytes in UTF-8
    assert len(name.encode()) == length
    out = write_image(tmp_path / name, photo)
    np.testing.assert_array_equal(read_image(out).pixels, rgb8())
    (temp,) = seen
    assert temp.name.startswith(".") and temp.name.endswith(".tmp.png") and not is_image_path(temp)
    assert len(temp.name.encode()) <= 255
    if length <= 200:  # still fits with the final name and the writer's tag in it
        assert temp.name.startswith("." + out.stem)
    assert ".enhance-" in temp.name  # a writer's tag always: a kill -9's leftover can be cleaned
    assert listdir(tmp_path) == sorted(["in.png", name])


def test_output_extension_and_is_image_path(tmp_path):
    assert output_extension("a/photo.JPG", "same") == ".JPG"
    assert output_extension("photo.tiff", "same") == ".tiff"
    assert output_extension("photo.heic", "same") == ".png"
    assert output_extension("photo.avif", "same") == ".png"
    assert output_extension("photo.gif", "same") == ".png"
    assert output_extension("photo.heic", "jpg") == ".jpg"
    assert output_extension("photo.png", "tif") == ".tif"
    assert output_extension("photo.png", "webp") == ".webp"
    with pytest.raises(ValueError):
        output_extension("photo.png", "exr")

    assert all(is_image_path(f"x{ext}") for ext in SUPPORTED_EXTENSIONS)
    assert is_image_path(tmp_path / "PHOTO.HEIC")
    assert not is_image_path("notes.txt") and not is_image_path("._photo.jpg")
    assert DEFAULT_MAX_PIXELS == 200_000_000


def test_megapixels():
    photo = Photo(np.zeros((1000, 2000, 3), np.uint8), None, False, 8, "PNG", None, None, [])
    assert photo.megapixels == 2.0


# --------------------------------------------------------------------------- animated images

def _frames():
    return [Image.fromarray(np.full((H, W, 3), value, np.uint8)) for value in (10, 120, 240)]


@pytest.mark.parametrize("name, options", [
    ("anim.png", {}),  # APNG
    ("anim.webp", {"lossless": True}),
    ("anim.gif", {}),
])
def test_animated_image_first_frame_with_note(tmp_path, name, options):
    first, *rest = _frames()
    src = tmp_path / name
    first.save(src, save_all=True, append_images=rest, duration=100, loop=0, **options)
    photo = read_image(src)
    assert (photo.pixels == 10).all()
    assert any("3 frames" in note and "dropped" in note for note in photo.notes)
    out = write_image(tmp_path / "out.png", photo)
    with Image.open(out) as written:
        assert getattr(written, "n_frames", 1) == 1


@pytest.mark.parametrize("dtype, kind", [(np.uint32, "(32-bit integer TIFF)"),
                                         (np.int16, "(signed 16-bit integer TIFF)"),
                                         (np.int32, "(signed 32-bit integer TIFF)")])
def test_tiffs_of_wide_or_signed_integers_are_refused_by_name(tmp_path, dtype, kind):
    path = tmp_path / "counts.tif"
    tifffile.imwrite(path, np.zeros((6, 8, 3), dtype), photometric="rgb")
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert kind in str(err.value) and "unsigned 8- or 16-bit integer" in str(err.value)
    assert str(err.value).startswith(str(path))


# --- floating-point TIFF ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_tiff_is_read_as_float32_and_written_back_as_float32(tmp_path, dtype):
    rng = np.random.default_rng(5)
    pixels = rng.random((6, 8, 3)).astype(dtype)
    src = tmp_path / "export.tif"
    tifffile.imwrite(src, pixels, photometric="rgb")
    photo = read_image(src)
    assert photo.pixels.dtype == np.float32 and photo.bit_depth == 32 and not photo.notes
    np.testing.assert_array_equal(photo.pixels, pixels.astype(np.float32))
    out = write_image(tmp_path / "out.tif", photo)
    written = tifffile.imread(out)
    assert written.dtype == np.float32
    np.testing.assert_array_equal(written, pixels.astype(np.float32))


def test_float_tiff_gray_alpha_and_min_is_white(tmp_path):
    rng = np.random.default_rng(6)
    gray_alpha = rng.random((6, 8, 2)).astype(np.float32)
    src = tmp_path / "ga.tif"
    tifffile.imwrite(src, gray_alpha, photometric="minisblack", extrasamples=["unassalpha"])
    photo = read_image(src)
    assert photo.grayscale and photo.bit_depth == 32
    np.testing.assert_array_equal(photo.pixels[..., 1], gray_alpha[..., 0])
    np.testing.assert_array_equal(photo.alpha, gray_alpha[..., 1])
    written = tifffile.imread(write_image(tmp_path / "ga-out.tif", photo))
    np.testing.assert_allclose(written, gray_alpha, atol=1e-6)  # luma of three equal channels

    inverted = tmp_path / "miniswhite.tif"
    tifffile.imwrite(inverted, gray_alpha[..., 0], photometric="miniswhite")
    np.testing.assert_allclose(read_image(inverted).pixels[..., 0], 1 - gray_alpha[..., 0], atol=1e-7)


def test_float_tiff_out_of_range_values_are_clipped_with_a_note(tmp_path):
    pixels = np.full((4, 5, 3), 0.25, np.float32)
    pixels[0, 0] = [2.0, -0.5, np.nan]  # HDR highlight, negative, not a number: 3 of 60 values
    src = tmp_path / "hdr.tif"
    tifffile.imwrite(src, pixels, photometric="rgb")
    photo = read_image(src)
    assert photo.pixels[0, 0].tolist() == [1.0, 0.0, 0.0]
    assert (photo.pixels[1:] == 0.25).all()
    assert photo.notes == ["5% of the floating-point values were outside 0..1 (or not numbers) and were clipped to 0..1"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])  # read by Pillow, tifffile, tifffile
def test_bigtiff_exif(tmp_path, dtype):
    pixels = {np.uint8: rgb8(), np.uint16: rgb16(), np.float32: rgb16() / np.float32(65535)}[dtype]
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, pixels, photometric="rgb", bigtiff=True)
    photo = read_image(plain)
    assert photo.notes == []  # no EXIF-like tags beyond tifffile's own: nothing to report
    np.testing.assert_array_equal(photo.pixels, pixels)

    rotated = tmp_path / "rotated.tif"
    tifffile.imwrite(rotated, pixels, photometric="rgb", bigtiff=True,
                     extratags=[(271, "s", 0, "TestCam", True), (274, "H", 1, 6, True)])
    photo = read_image(rotated)
    assert photo.notes == []
    np.testing.assert_array_equal(photo.pixels, np.rot90(pixels, -1))
    tags = Image.Exif()
    tags.load(photo.exif)  # classic TIFF structure, as other files hold EXIF
    assert tags[0x010F] == "TestCam" and tags[0x0112] == 1
    with Image.open(write_image(tmp_path / "out.jpg", photo)) as written:
        assert written.getexif()[0x010F] == "TestCam"


def test_float_tiff_with_the_floating_point_predictor_is_read_through_opencv(tmp_path):
    """Deflate or LZW with predictor 3 is common in float exports; tifffile needs imagecodecs for it."""
    pixels = np.random.default_rng(7).random((6, 8, 3)).astype(np.float32)
    src = tmp_path / "predicted.tif"
    assert cv2.imwrite(str(src), pixels[..., ::-1], [cv2.IMWRITE_TIFF_COMPRESSION, 5,
                                                     cv2.IMWRITE_TIFF_PREDICTOR, 3])
    assert tifffile.TiffFile(src).pages[0].predictor == 3
    np.testing.assert_array_equal(read_image(src).pixels, pixels)


def test_float_photo_goes_to_png_as_16_bits_and_to_jpeg_as_8(tmp_path):
    pixels = np.linspace(0, 1, 6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    photo = Photo(pixels, None, False, 32, "TIFF", None, None)
    png = cv2.imread(str(write_image(tmp_path / "out.png", photo)), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert png.dtype == np.uint16
    np.testing.assert_array_equal(png, np.rint(pixels * 65535).astype(np.uint16))
    with Image.open(write_image(tmp_path / "out.jpg", photo)) as jpeg:
        assert jpeg.mode == "RGB"


def test_multipage_tiff_first_page_with_note(tmp_path):
    src = tmp_path / "pages.tif"
    first, *rest = _frames()
    first.save(src, save_all=True, append_images=rest)
    photo = read_image(src)
    assert (photo.pixels == 10).all() and any("3 frames" in note for note in photo.notes)

    src16 = tmp_path / "pages16.tif"
    tifffile.imwrite(src16, np.stack([rgb16(0), rgb16(1)]), photometric="rgb")
    photo = read_image(src16)
    np.testing.assert_array_equal(photo.pixels, rgb16(0))
    assert any("2 frames" in note for note in photo.notes)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])  # Pillow reads the 8-bit file, tifffile the 16-bit
def test_tiff_channels_beyond_colour_and_alpha_are_dropped_with_a_note(tmp_path, dtype):
    pixels = (np.arange(H * W * 5).reshape(H, W, 5) % 200).astype(dtype)
    src = tmp_path / "five.tif"
    tifffile.imwrite(src, pixels, photometric="rgb", extrasamples=["unassalpha", "unspecified"])
    photo = read_image(src)
    np.testing.assert_array_equal(photo.pixels, pixels[..., :3])
    np.testing.assert_array_equal(photo.alpha, pixels[..., 3])
    assert "1 extra channel (not colour or alpha) dropped" in photo.notes

    tifffile.imwrite(src, pixels[..., :4], photometric="rgb", extrasamples=["unspecified"])
    photo = read_image(src)
    assert photo.alpha is None and "1 extra channel (not colour or alpha) dropped" in photo.notes


def test_png_exif_after_pixel_data(tmp_path):
    """PNG allows the eXIf chunk after the image data; its orientation must still count."""
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb8())
    exif = exif_with(6).tobytes()[6:]
    data = png_bytes(W, H, 8, 2, raw)
    src = tmp_path / "late_exif.png"
    src.write_bytes(data[:-12] + png_chunk(b"eXIf", exif) + data[-12:])  # just before IEND
    np.testing.assert_array_equal(read_image(src).pixels, np.rot90(rgb8(), -1))


def test_doctests_pass():
    result = doctest.testmod(imageio)
    assert result.attempted > 0 and result.failed == 0

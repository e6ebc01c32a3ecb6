"""Reading and writing photos for saga-enhance.

`read_image` turns a file into a `Photo`: RGB pixels (uint8, uint16 or float32) with the
EXIF orientation already applied, plus what is needed to write the result back
faithfully (alpha, grayscale flag, bit depth, ICC profile, EXIF).
`write_image` writes a `Photo` atomically, choosing the format from the suffix.

What each format does
---------------------
========  ======================  ======================================================
format    read                    write
========  ======================  ======================================================
PNG       8/16-bit gray, RGB(A),   8/16-bit, gray, RGB(A), ICC + EXIF. 16-bit gray+alpha
          palette, colour key      is encoded here (colour type 4), as OpenCV cannot
          (tRNS) as alpha, APNG    encode 2-channel PNG.
JPEG      8-bit gray/RGB/CMYK      8-bit gray/RGB, ICC + EXIF, quality (default 95), the
                                   source JPEG's chroma subsampling (4:4:4, 4:2:2 or
                                   4:2:0; Pillow's 4:2:0 otherwise). Alpha is dropped,
                                   with a warning if it was not opaque; so is EXIF over
                                   64 KB, which a JPEG cannot hold.
WebP      8-bit, alpha, animated   8-bit RGB(A) (no grayscale in WebP), ICC + EXIF,
                                   lossy quality (default 90) or lossless (always for
                                   a lossless WebP source).
TIFF      8/16-bit, 16/32/64-bit   8/16-bit (deflate) and 32-bit float (uncompressed),
          float, gray, RGB(A),     gray, RGB(A), ICC + EXIF: the text tags, resolution
          CMYK, multi-page,        and the EXIF and GPS directories (tifffile writes no
          BigTIFF (premultiplied   EXIF; see tiff.py). Other first-directory tags
          alpha made straight);    are dropped, with a warning.
          32-bit and signed
          integers are
          refused, by name;
          other extra channels
          dropped, with a note
BMP       8-bit                    8-bit gray/RGB, no metadata; alpha dropped like JPEG.
HEIC/HEIF 8/10/12-bit (via          not written: output_extension("same") gives .png
          pillow-heif; 10/12-bit   (16-bit for 10/12-bit sources)
          as 16-bit)
AVIF      8-bit (Pillow >= 11.3    not written: output_extension("same") gives .png
          or pillow-avif-plugin)
GIF       first frame              not written
========  ======================  ======================================================

Decisions
---------
* 16-bit PNG is decoded with OpenCV and 16-bit TIFF with tifffile, because Pillow
  silently reduces 16-bit RGB to 8 bits. Metadata still comes from Pillow / the TIFF tags.
* Floating-point TIFFs are read as float32 and taken to be display-referred like every other
  file (gamma-encoded, 0 black, 1 white), which is what raw converters export. Values outside
  0..1 (a scene-linear HDR file) are clipped, with a note. Written back as float32 to TIFF,
  as 16 bits to PNG and as 8 bits elsewhere.
* Animated or multi-page images (GIF, APNG, animated WebP/AVIF, multi-page TIFF, HEIF
  bursts): the first frame is read and `Photo.notes` says how many frames were dropped.
  Written files are always single images.
* Grayscale sources are handed to the enhancer as RGB (three equal channels) and
  written back as grayscale (BT.601 luma) where the format has grayscale.
* CMYK is converted to RGB (through its ICC profile when it has one) with a note; the
  CMYK profile is not kept because it would be wrong for RGB pixels.
* Problems while reading raise `ImageReadError`; problems while writing raise
  `ImageWriteError`. Both print as one line: "<path>: <reason>". Information lost while
  writing (alpha or large EXIF in JPEG) is reported with `warnings.warn(..., ImageIOWarning)`.
* The pixel limit (`max_pixels`) is checked from the header before pixels are decoded.
* A written file's temporary name holds its writer's process id and machine, so that
  `remove_leftover_temps` can remove what a killed process (kill -9) left, and only that.
  JPEG and WebP sides over `MAX_SIDE` are refused by name before encoding.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import socket
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageCms, JpegImagePlugin, UnidentifiedImageError, features

from .tiff import TIFF_LAYOUT_TAGS, write_tiff

try:  # HEIC/HEIF decoding; optional so the rest still works without it
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - depends on the environment
    pass

if not features.check("avif"):  # Pillow >= 11.3 decodes AVIF itself; older ones need the plugin
    try:
        import pillow_avif  # noqa: F401  (importing it registers the AVIF plugin)
    except ImportError:  # pragma: no cover - depends on the environment
        pass


# Camera RAW formats: sensor data that needs a RAW converter (demosaicing, white balance). Many are
# TIFF inside, and reading one as a TIFF would give its small embedded preview, silently.
RAW_EXTENSIONS: tuple[str, ...] = (
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf", ".pef",
    ".srw", ".x3f", ".3fr", ".erf", ".kdc", ".dcr", ".mrw", ".mos", ".iiq", ".raw",
)
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif", ".gif",
)
# Other names of JPEG files (Chrome and Edge on Windows save many web photos as .jfif): read as
# JPEG, and written back as .jpg, since many programs and upload forms refuse these names.
JPEG_ALIASES: tuple[str, ...] = (".jfif", ".jpe")
WRITABLE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
DEFAULT_MAX_PIXELS = 200_000_000

# Format name for each writable suffix, and what each format can hold.
_WRITE_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
_HOLDS_16BIT = {"PNG", "TIFF"}
_HOLDS_FLOAT = {"TIFF"}
_HOLDS_ALPHA = {"PNG", "WEBP", "TIFF"}
_HOLDS_GRAY = {"PNG", "JPEG", "TIFF", "BMP"}
_HOLDS_METADATA = {"PNG", "JPEG", "WEBP", "TIFF"}

# The longest side each format can store, by suffix: libjpeg stops at 65,500 px (below the 65,535 its
# header could hold), WebP at 16,383. Over it the encoders fail with no useful message.
MAX_SIDE: dict[str, int] = {".jpg": 65_500, ".jpeg": 65_500, ".webp": 16_383}

_OUTPUT_CHOICES = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp",
                   "tif": ".tif", "tiff": ".tif", "bmp": ".bmp"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_ORIENTATION = 0x0112  # EXIF tag 274



class ImageReadError(Exception):
    """A file could not be read as an image. str() is one line: '<path>: <reason>'."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = _one_line(reason)
        super().__init__(f"{path}: {self.reason}")


class ImageWriteError(Exception):
    """An image could not be written. str() is one line: '<path>: <reason>'."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = _one_line(reason)
        super().__init__(f"{path}: {self.reason}")


class ImageIOWarning(UserWarning):
    """Something was lost while writing (for example alpha in a JPEG)."""


@dataclass
class Photo:
    pixels: np.ndarray          # H x W x 3 RGB, uint8, uint16 or float32 in 0..1; EXIF orientation applied
    alpha: np.ndarray | None    # H x W, same dtype as pixels, or None
    grayscale: bool             # source was single-channel: write back as grayscale
    bit_depth: int              # 8, 16, or 32 for floating point
    format: str                 # source format name, e.g. "PNG", "JPEG", "HEIF"
    icc_profile: bytes | None
    exif: bytes | None          # with orientation reset to 1 (it was applied to pixels)
    notes: list[str] = field(default_factory=list)  # human-readable warnings
    # A JPEG source's chroma subsampling as Pillow numbers it (0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0),
    # kept when the result is written as JPEG: a 4:4:4 original should not lose colour detail.
    jpeg_subsampling: int | None = None
    webp_lossless: bool = False  # a lossless WebP source stays lossless when written as WebP

    @property
    def megapixels(self) -> float:
        height, width = self.pixels.shape[:2]
        return height * width / 1_000_000


# --------------------------------------------------------------------------- paths

def is_image_path(path) -> bool:
    """True for a file name this tool reads. Hidden files (name starting with '.')
    never count: that skips our own temporary files and macOS '._name.jpg' litter."""
    path = Path(path)
    return not path.name.startswith(".") and path.suffix.lower() in SUPPORTED_EXTENSIONS


def output_extension(input_path, ext: str) -> str:
    """The suffix to write for `input_path`, e.g. ".png".

    `ext` is "same", "png", "jpg", "webp", "tif" (also "jpeg", "tiff", "bmp").
    "same" keeps the input's suffix, spelled as the input spells it (".JPG" stays
    ".JPG"), when we can write that format; a JPEG named .jfif or .jpe becomes ".jpg";
    HEIC, HEIF, AVIF and anything else we cannot write become ".png", which is lossless
    and keeps alpha, ICC and EXIF.
    """
    choice = ext.lower().lstrip(".")
    if choice == "same":
        suffix = Path(input_path).suffix
        if suffix.lower() in JPEG_ALIASES:
            return ".jpg"
        return suffix if suffix.lower() in WRITABLE_EXTENSIONS else ".png"
    if choice not in _OUTPUT_CHOICES:
        raise ValueError(f"unknown output format {ext!r}: use same, png, jpg, webp or tif")
    return _OUTPUT_CHOICES[choice]


# --------------------------------------------------------------------------- reading

def read_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Read an image file into a `Photo`; raise `ImageReadError` if that is not possible."""
    path = Path(path)
    if path.suffix.lower() in RAW_EXTENSIONS:
        raise ImageReadError(path, "a camera RAW file, which this tool does not read (it needs a RAW converter); "
                                   "export it as a 16-bit TIFF or a JPEG first")
    head = _read_head(path)
    if head.startswith(_TIFF_SIGNATURES):
        photo = _read_deep_tiff(path, max_pixels)
        if photo is not None:
            return photo
        try:
            return _read_with_pillow(path, head, max_pixels)
        except ImageReadError:
            # Pillow reads 8-bit gray only alone or with one unassociated alpha, and no alpha after
            # another extra channel: it calls gray with premultiplied alpha or with a mask corrupt.
            photo = _read_deep_tiff(path, max_pixels, extra_8bit=True)
            if photo is None:
                raise
            return photo
    return _read_with_pillow(path, head, max_pixels)


def _read_head(path: Path) -> bytes:
    """First bytes of the file; refuses missing, empty and non-regular files."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImageReadError(path, "is a folder, not an image file")
        if size == 0:
            raise ImageReadError(path, "empty file (0 bytes)")
        with open(path, "rb") as f:
            return f.read(32)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot open file ({err.strerror or err})") from None


def _read_with_pillow(path: Path, head: bytes, max_pixels: int) -> Photo:
    if not head.startswith(_TIFF_SIGNATURES):
        return _read_pillow_source(path, path, head, max_pixels)
    # Pillow memory-maps an uncompressed L, P, RGBA or CMYK TIFF that it opened by name, and maps
    # it with the size already turned for EXIF orientation 5-8, which scrambles the pixels before
    # it "turns" them (Pillow 12.3). Handed an open file instead, it decodes the strips normally.
    try:
        file = open(path, "rb")
    except OSError as err:
        raise ImageReadError(path, f"cannot open file ({err.strerror or err})") from None
    with file:
        return _read_pillow_source(path, file, head, max_pixels)


def _read_pillow_source(path: Path, source, head: bytes, max_pixels: int) -> Photo:
    """Read `path` with Pillow from `source`: the path itself, or the file opened."""
    raise_pillow_pixel_limit(max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow only warns about sizes above our own limit, which we refuse below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError as err:
        raise ImageReadError(path, _too_large(None, None, max_pixels, err)) from None
    except UnidentifiedImageError:
        raise ImageReadError(path, _unidentified_reason(path, head)) from None
    except OSError as err:
        if err.errno is not None:  # the file system refused (permissions, I/O error)
            raise ImageReadError(path, f"cannot open file ({err.strerror})") from None
        # Some decoders (WebP, HEIF) start decoding at open and fail there on bad data.
        raise ImageReadError(path, f"truncated or corrupt image data ({err})") from None
    except RuntimeError as err:  # so does Pillow's AVIF decoder, with a RuntimeError
        raise ImageReadError(path, f"truncated or corrupt image data ({err})") from None

    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageReadError(path, _too_large(width, height, max_pixels))

        # MPO is a JPEG with extra preview/depth images: not frames worth mentioning.
        source_format = "JPEG" if image.format == "MPO" else image.format
        notes = []
        try:
            frames = getattr(image, "n_frames", 1) if image.format != "MPO" else 1
            if frames > 1:
                notes.append(f"{frames} frames/pages: only the first was read, the others were dropped")
            png16 = source_format == "PNG" and head[24] == 16  # IHDR bit depth
            deep_heif = source_format == "HEIF" and image.info.get("bit_depth", 8) > 8
            # Pillow turns a TIFF upright itself while loading it, and deletes its orientation tag.
            pillow_turns = source_format == "TIFF" and _ORIENTATION in image.tag_v2
            if not (png16 or deep_heif):
                image.load()  # before reading metadata: a PNG may keep its EXIF after the pixels
            icc = image.info.get("icc_profile") or None
            subsampling = JpegImagePlugin.get_sampling(image) if source_format == "JPEG" else -1
            # While the file is open: TIFF EXIF is read lazily from the file.
            exif_tags = _exif_or_none(image, notes)
            if pillow_turns and exif_tags is not None:
                exif_tags[_ORIENTATION] = 1  # already upright: written back as 1, as for other formats
            exif, orientation = _exif_and_orientation(exif_tags)

            if png16:
                # 16-bit PNG: Pillow would reduce RGB to 8 bits, OpenCV keeps all 16.
                # IHDR colour type (byte 25) 0 or 4 means grayscale (without/with alpha).
                color, alpha = _decode_16bit_png(path)
                gray = head[25] in (0, 4)
                if gray and color.ndim == 3:
                    color = color[..., 0]
                key = image.info.get("transparency")
                if gray and alpha is None and isinstance(key, int):
                    # A gray colour key (tRNS chunk), which OpenCV ignores; it applies an RGB one.
                    alpha = np.where(color == key, 0, 65535).astype(np.uint16)
            elif deep_heif:
                color, alpha = _decode_deep_heif(path, image.info["bit_depth"])
                gray = color.ndim == 2
            else:
                color, alpha, gray, icc = _pillow_to_arrays(path, image, icc, notes)
            if source_format == "TIFF":  # Pillow keeps at most one extra sample, as alpha, or X
                bands = len([b for b in image.getbands() if b != "X"])
                _note_dropped_channels(image.tag_v2.get(277, bands) - bands, notes)  # SamplesPerPixel
        except ImageReadError:
            raise
        except Image.DecompressionBombError as err:
            raise ImageReadError(path, _too_large(None, None, max_pixels, err)) from None
        except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, ... for bad data
            raise ImageReadError(path, f"truncated or corrupt image data ({err})") from None

    photo = _make_photo(color, alpha, gray, source_format, icc, exif, orientation, notes)
    photo.jpeg_subsampling = subsampling if subsampling in (0, 1, 2) else None  # -1: gray or unusual
    photo.webp_lossless = source_format == "WEBP" and _webp_is_lossless(path)
    return photo


def _webp_is_lossless(path: Path) -> bool:
    """Whether a WebP file's (first) image is stored lossless: a VP8L chunk, not a lossy VP8 one.

    RIFF chunks are a FourCC, a little-endian size and the data, padded to an even length. An
    extended file (VP8X) puts ICC and animation chunks first; an animation frame (ANMF) holds
    its image chunk after a 16-byte frame header.
    """
    try:
        with open(path, "rb") as f:
            f.seek(12)  # past "RIFF", the file size and "WEBP"
            while True:
                header = f.read(8)
                if len(header) < 8:
                    return False
                kind, size = header[:4], struct.unpack("<I", header[4:])[0]
                if kind in (b"VP8L", b"VP8 "):
                    return kind == b"VP8L"
                if kind == b"ANMF":
                    f.seek(16, os.SEEK_CUR)  # into the first frame: its chunks follow its header
                    continue
                f.seek(size + size % 2, os.SEEK_CUR)
    except OSError:
        return False


def _note_dropped_channels(count: int, notes: list[str]) -> None:
    """Note extra TIFF channels that are neither colour nor alpha (a mask, a depth plane), which
    neither the enhancer nor the output formats carry."""
    if count > 0:
        notes.append(f"{count} extra channel{'s' * (count > 1)} (not colour or alpha) dropped")


def _pillow_to_arrays(path, image, icc, notes):
    """(color, alpha, grayscale, icc) from a loaded Pillow image of any mode."""
    mode = image.mode
    if mode in ("1", "L", "RGB") and "transparency" in image.info:
        # A colour key (PNG tRNS chunk): pixels of that one colour become transparent.
        mode = "RGBA" if mode == "RGB" else "LA"
        image = image.convert(mode)
    elif mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode in ("P", "PA"):
        # Palette images become RGB, or RGBA when the palette has transparency.
        mode = "RGBA" if image.has_transparency_data else "RGB"
        image = image.convert(mode)
    elif mode in ("RGBa", "La"):  # premultiplied alpha: undo it
        mode = mode.replace("a", "A")
        image = image.convert(mode)
    elif mode == "CMYK":
        image, mode = _cmyk_to_rgb(image, icc, notes), "RGB"
        icc = None  # a CMYK profile would be wrong for the RGB pixels
    elif mode.startswith("I;16"):  # 16-bit grayscale from a format other than PNG/TIFF
        return np.array(image).astype(np.uint16), None, True, icc
    elif mode in ("I", "F"):
        raise ImageReadError(path, f"unsupported pixel format ({mode}: 32-bit)")
    elif mode not in ("L", "LA", "RGB", "RGBA"):  # YCbCr, LAB, HSV, RGBX, ...
        image, mode = image.convert("RGB"), "RGB"

    array = np.array(image)
    if mode == "L":
        return array, None, True, icc
    if mode == "LA":
        return array[..., 0], array[..., 1], True, icc
    if mode == "RGBA":
        return array[..., :3], array[..., 3], False, icc
    return array, None, False, icc


def _cmyk_to_rgb(image, icc, notes):
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.createProfile("sRGB")
            rgb = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
            notes.append("CMYK image converted to RGB using its ICC profile")
            return rgb
        except (ImageCms.PyCMSError, OSError):
            pass  # broken profile: fall back to the plain formula below
    notes.append("CMYK image converted to RGB without a colour profile; colours are approximate")
    return image.convert("RGB")


def _decode_16bit_png(path: Path):
    """(color, alpha) from a 16-bit PNG via OpenCV. np.fromfile keeps non-ASCII paths
    working (cv2.imread does not on every platform)."""
    data = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ImageReadError(path, "truncated or corrupt image data")
    if data.ndim == 2:
        return data, None
    # OpenCV returns BGR(A); we want RGB.
    color = data[..., 2::-1]
    alpha = data[..., 3] if data.shape[2] == 4 else None
    return color, alpha


def _decode_deep_heif(path: Path, bits: int):
    """(color, alpha) of a 10- or 12-bit HEIF's primary image as uint16, white at 65535.

    Pillow's HEIF plugin hands out 8 bits; pillow-heif's own reader keeps them all, left-aligned
    in 16 bits (white 65472 for 10 bits), so they are rescaled to the full 16-bit range.
    """
    heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)
    data = np.asarray(heif[heif.primary_index]) >> (16 - bits)
    top = (1 << bits) - 1
    data = ((data.astype(np.uint32) * 65535 + top // 2) // top).astype(np.uint16)
    if data.ndim == 2:
        return data, None
    return data[..., :3], (data[..., 3] if data.shape[2] == 4 else None)


def _read_deep_tiff(path: Path, max_pixels: int, extra_8bit: bool = False) -> Photo | None:
    """Read a 16-bit or floating-point TIFF with tifffile (Pillow reduces 16-bit RGB to 8 bits
    and cannot read floating-point RGB). Raises ImageReadError for 32-bit integer and signed
    16-bit TIFFs, which neither reads here; returns None for other TIFFs, which Pillow reads well.
    With `extra_8bit`, also reads 8-bit gray or RGB with extra channels, which Pillow failed on."""
    try:
        return _read_tiff_with_tifffile(path, max_pixels, extra_8bit)
    except ImageReadError:
        raise
    except Exception as err:  # a damaged directory: BitsPerSample differing by sample, a width of 0, ...
        raise ImageReadError(path, f"truncated or corrupt image data ({err})") from None


def _read_tiff_with_tifffile(path: Path, max_pixels: int, extra_8bit: bool) -> Photo | None:
    try:
        tif = tifffile.TiffFile(path)
    except Exception:
        return None  # not parseable here; let Pillow try and report the problem
    with tif:
        try:
            page = tif.pages[0]
        except Exception:
            return None  # no readable first page: same, Pillow reports it
        floating = page.sampleformat == tifffile.SAMPLEFORMAT.IEEEFP
        unsigned_16 = page.bitspersample == 16 and page.sampleformat == tifffile.SAMPLEFORMAT.UINT
        if not floating and page.bitspersample >= 16 and not unsigned_16:
            # Pillow cannot read these either, and would call an RGB one corrupt.
            signed = "signed " if page.sampleformat == tifffile.SAMPLEFORMAT.INT else ""
            raise ImageReadError(path, f"unsupported pixel format ({signed}{page.bitspersample}-bit integer "
                                       "TIFF); save it as an unsigned 8- or 16-bit integer or a floating-point "
                                       "TIFF, or a PNG")
        extra_8bit = (extra_8bit and page.bitspersample == 8 and page.sampleformat == tifffile.SAMPLEFORMAT.UINT
                      and bool(page.extrasamples))
        if not (floating or unsigned_16 or extra_8bit):
            return None
        kind = f"{page.bitspersample}-bit {'floating-point' if floating else 'integer'} TIFF"
        if page.imagewidth * page.imagelength > max_pixels:
            raise ImageReadError(path, _too_large(page.imagewidth, page.imagelength, max_pixels))
        photometric = page.photometric
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE,
                               tifffile.PHOTOMETRIC.RGB):
            raise ImageReadError(path, f"unsupported {kind} colour type ({photometric.name})")
        notes = []
        if len(tif.pages) > 1:
            notes.append(f"{len(tif.pages)} frames/pages: only the first was read, the others were dropped")
        try:
            data = _decode_tiff_page(path, page, kind)
        except ImageReadError:
            raise
        except Exception as err:
            raise ImageReadError(path, f"truncated or corrupt image data ({err})") from None
        icc = page.tags.valueof(34675)  # InterColorProfile
        samples = page.samplesperpixel
        # The first extra channel that is (un)associated alpha; one before it may be a mask, say.
        alpha_at = next((i for i, extra in enumerate(page.extrasamples) if extra in (1, 2)), None)
        premultiplied = alpha_at is not None and page.extrasamples[alpha_at] == 1  # associated alpha

    if floating:
        data = _float_pixels_in_range(data, notes)
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        data = (1 if floating else np.iinfo(data.dtype).max) - data
    gray = photometric != tifffile.PHOTOMETRIC.RGB
    if data.ndim == 2:
        color, alpha = data, None
    else:
        color_samples = 1 if gray else 3
        color = data[..., 0] if gray else data[..., :3]
        has_alpha = alpha_at is not None and samples > color_samples + alpha_at
        alpha = data[..., color_samples + alpha_at] if has_alpha else None
        _note_dropped_channels(data.shape[-1] - color_samples - (alpha is not None), notes)
        if alpha is not None and premultiplied:
            color = _unpremultiply(color, alpha)  # the network and the writer work in straight colour

    exif, orientation = None, 1
    with open(path, "rb") as f:
        try:
            exif, orientation = _exif_and_orientation(_first_tiff_directory(f))
        except Exception:
            notes.append("EXIF data could not be read and was dropped")
    return _make_photo(color, alpha, gray, "TIFF", bytes(icc) if icc else None, exif, orientation, notes)


def _unpremultiply(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight colour from colour premultiplied by alpha (a TIFF's associated alpha), same dtype.

    Where alpha is 0 the colour is unknowable and stays 0; it is invisible either way.
    """
    white = float(_white(color.dtype))
    a = alpha.astype(np.float32) / white
    a = a[..., None] if color.ndim == 3 else a
    straight = np.divide(color.astype(np.float32), a, out=np.zeros(color.shape, np.float32), where=a > 0)
    if color.dtype == np.float32:
        return np.clip(straight, 0.0, 1.0)
    return np.clip(np.rint(straight), 0, white).astype(color.dtype)


def _first_tiff_directory(f) -> Image.Exif:
    """The first directory of a classic or BigTIFF file, parsed by Pillow as EXIF.

    Exif.load_from_fp reads a classic 8-byte header only, so it fails on every BigTIFF (whose
    header is 16 bytes, with an 8-byte offset), EXIF or not; for those the header is read here.
    """
    head = f.read(16)
    tags = Image.Exif()
    if head[:4] in (b"II+\x00", b"MM\x00+"):
        tags.bigtiff = True
        tags.endian = "<" if head[:2] == b"II" else ">"
        (first,) = struct.unpack(f"{tags.endian}Q", head[8:16])
        tags.load_from_fp(f, first)
    else:
        f.seek(0)
        tags.load_from_fp(f)
    return tags


def _decode_tiff_page(path: Path, page, kind: str):
    """Pixels of one 16-bit or floating-point TIFF page as H x W or H x W x samples, native byte order.

    tifffile handles every layout but, without the optional imagecodecs package, only
    some compressions (none, deflate, packbits, ...) and not the floating-point predictor.
    OpenCV's libtiff handles those (LZW is common) but misreads planar and gray+alpha files and
    reads no 16-bit floats. So: tifffile when it can, OpenCV for what it reads right, otherwise a
    clear error.
    """
    floating_predictor = page.predictor == tifffile.PREDICTOR.FLOATINGPOINT
    if page.compression in tifffile.TIFF.DECOMPRESSORS and not floating_predictor:
        data = page.asarray()
        if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and data.ndim == 3:
            data = np.moveaxis(data, 0, -1)  # samples, H, W -> H, W, samples
        return np.asarray(data, dtype=data.dtype.newbyteorder("="))
    opencv_reads = (page.planarconfig == tifffile.PLANARCONFIG.CONTIG and page.samplesperpixel in (1, 3, 4)
                    and page.dtype in (np.uint16, np.float32))
    if opencv_reads:
        encoded = np.fromfile(path, np.uint8)
        orientation = page.tags.get(_ORIENTATION)
        if orientation is not None and orientation.count == 1 and orientation.value != 1:
            # OpenCV's TIFF decoder turns the pixels by this tag itself, even with IMREAD_UNCHANGED,
            # and the caller turns them again: OpenCV is handed the file with the tag set to 1, so it
            # gives the pixels as stored, like tifffile does.
            one = np.array([1], dtype=page.parent.byteorder + orientation.dataformat[-1])
            encoded[orientation.valueoffset:orientation.valueoffset + one.nbytes] = one.view(np.uint8)
        data = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        if data is None or data.dtype != page.dtype:
            raise ImageReadError(path, "truncated or corrupt image data")
        if data.ndim == 3:  # BGR(A) -> RGB(A)
            data = np.concatenate([data[..., 2::-1], data[..., 3:]], axis=2)
        return data
    coding = page.compression.name + (" compression and the floating-point predictor" if floating_predictor
                                      else " compression")
    raise ImageReadError(path, f"{kind} with {coding} in this layout needs the 'imagecodecs' package")


def _float_pixels_in_range(data: np.ndarray, notes: list[str]) -> np.ndarray:
    """Floating-point samples as float32 in 0..1. Out-of-range values (a scene-linear HDR file,
    or negative values from a colour conversion) are clipped, and a note says how many."""
    data = data.astype(np.float32, copy=False)
    low, high = data.min(), data.max()  # NaN if any value is NaN, which fails the test below
    if not (low >= 0 and high <= 1):
        not_finite = ~np.isfinite(data)
        share = (not_finite | (data < 0) | (data > 1)).mean() * 100
        notes.append(f"{share:.2g}% of the floating-point values were outside 0..1"
                     f"{' (or not numbers)' if not_finite.any() else ''} and were clipped to 0..1")
        np.nan_to_num(data, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(data, 0.0, 1.0, out=data)
    return data


def _make_photo(color, alpha, gray, source_format, icc, exif, orientation, notes) -> Photo:
    """Apply the EXIF orientation, expand grayscale to RGB and package a Photo."""
    color = _apply_orientation(color, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    if gray:
        color = np.repeat(color[..., np.newaxis], 3, axis=2)
    return Photo(
        pixels=np.ascontiguousarray(color),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        grayscale=gray,
        bit_depth={np.dtype(np.uint16): 16, np.dtype(np.float32): 32}.get(color.dtype, 8),
        format=source_format,
        icc_profile=icc,
        exif=exif,
        notes=notes,
    )


def _apply_orientation(array: np.ndarray, orientation) -> np.ndarray:
    """Turn stored pixels upright, as EXIF orientation 1..8 asks (same as PIL.ImageOps.exif_transpose)."""
    transforms = {
        2: lambda a: a[:, ::-1],                 # mirrored left-right
        3: lambda a: a[::-1, ::-1],              # upside down
        4: lambda a: a[::-1],                    # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),           # transposed
        6: lambda a: np.rot90(a, -1),            # needs 90 degrees clockwise
        7: lambda a: np.rot90(a, -1)[::-1],      # transverse
        8: lambda a: np.rot90(a, 1),             # needs 90 degrees counter-clockwise
    }
    transform = transforms.get(orientation)
    return transform(array) if transform else array


def _exif_or_none(image, notes):
    """The image's EXIF as a Pillow Exif object, or None when it has none."""
    try:
        exif = image.getexif()
    except Exception:  # malformed EXIF must not make the photo unreadable
        notes.append("EXIF data could not be read and was dropped")
        return None
    return exif if len(exif) else None


def _exif_and_orientation(exif) -> tuple[bytes | None, int]:
    """(EXIF bytes ready for writing, the orientation they had) from a Pillow Exif or None."""
    if exif is None:
        return None, 1
    orientation = exif.get(_ORIENTATION, 1)
    return _clean_exif(exif), orientation


def _clean_exif(exif) -> bytes | None:
    """EXIF bytes for writing: orientation 1 (pixels are upright now), no TIFF layout tags."""
    for tag in TIFF_LAYOUT_TAGS & set(exif.keys()):
        del exif[tag]
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    if not len(exif):
        return None
    exif.bigtiff = False  # a BigTIFF source's tags: EXIF in any other file is classic TIFF
    try:
        return exif.tobytes()
    except Exception:  # unusual tag values Pillow cannot serialise: drop EXIF, keep the photo
        return None


def raise_pillow_pixel_limit(max_pixels: int) -> None:
    """Pillow has its own global decompression-bomb limit (about 89 Mpx warns, 179 Mpx
    refuses), lower than our default. Our `max_pixels` check is the guard that counts, so
    Pillow's limit is raised to it (never lowered), and whatever Pillow still refuses is
    reported with our message."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


def _too_large(width, height, max_pixels, pillow_error: Exception | None = None) -> str:
    if width:
        size = f"{width}x{height} = {width * height:,} pixels"
    else:  # Pillow refused at open; its message has the pixel count: "Image size (N pixels) exceeds ..."
        found = re.search(r"\((\d+) pixels\)", str(pillow_error or ""))
        size = f"image of {int(found.group(1)):,} pixels" if found else "image"
    return f"{size} is above the limit of {max_pixels:,} pixels (a guard against decompression bombs)"


def _unidentified_reason(path: Path, head: bytes) -> str:
    """Why Pillow did not recognise the file, as helpfully as the first bytes allow."""
    known = (_PNG_SIGNATURE, b"\xff\xd8\xff", b"GIF8", b"BM") + _TIFF_SIGNATURES
    if head.startswith(known) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "truncated or corrupt image data (header unreadable)"
    if head[4:8] == b"ftyp" and path.suffix.lower() not in Image.registered_extensions():
        return f"no decoder for {path.suffix} files is installed (pillow-heif / pillow-avif-plugin)"
    return "not an image file, or an unsupported image format"


def _one_line(text) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- writing

def write_image(path, photo: Photo, *, jpeg_quality: int = 95, webp_quality: int = 90,
                webp_lossless: bool = False, overwrite: bool = False) -> Path:
    """Write `photo` to `path`; the suffix picks the format. Returns the path written.

    The file keeps the photo's bit depth where the format can (TIFF holds floats, PNG/TIFF
    16 bits, JPEG/WebP/BMP get 8; a float photo goes to PNG as 16 bits), its grayscale-ness,
    alpha, ICC profile and EXIF (see the table in the module docstring). The write is atomic:
    a hidden temporary file in the same folder is renamed onto `path` only when complete, so a
    crash never leaves half a file. Raises ImageWriteError if `path` exists and `overwrite` is
    False, or on any failure.
    """
    path = Path(path)
    fmt = _WRITE_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise ImageWriteError(path, f"cannot write '{path.suffix}' files (use .png, .jpg, .webp, .tif or .bmp)")
    try:
        exists = path.exists() or path.is_symlink()  # a link to nothing is someone's too: the rename would replace it
    except OSError as err:  # e.g. a name longer than the file system allows
        raise ImageWriteError(path, f"cannot write a file of this name ({err.strerror or err})") from None
    if exists and not overwrite:
        raise ImageWriteError(path, "already exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise ImageWriteError(path, f"folder {path.parent} does not exist")

    pixels, alpha, icc, exif = _prepare_for_format(path, photo, fmt)

    temp = _temp_path(path)
    try:
        file = open(temp, "x+b")  # readable too: the TIFF writer patches its own directory
    except OSError as err:
        raise ImageWriteError(path, f"cannot create a file in {path.parent} ({err.strerror or err})") from None
    try:
        with file:
            if pixels.dtype == np.uint16 and fmt == "PNG":
                file.write(_encode_16bit_png(pixels, alpha, icc, exif))
            elif fmt == "TIFF":
                for lost in write_tiff(file, pixels, alpha, icc, exif):
                    warnings.warn(f"{path}: {lost}", ImageIOWarning, stacklevel=2)
            else:
                _save_with_pillow(file, fmt, pixels, alpha, icc, exif,
                                  jpeg_quality=jpeg_quality, jpeg_subsampling=photo.jpeg_subsampling,
                                  webp_quality=webp_quality,
                                  webp_lossless=webp_lossless or photo.webp_lossless)
            file.flush()
            os.fsync(file.fileno())  # data on disk before the rename makes it visible
        os.replace(temp, path)
    except BaseException as err:  # includes KeyboardInterrupt: never leave the temp file behind
        temp.unlink(missing_ok=True)
        if isinstance(err, Exception):
            raise ImageWriteError(path, f"could not write {fmt} file ({err})") from err
        raise
    return path


def _temp_path(path: Path) -> Path:
    """A new hidden name (batch runs skip it) in `path`'s folder, ending in the real suffix for
    tools that look. It starts with the final name when that fits the file system's limit on
    name length; otherwise it is short, so that any name that can be written can be written.

    It names its writer, `enhance-PID-MACHINE-`, so that a later run can remove it if a kill -9
    stopped that process before it could (remove_leftover_temps).
    """
    owned = f"enhance-{os.getpid()}-{_machine_tag()}-{secrets.token_hex(4)}"
    name = f".{path.stem}.{owned}.tmp{path.suffix}"
    if len(os.fsencode(name)) > _longest_name(path.parent):
        name = f".{owned}.tmp{path.suffix}"
    return path.with_name(name)


# _temp_path's names: with their writer's process id and machine tag, and without (as older versions
# wrote them). Only our suffixes: nothing else is ever taken for ours.
_OUR_SUFFIX = r"\.tmp\.(?i:png|jpe?g|webp|tiff?|bmp)"
# DOTALL: a stem may hold any character but "/", a newline included.
_TEMP_WITH_WRITER = re.compile(r"\.(?:.*\.)?enhance-(?P<pid>[0-9]+)-(?P<machine>[0-9a-f]{8})-[0-9a-f]{8}" + _OUR_SUFFIX,
                               re.DOTALL)
_TEMP_WITHOUT_WRITER = re.compile(r"\.(?:.*\.)?[0-9a-f]{8}" + _OUR_SUFFIX, re.DOTALL)


def _boot_scope() -> str | None:
    """This boot of this machine's kernel and this process-id namespace (Linux), or None elsewhere.

    A process id means something only within both. Without them (macOS, Windows, no /proc) the
    host name alone would be the machine's tag, and two machines of one name writing to one
    shared folder would take each other's files for a dead process's: nothing is removed then.
    """
    try:
        return (Path("/proc/sys/kernel/random/boot_id").read_text().strip() + "\n"
                + os.readlink("/proc/self/ns/pid"))
    except OSError:
        return None


def _machine_tag() -> str:
    """8 hex digits for the machine as it runs now: host name, boot and process-id namespace.

    Another machine writing to a shared disk, a container with its own process ids, or a run
    before a restart has another tag, so that its temporary files are never taken for a dead
    process's here (where _boot_scope can be read; elsewhere none is removed).
    """
    return hashlib.sha256(f"{socket.gethostname()}\n{_boot_scope()}".encode()).hexdigest()[:8]


def remove_leftover_temps(folder) -> tuple[list[Path], list[Path]]:
    """Remove the temporary files in `folder` that write_image's processes left when killed
    before they could (kill -9, the OOM killer). Returns (removed, unsure).

    Removed are only plain files by _temp_path's name whose writer, on this machine, is no
    longer running. Unsure are files by its name whose writer cannot be checked: another
    machine's (or container's, or a run's before a restart), any file where the machine cannot
    be told apart (not Linux), or a name without a writer; they are left alone, for the caller
    to name. Files of running writers are not listed.
    """
    removed, unsure = [], []
    machine = _machine_tag()
    judged_here = _boot_scope() is not None  # else a same-named machine's files would look like ours
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:  # a folder we cannot read holds nothing we can clean
        return removed, unsure
    for entry in entries:
        owned = _TEMP_WITH_WRITER.fullmatch(entry.name)
        if not (owned or _TEMP_WITHOUT_WRITER.fullmatch(entry.name)) or not entry.is_file(follow_symlinks=False):
            continue  # not ours: ours are plain files by our names
        path = Path(folder, entry.name)
        if not owned or owned["machine"] != machine or not judged_here:
            unsure.append(path)
            continue
        gone = _process_gone(int(owned["pid"]))
        if gone is None:
            unsure.append(path)
        elif gone:
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:  # another process cleaning the folder took it first
                pass
            except OSError:
                unsure.append(path)
    return removed, unsure


def _process_gone(pid: int) -> bool | None:
    """Whether process `pid` of this machine has ended; None when that cannot be told."""
    if os.name == "nt" or pid < 1:  # on Windows, os.kill would end the process, not test it
        return None
    if pid == os.getpid():
        return False  # this very process: a write of its own in progress
    try:
        os.kill(pid, 0)  # signal 0: no signal is sent, only the check that the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, run by another user
        return False
    except (OSError, OverflowError):
        return None
    return False


def _longest_name(folder: Path) -> int:
    """The longest file name, in bytes, that `folder`'s file system takes (255 on common ones)."""
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows) or no answer
        return 255
    return longest if longest > 0 else 255  # -1: no fixed limit


def side_limit_problem(path, height: int, width: int) -> str | None:
    """Why a photo of this size cannot be written at `path` (JPEG's and WebP's side limits, MAX_SIDE),
    or None. Callers with a long pass before the write (enhance run) ask before it."""
    suffix = Path(path).suffix
    limit = MAX_SIDE.get(suffix.lower())
    if limit and max(height, width) > limit:
        return f"{width}x{height} is too large for {suffix} (at most {limit:,} px a side)"
    return None


def _prepare_for_format(path: Path, photo: Photo, fmt: str):
    """Pixels (H x W x 3 RGB or H x W gray), alpha, ICC and EXIF as this format can hold them."""
    pixels = np.asarray(photo.pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageWriteError(path, f"pixels must be H x W x 3 (RGB), got shape {pixels.shape}")
    too_large = side_limit_problem(path, *pixels.shape[:2])
    if too_large:
        raise ImageWriteError(path, too_large)
    if photo.bit_depth == 32 and fmt in _HOLDS_FLOAT:
        dtype = np.float32
    elif photo.bit_depth >= 16 and fmt in _HOLDS_16BIT:
        dtype = np.uint16
    else:
        dtype = np.uint8
    pixels = _to_dtype(path, pixels, dtype)

    alpha = photo.alpha
    if alpha is not None:
        alpha = _to_dtype(path, np.asarray(alpha), dtype)
        if alpha.shape != pixels.shape[:2]:
            raise ImageWriteError(path, f"alpha is {alpha.shape}, pixels are {pixels.shape[:2]}")
        if fmt not in _HOLDS_ALPHA:
            if (alpha < _white(dtype)).any():  # only warn when transparency is really lost
                warnings.warn(f"{path}: {fmt} cannot store transparency; the alpha channel was dropped",
                              ImageIOWarning, stacklevel=3)
            alpha = None

    gray = photo.grayscale and fmt in _HOLDS_GRAY
    if gray:
        pixels = _luma(pixels)

    icc = exif = None
    if fmt in _HOLDS_METADATA:
        icc = photo.icc_profile if _icc_fits(photo.icc_profile, gray) else None
        exif = _exif_for_writing(photo.exif)
        if fmt == "JPEG" and exif and len(exif) > _JPEG_MAX_EXIF:
            warnings.warn(f"{path}: the EXIF data ({len(exif):,} bytes) is more than a JPEG can hold "
                          f"({_JPEG_MAX_EXIF:,} bytes) and was dropped", ImageIOWarning, stacklevel=3)
            exif = None
    return pixels, alpha, icc, exif


# A JPEG keeps EXIF in one APP1 segment, whose 2-byte length (65,535 at most) counts itself too;
# what remains holds the "Exif\0\0" prefix and the data, as in the bytes Pillow's Exif.tobytes gives.
_JPEG_MAX_EXIF = 65_533


def _to_dtype(path, array: np.ndarray, dtype) -> np.ndarray:
    try:
        return convert_pixels(array, dtype)
    except ValueError as err:
        raise ImageWriteError(path, str(err)) from None


def convert_pixels(array: np.ndarray, dtype) -> np.ndarray:
    """Pixels as uint8, uint16 or float32, white mapping to white: 255 <-> 65535 <-> 1.0.

    Integers are rounded to the nearest level. Floats are clipped to 0..1 on the way to
    another type; float32 pixels asked for as float32 come back as they are.

    >>> convert_pixels(np.array([0, 128, 255], np.uint8), np.uint16).tolist()
    [0, 32896, 65535]
    >>> convert_pixels(np.array([0.0, 0.5, 1.2]), np.uint8).tolist()
    [0, 128, 255]
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"pixels can be converted to uint8, uint16 or float32, not {dtype}")
    if array.dtype == dtype:
        return array
    if array.dtype == np.uint16 and dtype == np.uint8:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257)
    if array.dtype == np.uint8 and dtype == np.uint16:
        return array.astype(np.uint16) * 257
    if array.dtype in (np.uint8, np.uint16):
        scaled = array.astype(np.float32)
        scaled /= _white(array.dtype)  # in place: one photo-sized float array, not two
        return scaled
    if np.issubdtype(array.dtype, np.floating):
        clipped = np.clip(array, 0.0, 1.0)
        if dtype == np.float32:
            return clipped.astype(np.float32)
        return np.rint(clipped * _white(dtype)).astype(dtype)
    raise ValueError(f"pixels must be uint8, uint16 or float in 0..1, got {array.dtype}")


def _white(dtype) -> float:
    """The value of white: 255, 65535 or 1.0."""
    dtype = np.dtype(dtype)
    return np.iinfo(dtype).max if dtype.kind == "u" else 1.0


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Grayscale by BT.601 weights (as Pillow's convert("L")); equal channels come back unchanged."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if rgb.dtype == np.float32:
        return np.clip(rgb @ weights, 0.0, 1.0)
    gray = np.rint(rgb @ weights)
    return np.clip(gray, 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)


def _icc_fits(icc: bytes | None, gray: bool) -> bool:
    """An ICC profile describes one colour space (bytes 16-19 of its header); embedding a
    gray profile in RGB pixels, or the reverse, makes viewers show wrong colours."""
    if not icc or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if gray else b"RGB ")


def _exif_for_writing(exif: bytes | None) -> bytes | None:
    """The photo's EXIF with orientation 1, since the pixels are already upright."""
    if not exif:
        return None
    try:
        tags = Image.Exif()
        tags.load(exif)
        return _clean_exif(tags)
    except Exception:
        return None  # unparseable EXIF is dropped rather than copied blindly


def _save_with_pillow(file, fmt, pixels, alpha, icc, exif, *, jpeg_quality, jpeg_subsampling, webp_quality,
                      webp_lossless):
    image = Image.fromarray(pixels)  # "L" or "RGB"
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))  # -> "LA" or "RGBA"
    options = {}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    if fmt == "JPEG":
        options["quality"] = jpeg_quality
        if jpeg_subsampling is not None and pixels.ndim == 3:
            options["subsampling"] = jpeg_subsampling
    elif fmt == "WEBP":
        # exact: keep the colour under fully transparent pixels, as alpha passes through untouched
        options.update(quality=webp_quality, lossless=webp_lossless, exact=True)
    image.save(file, format=fmt, **options)


def _encode_16bit_png(pixels, alpha, icc, exif) -> bytes:
    """16-bit PNG via OpenCV (Pillow cannot write 16-bit RGB), or encoded here for gray + alpha,
    with ICC and EXIF chunks added by hand because OpenCV does not write them."""
    if pixels.ndim == 2 and alpha is not None:
        png = _encode_16bit_gray_alpha_png(pixels, alpha)
    else:
        if pixels.ndim == 3:
            pixels = pixels[..., ::-1]  # RGB -> BGR for OpenCV
        if alpha is not None:
            pixels = np.dstack([pixels, alpha])
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels))
        if not ok:
            raise RuntimeError("OpenCV could not encode the image")
        png = encoded.tobytes()

    extra = b""
    if icc:  # iCCP: profile name, NUL, compression method 0 (zlib), compressed profile
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:  # eXIf holds the TIFF-structured data without the JPEG-style "Exif\0\0" prefix
        extra += _png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
    # Both chunks must come before the image data; right after IHDR (which ends at byte 33) is safe.
    assert png[12:16] == b"IHDR"
    return png[:33] + extra + png[33:]


def _encode_16bit_gray_alpha_png(gray, alpha) -> bytes:
    """A 16-bit gray + alpha PNG (colour type 4), which OpenCV cannot write (it has no 2-channel
    PNG): every row gets filter type 0 (none), samples are big-endian, all of it zlib-compressed."""
    height, width = gray.shape
    rows = np.zeros((height, 1 + 4 * width), np.uint8)  # column 0 stays 0: the filter type byte
    rows[:, 1:] = np.dstack([gray, alpha]).astype(">u2").view(np.uint8).reshape(height, -1)
    data = zlib.compress(rows, 1)  # OpenCV's level for the other 16-bit PNGs: 5x faster than 6, as small
    header = struct.pack(">IIBBBBB", width, height, 16, 4, 0, 0, 0)  # depth, colour type, methods 0
    chunk = 1 << 20  # split the data into IDAT chunks of 1 MiB, well below PNG's 2 GiB chunk limit
    idat = b"".join(_png_chunk(b"IDAT", data[i:i + chunk]) for i in range(0, len(data), chunk))
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + idat + _png_chunk(b"IEND", b"")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")

"""Find paired low-light / ground-truth images in benchmark folders.

Recognised layouts (folder names are matched case-insensitively); the name in quotes is what
:attr:`PairSet.layout` reports:

- "LOL-v1 (<folder>)": a LOL-v1 folder holding ``low/`` and ``high/``: ``eval15/`` or
  ``our485/`` (LOL-v1's own split names), or a folder whose name contains "LOL", e.g.
  ``../shared/datasets/LOL-v1-train``.
- "low/high folders (<folder>)": any other folder holding ``low/`` and ``high/`` (a user's own
  pairs): the layout is LOL's, but the images need not be LOL's, so it is not called LOL-v1.
- "LOL-v1 (eval15; ...)": the LOL-v1 root, holding ``eval15/`` and/or ``our485/``.
- "LOL-v2-real (Test)" / "LOL-v2-synthetic (Test)": a split folder holding ``Low/`` and
  ``Normal/``, e.g. ``LOL-v2/Real_captured/Test``; the category folder
  (``LOL-v2/Real_captured``, holding ``Train/`` and ``Test/``); or the LOL-v2 root when it
  holds only one of ``Real_captured/`` and ``Synthetic/``.
- "Retinexformer-style (Test)": Retinexformer's copy of LOL-v1, a folder holding ``input/``
  (low light) and ``target/`` (ground truth), or its parent holding ``Train/`` and ``Test/``.
- "explicit folders": any two folders given as ``low_dir`` and ``high_dir``.
- "unpaired (no ground truth)": :func:`find_unpaired`, every image in one folder.

Choices made here, so that a benchmark number always means the same thing:

- When a folder holds both a training and a test split, the **test split is used** and the
  layout name says so ("...; test split chosen, our485/ also present"). Point at the training
  split's folder to evaluate that instead. Training asks for the other one with
  ``split="train"`` ("...; training split chosen, eval15/ also present"), and is refused a root
  that holds only a test split: training on a benchmark's test images must be asked for by
  pointing at that split's folder itself.
- A LOL-v2 root holding both ``Real_captured/`` and ``Synthetic/`` is an error: they are two
  separate benchmarks and are reported separately, so the user must point at one.
- Pairs are matched by file name without extension, never by listing order. LOL-v2 names its
  files ``low00001.png`` / ``normal00001.png``, and many datasets ``low_001.png`` /
  ``high_001.png``; a leading ``low`` / ``high`` / ``normal`` (with an optional ``_`` or ``-``)
  followed by a number is ignored when matching (so ``lowtide.png`` keeps its name).
- Nothing is skipped silently: images without a partner and pairs whose pixel sizes differ are
  listed in the returned :class:`PairSet` (see :meth:`PairSet.problems`).
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import tifffile
from PIL import Image

from .imageio import DEFAULT_MAX_PIXELS, raise_pillow_pixel_limit

__all__ = [
    "IMAGE_EXTENSIONS",
    "PairError",
    "ImagePair",
    "PairSet",
    "find_pairs",
    "find_unpaired",
    "check_sizes",
    "image_size",
    "read_stem_list",
    "pair_key",
]

IMAGE_EXTENSIONS = (".png", ".webp", ".jpg", ".jpeg", ".jfif", ".jpe", ".bmp", ".tif", ".tiff")

EXPECTED_LAYOUTS = (
    "low/+high/ (LOL-v1), eval15/ or our485/ holding those, "
    "Low/+Normal/ (LOL-v2), Real_captured/ or Synthetic/ with Train/ and Test/ holding those, "
    "input/+target/ (Retinexformer), Train/ and Test/ holding those, "
    "or a low-light folder and a ground-truth folder given apart (eval's --low and --high)"
)

# (low folder, high folder, dataset name) for a folder that holds one split.
_SPLIT_FOLDERS = (
    ("low", "high", "LOL-v1"),
    ("Low", "Normal", "LOL-v2"),
    ("input", "target", "Retinexformer-style"),
)
# Split folder names, test split first: that is the one evaluation picks when several exist.
_SPLIT_NAMES = ("eval15", "our485", "Test", "Train")
_TRAIN_SPLITS = ("our485", "Train")  # the ones training picks first
_LOL_V1_SPLITS = ("eval15", "our485")
SPLITS = ("test", "train")  # what find_pairs(split=...) takes
_LOLV2_CATEGORIES = {"real_captured": "LOL-v2-real", "synthetic": "LOL-v2-synthetic"}

# Only strip the prefix before a number: LOL-v2's "low00001" / "normal00001" and the common
# "low_001" / "high_001", not "lowtide" or "highway".
_PREFIX = re.compile(r"^(?:low|high|normal)[_-]?(?=\d)", re.IGNORECASE)

_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_ORIENTATION = 0x0112  # EXIF/TIFF tag 274
_QUARTER_TURNS = (5, 6, 7, 8)  # orientations that swap width and height


class PairError(Exception):
    """A folder could not be read as a set of image pairs; the message is one line for users."""


@dataclass
class ImagePair:
    stem: str
    low: Path
    high: Path | None  # None for unpaired (no-reference) mode


@dataclass
class PairSet:
    layout: str  # human-readable name of the recognised layout
    pairs: list[ImagePair]  # sorted by natural stem order (2 before 10)
    missing_high: list[Path]  # low images with no partner
    missing_low: list[Path]  # high images with no partner
    missing_stems: list[str]  # stems asked for via `stems` that did not give a pair
    size_mismatches: list[str] = field(default_factory=list)  # from check_sizes(): mismatched or unreadable

    def problems(self) -> list[str]:
        """One printable line per problem found; empty when every image has a partner."""
        lines = [f"no ground truth for {p}" for p in self.missing_high]
        lines += [f"no low-light image for {p}" for p in self.missing_low]
        lines += [f"requested stem not found as a pair: {s}" for s in self.missing_stems]
        lines += self.size_mismatches  # each line already names its stem and its problem
        return lines


def natural_key(text: str) -> list:
    """Sort key that puts "2" before "10": digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _natural_name(path: Path) -> list:
    return natural_key(path.name)


def pair_key(stem: str) -> str:
    """The name two partner files share: the stem without a low/high/normal prefix before a number."""
    return _PREFIX.sub("", stem).lower()


def read_stem_list(path: Path | str, allow_empty: bool = True) -> list[str]:
    """Read a split file: one stem per line; blank lines and ``#`` comments are ignored.

    A UTF-8 byte-order mark (Windows editors write one) is not part of the first stem. A file
    that is not UTF-8 text, or (allow_empty=False) one that holds no stem, raises
    :class:`PairError`; one that cannot be read raises OSError.
    """
    try:
        # utf-8-sig: without it a BOM would glue itself to the first stem, which then never matches.
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise PairError(
            f"{path}: not a UTF-8 text file (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "a stem list is one stem per line in UTF-8"
        ) from None
    stems = []
    for line in text.splitlines():
        stem = line.split("#", 1)[0].strip()
        if stem:
            stems.append(stem)
    if not stems and not allow_empty:  # else: "none of the 0 requested stems has a pair", which hides the cause
        raise PairError(f"{path}: holds no stems (one per line; blank lines and # comments are ignored)")
    return stems


def find_pairs(
    data: Path | str | None = None,
    *,
    low_dir: Path | str | None = None,
    high_dir: Path | str | None = None,
    stems: Iterable[str] | None = None,
    split: str = "test",
) -> PairSet:
    """Find low/ground-truth pairs in a benchmark folder (``data``) or in two explicit folders.

    ``split`` says which split a root holding both a training and a test split gives: "test"
    (for evaluation, the default) or "train" (for training). A folder holding one split is read
    as it is either way, except that ``split="train"`` refuses a root whose only split is a test
    split.

    ``stems`` restricts the result to those stems (e.g. a validation split from
    :func:`read_stem_list`); requested stems without a pair end up in ``missing_stems``,
    and the missing_* lists then only mention requested stems.

    Raises :class:`PairError` for a folder that does not exist, is empty, has no recognised
    layout, or yields no pair at all.
    """
    if data is not None and (low_dir is not None or high_dir is not None):
        raise PairError("give either a dataset folder or a low-light and a ground-truth folder (--low and --high), "
                        "not both")
    if data is None:
        if low_dir is None or high_dir is None:
            raise PairError("give a dataset folder, or both a low-light and a ground-truth folder (--low and --high)")
        low, high = _existing_dir(low_dir), _existing_dir(high_dir)
        layout = "explicit folders"
    else:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        layout, low, high = _recognise(_existing_dir(data), split)
    return _pair_folders(layout, low, high, stems)


def find_listed_pairs(data: Path | str, stem_list: Path | str | None = None) -> PairSet:
    """find_pairs over the stems of the file `stem_list` (every pair without one), for tools
    whose means must cover exactly what was asked: an empty or unreadable list, and a listed
    stem without a pair, raise :class:`PairError`."""
    stems = None
    if stem_list is not None:
        try:
            stems = read_stem_list(stem_list, allow_empty=False)
        except OSError as err:
            raise PairError(f"{stem_list}: cannot read the stem list ({err.strerror or err})") from None
    pairs = find_pairs(data, stems=stems)
    if pairs.missing_stems:
        raise PairError(f"{len(pairs.missing_stems)} stem(s) of {stem_list} have no pair in {data}: "
                        + " ".join(pairs.missing_stems[:5]))
    return pairs


def find_unpaired(folder: Path | str) -> PairSet:
    """Every image directly inside ``folder``, for no-reference evaluation (``high`` is None)."""
    folder = _existing_dir(folder)
    images = _images_by_key(folder, key=lambda stem: stem.lower())
    pairs = [ImagePair(path.stem, path, None) for path in images.values()]
    pairs.sort(key=lambda p: natural_key(p.stem))
    return PairSet("unpaired (no ground truth)", pairs, [], [], [])


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as read_image gives the picture: upright, after its EXIF orientation.

    Only headers are read, not the pixels, so that every pair can be checked before any is decoded.
    Raises OSError for a file whose header cannot be read.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] in _TIFF_SIGNATURES:
        size = _tiff_size(path)
        if size is not None:
            return size
    with warnings.catch_warnings():
        # Pillow's decompression-bomb guard is about decoding; read_image applies the project's own limit then.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            raise_pillow_pixel_limit(DEFAULT_MAX_PIXELS)  # as read_image does: the same photos pass both
            im = Image.open(path)
        except Image.DecompressionBombError as err:  # not an OSError: check_sizes would let it out as a traceback
            raise OSError(f"too large for a header check ({err})") from None
    with im:
        if im.format == "TIFF":
            # Pillow (12.3) reports a TIFF's size already turned by its orientation tag: start from the stored size.
            width, height = im.tag_v2.get(256, im.width), im.tag_v2.get(257, im.height)
            orientation = im.tag_v2.get(_ORIENTATION)
        else:
            width, height = im.size
            if im.format == "PNG" and not _png_metadata_after_pixels(path):
                # Pillow's PNG getexif() decodes every pixel to look for an eXIf chunk stored after them;
                # there is none here, so the metadata read with the header is all there is.
                exif = Image.Image.getexif(im)
            else:
                exif = im.getexif()  # the call read_image makes, so both find the same orientation
            orientation = exif.get(_ORIENTATION)
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def _tiff_size(path: Path) -> tuple[int, int] | None:
    """A TIFF's upright (width, height) from its first directory, or None if tifffile cannot parse it.

    tifffile, as read_image uses for 16-bit and floating-point TIFFs: Pillow cannot open float ones at all.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            width, height = page.imagewidth, page.imagelength
            orientation = page.tags.valueof(_ORIENTATION)
    except Exception:  # tifffile raises several kinds for a damaged file; Pillow then has its say
        return None
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def _png_metadata_after_pixels(path: Path) -> bool:
    """Whether a PNG holds a chunk that can carry EXIF or XMP (eXIf, tEXt, zTXt, iTXt) after its first
    pixel chunk (IDAT), found by walking the chunk headers: cheap, the pixel data is skipped."""
    seen_pixels = False
    with open(path, "rb") as f:
        f.seek(8)  # past the PNG signature
        while True:
            header = f.read(8)
            if len(header) < 8:
                return False
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IDAT":
                seen_pixels = True
            elif kind == b"IEND":
                return False
            elif seen_pixels and kind in (b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
                return True
            f.seek(length + 4, os.SEEK_CUR)  # the chunk's data and CRC


def check_sizes(
    pairs: Iterable[ImagePair],
    read_size: Callable[[Path], tuple[int, int]] = image_size,
) -> list[str]:
    """One line per pair whose low and high images differ in pixel size (or cannot be read)."""
    lines = []
    for pair in pairs:
        if pair.high is None:
            continue
        try:
            low_size, high_size = read_size(pair.low), read_size(pair.high)
        except OSError as err:  # PIL's UnidentifiedImageError is an OSError too
            lines.append(f"{pair.stem}: cannot read image size ({err})")
            continue
        if low_size != high_size:
            lines.append(
                f"{pair.stem}: size mismatch: low {low_size[0]}x{low_size[1]} ({pair.low}) vs "
                f"high {high_size[0]}x{high_size[1]} ({pair.high})"
            )
    return lines


# --- layout recognition --------------------------------------------------------------------


def _existing_dir(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise PairError(f"{path}: no such folder")
    if not path.is_dir():
        raise PairError(f"{path}: not a folder")
    return path


def _subdir(folder: Path, name: str) -> Path | None:
    """The sub-folder called ``name``, ignoring case (copies of the datasets vary)."""
    matches = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.lower() == name.lower())
    return matches[0] if matches else None


def _split_folders(folder: Path) -> tuple[str, Path, Path] | None:
    """(dataset name, low folder, high folder) if ``folder`` holds one split directly."""
    for low_name, high_name, dataset in _SPLIT_FOLDERS:
        low, high = _subdir(folder, low_name), _subdir(folder, high_name)
        if low is not None and high is not None:
            if dataset == "LOL-v2":
                dataset = _LOLV2_CATEGORIES.get(folder.parent.name.lower(), dataset)
            elif dataset == "LOL-v1" and not _is_lol_v1(folder):
                # low/ and high/ is also how people lay out their own pairs: a report must not
                # call their photos a LOL-v1 benchmark.
                dataset = "low/high folders"
            return dataset, low, high
    return None


def _is_lol_v1(folder: Path) -> bool:
    """Whether a folder holding low/ and high/ is LOL-v1's: one of its splits (eval15/, our485/),
    or a folder named after it (LOLdataset, LOL-v1-train)."""
    name = folder.name.lower()
    return name in _LOL_V1_SPLITS or "lol" in name


def _recognise(data: Path, split: str = "test") -> tuple[str, Path, Path]:
    found = _split_folders(data)
    if found is not None:
        dataset, low, high = found
        return f"{dataset} ({data.name})", low, high

    splits = []
    for name in _SPLIT_NAMES:
        sub = _subdir(data, name)
        if sub is not None and _split_folders(sub) is not None:
            splits.append(sub)
    if split == "train" and splits:
        trains = [sub for sub in splits if sub.name.lower() in {n.lower() for n in _TRAIN_SPLITS}]
        if not trains:
            # Silently training on a benchmark's test images would make every later score on it
            # meaningless: that has to be asked for by pointing at the split's own folder.
            raise PairError(
                f"{data}: holds only the test split {splits[0].name}/ and no training split "
                f"({'/ or '.join(_TRAIN_SPLITS)}/); to train on that test split anyway, "
                f"point at {splits[0]}"
            )
        splits = trains + [sub for sub in splits if sub not in trains]
    if splits:
        chosen = splits[0]
        dataset, low, high = _split_folders(chosen)
        layout = f"{dataset} ({chosen.name})"
        if len(splits) > 1:
            others = ", ".join(f"{s.name}/" for s in splits[1:])
            which = "training" if split == "train" else "test"
            layout = f"{dataset} ({chosen.name}; {which} split chosen, {others} also present)"
        return layout, low, high

    categories = [c for name in ("Real_captured", "Synthetic") if (c := _subdir(data, name))]
    if len(categories) > 1:
        raise PairError(
            f"{data}: holds both LOL-v2 Real_captured/ and Synthetic/, which are separate "
            "benchmarks; point at one of them"
        )
    if categories:
        return _recognise(categories[0], split)

    if not any(data.iterdir()):
        raise PairError(f"{data}: folder is empty; expected {EXPECTED_LAYOUTS}")
    hint = ""
    images = [p for p in data.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if images:
        hint = " (it holds images directly, not folders of pairs)"  # eval adds its --no-reference
        if any(_PREFIX.match(p.stem) for p in images):
            # low_001.png beside high_001.png: one folder of each is all that is missing.
            hint = (" (it holds images directly, not folders of pairs: move the low_ images into low/ and the "
                    "high_ ones into high/)")
    raise PairError(f"{data}: no recognised layout{hint}; expected {EXPECTED_LAYOUTS}")


# --- matching --------------------------------------------------------------------------------


def _images_by_key(folder: Path, key: Callable[[str], str] = pair_key) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for path in folder.iterdir():
        # Names starting with "." include macOS "._1.png" metadata files found in dataset zips.
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        k = key(path.stem)
        if k in images:
            raise PairError(
                f"{folder}: {images[k].name} and {path.name} have the same name; keep only one"
            )
        images[k] = path
    if not images:
        raise PairError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def _pair_folders(
    layout: str, low_dir: Path, high_dir: Path, stems: Iterable[str] | None
) -> PairSet:
    lows, highs = _images_by_key(low_dir), _images_by_key(high_dir)

    keys = set(lows) | set(highs)
    missing_stems: list[str] = []
    if stems is not None:
        if isinstance(stems, str):  # a lone string would be read as one stem per character
            raise TypeError("stems must be a list of stems, not a single string")
        wanted = {pair_key(s.strip()): s.strip() for s in stems if s.strip()}
        missing_stems = [s for k, s in wanted.items() if not (k in lows and k in highs)]
        missing_stems.sort(key=natural_key)
        keys &= set(wanted)

    pairs = [
        ImagePair(_PREFIX.sub("", lows[k].stem), lows[k], highs[k])
        for k in keys
        if k in lows and k in highs
    ]
    pairs.sort(key=lambda p: natural_key(p.stem))
    missing_high = sorted((lows[k] for k in keys if k not in highs), key=_natural_name)
    missing_low = sorted((highs[k] for k in keys if k not in lows), key=_natural_name)

    if not pairs:
        if stems is not None:
            raise PairError(
                f"none of the {len(missing_stems)} requested stems has a pair "
                f"in {low_dir} and {high_dir}"
            )
        # Show a name from each side: "0001_low.png" against "0001_high.png" is the usual cause.
        low_example = min(lows.values(), key=_natural_name).name
        high_example = min(highs.values(), key=_natural_name).name
        raise PairError(
            f"{low_dir}: no file name matches one in {high_dir} "
            f"({len(lows)} and {len(highs)} images, e.g. {low_example} and {high_example}); "
            "partners need the same name, extension aside"
        )
    return PairSet(
        layout=layout,
        pairs=pairs,
        missing_high=missing_high,
        missing_low=missing_low,
        missing_stems=missing_stems,
        size_mismatches=check_sizes(pairs),
    )

"""Checks of a user's own training data that run on the image headers, before anything is decoded:
pairs of different sizes (all of them named), sizes as read_image gives them (EXIF orientation, 16-bit
and float TIFFs), low_/high_ name prefixes, and the memory the decoded pairs will take."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile

from enhance import train as train_module
from enhance.imageio import read_image
from enhance.pairs import ImagePair, PairError, check_sizes, find_pairs, image_size
from enhance.train import TrainingData, decoded_bytes
from test_train_own_data import config_file, own_data, train

ORIENTATION = 0x0112


def refuse_decoding(monkeypatch):
    """Make any decoding by training fail the test: the checks must come before it."""
    def decode(path, *args, **kwargs):
        raise AssertionError(f"{path} was decoded before the data checks ended")
    monkeypatch.setattr(train_module, "read_image", decode)


def test_every_pair_of_different_sizes_is_named_before_any_image_is_decoded(tmp_path, monkeypatch):
    # Only the first such pair was named, and only once every image before it had been decoded.
    data = own_data(tmp_path / "data", [(f"{i}.png", f"{i}.png") for i in range(1, 15)])
    for i in range(3, 15):  # twelve pairs whose ground truth is smaller than its low-light image
        Image.fromarray(np.zeros((30, 36, 3), np.uint8)).save(data / "high" / f"{i}.png")
    refuse_decoding(monkeypatch)
    with pytest.raises(SystemExit) as raised:
        train(config_file(tmp_path), data, tmp_path / "run")
    message = str(raised.value)
    assert message.startswith(f"bad training data: 12 pair(s) in {data} whose images differ in size")
    assert "\n" not in message
    for i in range(3, 13):  # the first ten, in natural order, with both sizes
        assert f"{i}: size mismatch: low 48x40 ({data / 'low' / f'{i}.png'}) vs high 36x30" in message
    assert "13:" not in message and "14:" not in message
    assert message.endswith(" (+2 more)")
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_an_unreadable_image_is_named_beside_a_size_mismatch(tmp_path, monkeypatch):
    data = own_data(tmp_path / "data", [(f"{i}.png", f"{i}.png") for i in range(1, 5)])
    (data / "low" / "2.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((30, 36, 3), np.uint8)).save(data / "high" / "4.png")
    refuse_decoding(monkeypatch)
    with pytest.raises(SystemExit, match=r"^bad training data: 2 pair\(s\) .*: 2: cannot read image size \(.*2\.png.*\); "
                                         r"4: size mismatch: low 48x40 .* vs high 36x30 .*\)$"):
        train(config_file(tmp_path), data, tmp_path / "run")


def sideways(path: Path, pixels: np.ndarray, orientation: int = 6) -> None:
    """Save `pixels` in the format `path` names, tagged with an EXIF orientation (6: turn it clockwise)."""
    if path.suffix == ".tif" and pixels.dtype != np.uint8:  # 16-bit and float TIFFs: tifffile writes those
        tifffile.imwrite(path, pixels, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    else:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        Image.fromarray(pixels).save(path, exif=exif.tobytes())


STORED = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)  # 8 wide, 6 high as stored


@pytest.mark.parametrize("name, pixels", [
    ("photo.jpg", STORED),
    ("photo.png", STORED),
    ("photo.webp", STORED),
    ("8-bit.tif", STORED),  # Pillow reports a TIFF's size already turned: it was turned twice
    ("16-bit.tif", STORED.astype(np.uint16) * 257),
    ("float.tif", STORED.astype(np.float32) / 255),  # Pillow cannot open it: it was "cannot read image size"
])
@pytest.mark.parametrize("orientation", [1, 6])
def test_the_header_size_is_the_size_read_image_decodes(tmp_path, name, pixels, orientation):
    path = tmp_path / name
    sideways(path, pixels, orientation)
    decoded = read_image(path).pixels
    assert image_size(path) == (decoded.shape[1], decoded.shape[0]) == ((6, 8) if orientation == 6 else (8, 6))


def test_a_rotated_tiff_beside_an_upright_partner_of_its_size_is_no_mismatch(tmp_path):
    low, high = tmp_path / "low" / "1.tif", tmp_path / "high" / "1.png"
    low.parent.mkdir()
    high.parent.mkdir()
    sideways(low, STORED)  # 6x8 once upright
    Image.fromarray(np.rot90(STORED, -1).copy()).save(high)  # 6x8 as stored
    assert find_pairs(tmp_path).problems() == []


def png_with_exif_after_the_pixels(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    payload = exif.tobytes()
    buffer = io.BytesIO()
    Image.fromarray(STORED).save(buffer, "PNG")
    data = buffer.getvalue()
    end = data.rindex(b"IEND") - 4  # before IEND's length field
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    return data[:end] + chunk + data[end:]


def test_a_png_size_is_read_without_decoding_its_pixels_unless_exif_follows_them(tmp_path, monkeypatch):
    plain, late = tmp_path / "plain.png", tmp_path / "late.png"
    Image.fromarray(STORED).save(plain)
    late.write_bytes(png_with_exif_after_the_pixels(6))
    assert read_image(late).pixels.shape[:2] == (8, 6)  # read_image turns it

    # Pillow's getexif() on a PNG decoded every pixel, looking for EXIF stored after them.
    def no_decoding(self):
        raise AssertionError("pixels decoded for a header check")
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert image_size(plain) == (8, 6)
    monkeypatch.undo()
    assert image_size(late) == (6, 8)  # here the EXIF is only found past the pixels: decoding is needed


def test_an_image_over_pillows_header_limit_is_a_line_not_a_traceback(tmp_path, monkeypatch):
    import enhance.pairs
    low, high = tmp_path / "low.png", tmp_path / "high.png"
    Image.fromarray(STORED).save(low)
    Image.fromarray(STORED).save(high)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 48 pixels is over twice that: Pillow refuses at open
    # Under the project's own limit, Pillow's is raised to it, as read_image does: the header is read.
    assert check_sizes([ImagePair("1", low, high)]) == []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    monkeypatch.setattr(enhance.pairs, "DEFAULT_MAX_PIXELS", 10)  # over both limits: Pillow refuses
    lines = check_sizes([ImagePair("1", low, high)])
    assert len(lines) == 1 and lines[0].startswith("1: cannot read image size (too large for a header check")


def test_low_and_high_prefixes_mark_partners(tmp_path):
    for folder, prefix in (("low", "low_"), ("high", "high_")):
        (tmp_path / folder).mkdir()
        for number in ("001", "002", "010"):
            Image.fromarray(STORED).save(tmp_path / folder / f"{prefix}{number}.png")
    pairs = find_pairs(tmp_path, stems=["high_002", "010"])  # a stem may be written with either prefix or none
    assert [pair.stem for pair in pairs.pairs] == ["002", "010"]
    assert pairs.problems() == []
    assert [pair.stem for pair in find_pairs(tmp_path).pairs] == ["001", "002", "010"]


def test_a_prefix_is_only_dropped_before_a_number(tmp_path):
    for folder in ("low", "high"):
        (tmp_path / folder).mkdir()
    Image.fromarray(STORED).save(tmp_path / "low" / "highway.png")
    Image.fromarray(STORED).save(tmp_path / "high" / "way.png")
    with pytest.raises(PairError, match="no file name matches"):
        find_pairs(tmp_path)


def test_prefixed_pairs_in_one_folder_are_told_to_go_into_low_and_high(tmp_path):
    for name in ("low_001.png", "high_001.png"):
        Image.fromarray(STORED).save(tmp_path / name)
    with pytest.raises(PairError, match=r"not folders of pairs: move the low_ images into low/ and the high_ ones"):
        find_pairs(tmp_path)


def test_prefixed_pairs_train_and_validate_by_their_shared_number(tmp_path):
    data = own_data(tmp_path / "data", [(f"low_{i}.png", f"high_{i}.png") for i in range(1, 4)])
    assert train(config_file(tmp_path, val_stems="1"), data, tmp_path / "run") == 0  # two steps
    assert (tmp_path / "run" / "best.safetensors").is_file()


def test_the_memory_of_the_decoded_pairs_is_what_training_data_holds(tmp_path):
    data = own_data(tmp_path / "data", [(f"{i}.png", f"{i}.png") for i in range(1, 4)], size=(20, 30))
    sideways(data / "low" / "3.png", np.zeros((30, 20, 3), np.uint8))  # stored 20x30, held 30x20
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(data / "high" / "3.png")
    pairs = find_pairs(data).pairs
    held = TrainingData(pairs, str(data))
    assert decoded_bytes(pairs) == sum(t.nbytes for t in held.low + held.high) == 3 * 2 * 3 * 20 * 30
    # 50 pairs of 12 MP photos, computed from their sizes alone: 72 MB a pair.
    assert decoded_bytes([pairs[0]] * 50, read_size=lambda path: (4000, 3000)) == 3_600_000_000


def test_the_memory_the_pairs_will_take_is_said_before_they_are_decoded(tmp_path, monkeypatch, capsys):
    data = own_data(tmp_path / "data", [(f"{i}.png", f"{i}.png") for i in range(1, 4)], size=(1000, 1500))

    def stop(*args):
        raise SystemExit("stopped before decoding")
    monkeypatch.setattr(train_module, "TrainingData", stop)
    with pytest.raises(SystemExit, match="stopped before decoding"):
        train(config_file(tmp_path), data, tmp_path / "run")
    # 3 pairs x 2 images x 3 bytes x 1.5 MP
    assert f"(2 training pairs, 1 validation pairs from {tmp_path / 'val.txt'}; 27 MB of memory to hold them " \
           "decoded)" in capsys.readouterr().err

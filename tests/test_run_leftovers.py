"""`enhance run`'s leftover shortcomings: format side limits before the network, links to nothing at
the output path, collision advice under -r, outputs that would be their own input, and the
temporary files a kill -9 leaves."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enhance import imageio
from enhance import run as run_module
from enhance.imageio import ImageWriteError, Photo, read_image, remove_leftover_temps, write_image
from test_run import ROOT, dark_rgb, run, weights, written  # noqa: F401 - weights is a fixture used by name
from test_run_batch import shots  # noqa: F401 - a fixture used by name


def failed_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("failed: ")]


def photo_of(height: int, width: int) -> Photo:
    return Photo(np.zeros((height, width, 3), np.uint8), None, False, 8, "PNG", None, None)


# --------------------------------------------------------------------------- 1: side limits

@pytest.mark.parametrize("suffix, fmt, limit", [(".jpg", "JPEG", 65_500), (".webp", "WEBP", 16_383)])
def test_the_side_limits_are_the_encoders_own(tmp_path, monkeypatch, suffix, fmt, limit):
    # One pixel high, so that the widest photo each format takes is cheap to write.
    assert read_image(write_image(tmp_path / f"widest{suffix}", photo_of(1, limit))).pixels.shape == (1, limit, 3)
    with pytest.raises(ImageWriteError, match=f"{limit + 1}x1 is too large for {suffix} "
                                              f"\\(at most {limit:,} px a side\\)"):
        write_image(tmp_path / f"too-wide{suffix}", photo_of(1, limit + 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"widest{suffix}"]  # no temporary file either
    # Without our check, the encoder itself refuses one pixel more (in its own, less helpful words).
    monkeypatch.setattr(imageio, "MAX_SIDE", {})
    with pytest.raises(ImageWriteError) as err:
        write_image(tmp_path / f"too-wide{suffix}", photo_of(1, limit + 1))
    assert "too large for" not in str(err.value)


def test_a_photo_too_wide_for_jpeg_fails_before_the_network_and_the_batch_goes_on(tmp_path, weights, monkeypatch,
                                                                                 capsys):
    Image.fromarray(np.full((1, 65_501, 3), 10, np.uint8)).save(tmp_path / "panorama.png")
    Image.fromarray(dark_rgb(24, 32)).save(tmp_path / "b.png")
    seen = []
    real_enhance = run_module.enhance_photo

    def enhance_photo(model, photo, **kwargs):
        seen.append(photo.pixels.shape)
        return real_enhance(model, photo, **kwargs)

    monkeypatch.setattr(run_module, "enhance_photo", enhance_photo)
    out = tmp_path / "out"
    assert run(tmp_path / "panorama.png", tmp_path / "b.png", "-o", out, "--weights", weights, "--ext", "jpg",
               "--tile", "0") == 1
    captured = capsys.readouterr()
    assert seen == [(24, 32, 3)]  # the panorama never reached the network
    assert failed_lines(captured.err) == [f"failed: {tmp_path / 'panorama.png'}: 65501x1 is too large for .jpg "
                                          "(at most 65,500 px a side); use --ext png or --ext tif"]
    assert "done 1, skipped 0, failed 1" in captured.out and written(out) == ["b.jpg"]


# --------------------------------------------------------------------------- 2: a link to nothing

def test_a_link_to_nothing_at_the_output_path_is_an_existing_output(tmp_path, weights, capsys):
    Image.fromarray(dark_rgb(24, 32)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "a.png"
    link.symlink_to(tmp_path / "archive" / "a.png")  # e.g. moved away, or annexed content not here
    assert run(tmp_path / "a.png", "-o", out, "--weights", weights, "--tile", "0") == 1
    assert failed_lines(capsys.readouterr().err) == [
        f"failed: {tmp_path / 'a.png'}: output {link} exists as a symbolic link to nothing (use --overwrite to "
        "replace the link, or --skip-existing)"]
    assert run(tmp_path / "a.png", "-o", out, "--weights", weights, "--tile", "0", "--skip-existing") == 0
    assert "done 0, skipped 1, failed 0" in capsys.readouterr().out
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "archive" / "a.png")  # untouched
    with pytest.raises(ImageWriteError, match="already exists"):  # the library refuses it too
        write_image(link, read_image(tmp_path / "a.png"))

    assert run(tmp_path / "a.png", "-o", out, "--weights", weights, "--tile", "0", "--overwrite") == 0
    assert not link.is_symlink() and read_image(link).pixels.shape == (24, 32, 3)
    assert not (tmp_path / "archive").exists()  # the link was replaced, nothing written where it pointed


# --------------------------------------------------------------------------- 3: collision advice

def test_collision_advice_under_r_does_not_suggest_r(shots, weights, tmp_path, capsys):
    # Named one by one, two a.jpg land on one name even with -r: -r mirrors only what lies below a named folder.
    assert run(shots / "a.jpg", shots / "day1" / "a.jpg", "-r", "-o", tmp_path / "out", "--weights", weights,
               "--tile", "0") == 1
    (line,) = failed_lines(capsys.readouterr().err)
    assert line == (f"failed: {shots / 'day1' / 'a.jpg'}: would write {tmp_path / 'out' / 'a.jpg'}, which "
                    f"{shots / 'a.jpg'} also writes (give them separate -o folders, or name one folder above both, "
                    f"such as {shots}, instead of each: -r mirrors only the subfolders below a folder or glob that "
                    "is named)")


# --------------------------------------------------------------------------- 4: outputs onto their own inputs

@pytest.mark.parametrize("resume", [["--skip-existing"], []])
def test_outputs_that_would_be_their_own_inputs_are_a_usage_error(tmp_path, weights, capsys, resume):
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(dark_rgb(24, 32)).save(shots / name)
    before = {p.name: p.read_bytes() for p in shots.iterdir()}
    # Once counted "skipped 2", as if the photos were their own earlier outputs.
    assert run(shots, "-o", shots, "--allow-input-folder", *resume, "--weights", weights) == 2
    assert capsys.readouterr().err == (f"enhance run: {shots}: every output would be its own input photo (same "
                                       "folder, name and format); add --suffix, e.g. --suffix _enhanced, or choose "
                                       "another --ext or -o\n")
    assert {p.name: p.read_bytes() for p in shots.iterdir()} == before


def test_a_photo_whose_output_would_be_itself_fails_by_name_and_the_batch_goes_on(tmp_path, weights, capsys):
    shots, other = tmp_path / "shots", tmp_path / "other"
    shots.mkdir()
    other.mkdir()
    Image.fromarray(dark_rgb(24, 32, 1)).save(shots / "a.png")
    Image.fromarray(dark_rgb(24, 32, 2)).save(other / "x.png")
    before = (shots / "a.png").read_bytes()
    assert run(shots, other / "x.png", "-o", shots, "--allow-input-folder", "--skip-existing",
               "--weights", weights, "--tile", "0") == 1
    captured = capsys.readouterr()
    assert "done 1, skipped 0, failed 1" in captured.out
    assert failed_lines(captured.err) == [f"failed: {shots / 'a.png'}: its output would be the photo itself "
                                          "(use --suffix, --ext or another -o)"]
    assert (shots / "a.png").read_bytes() == before and (shots / "x.png").is_file()


# --------------------------------------------------------------------------- 5: kill -9 leftovers

def _killed_while_writing(path: Path) -> None:
    """A process that write_image's temporary file outlives: killed (SIGKILL) in the middle of writing."""
    code = ("import os, signal, numpy as np\n"
            "from enhance import imageio\n"
            "def save(file, *args, **kwargs):\n"
            "    file.write(b'half a photo'); file.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            "imageio._save_with_pillow = save\n"
            f"imageio.write_image({str(path)!r}, imageio.Photo(np.zeros((4, 4, 3), np.uint8), None, False, 8, "
            "'JPEG', None, None))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr


def test_a_later_run_removes_what_a_kill_9_left_in_its_output_folder(tmp_path, weights, capsys):
    out = tmp_path / "out"
    out.mkdir()
    _killed_while_writing(out / "a.jpg")
    (leftover,) = out.iterdir()
    assert leftover.name.startswith(".a.enhance-") and leftover.name.endswith(".tmp.jpg")  # hidden, and says whose
    Image.fromarray(dark_rgb(24, 32)).save(tmp_path / "a.jpg")
    assert run(tmp_path / "a.jpg", "-o", out, "--weights", weights, "--tile", "0") == 0
    assert capsys.readouterr().err.splitlines() == [
        f"enhance run: removed 1 temporary file that a killed run of this machine left: {leftover}"]
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg"]


def test_only_our_temporary_files_of_dead_writers_here_are_removed(tmp_path):
    machine = imageio._machine_tag()
    elsewhere = "00000000" if machine != "00000000" else "11111111"
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    try:
        dead = tmp_path / f".a.enhance-{ended.pid}-{machine}-0123abcd.tmp.jpg"
        files = {
            "dead": dead,
            "dead, name near the limit": tmp_path / f".enhance-{ended.pid}-{machine}-0123abcd.tmp.PNG",
            "running": tmp_path / f".b.enhance-{running.pid}-{machine}-0123abcd.tmp.png",
            "ours": tmp_path / f".c.enhance-{os.getpid()}-{machine}-0123abcd.tmp.tif",
            "another machine": tmp_path / f".d.enhance-{ended.pid}-{elsewhere}-0123abcd.tmp.webp",
            "no writer": tmp_path / ".e.0123abcd.tmp.jpg",  # as older versions named them
            "not ours: suffix": tmp_path / f".f.enhance-{ended.pid}-{machine}-0123abcd.tmp.txt",
            "not ours: not hidden": tmp_path / f"g.enhance-{ended.pid}-{machine}-0123abcd.tmp.jpg",
            "not ours: a photo": tmp_path / "h.jpg",
        }
        for path in files.values():
            path.write_bytes(b"data")
        link = tmp_path / f".i.enhance-{ended.pid}-{machine}-0123abcd.tmp.jpg"  # our name, but not a plain file
        link.symlink_to(files["not ours: a photo"])

        removed, unsure = remove_leftover_temps(tmp_path)
        assert removed == sorted([files["dead"], files["dead, name near the limit"]])
        assert unsure == [files["another machine"], files["no writer"]]  # named, left alone
        left = {key for key, path in files.items() if path.exists()}
        assert left == set(files) - {"dead", "dead, name near the limit"}
        assert link.is_symlink() and files["not ours: a photo"].read_bytes() == b"data"
    finally:
        running.kill()
        running.wait()


def test_where_the_machine_cannot_be_told_apart_nothing_is_removed(tmp_path, monkeypatch):
    # Without Linux's boot id the tag is the host name alone: a same-named Mac on a shared folder
    # would have the same one, and its writer's process id means nothing here.
    monkeypatch.setattr(imageio, "_boot_scope", lambda: None)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    leftover = tmp_path / f".a.enhance-{ended.pid}-{imageio._machine_tag()}-0123abcd.tmp.jpg"
    leftover.write_bytes(b"data")
    assert remove_leftover_temps(tmp_path) == ([], [leftover]) and leftover.exists()


def test_collision_advice_never_names_a_disks_root():
    assert run_module._folder_above(Path("/shots/day1"), Path("/shots/day2")) == str(Path("/shots"))
    assert run_module._folder_above(Path("/a/x"), Path("/b/y")) is None  # "-r over /" is no advice


def test_temporary_names_carry_their_writer_and_are_recognised(tmp_path):
    if not hasattr(os, "pathconf") or os.pathconf(tmp_path, "PC_NAME_MAX") != 255:
        pytest.skip("this file system does not limit names to 255 bytes")
    # Near the limit the stem is left out: the short, owned form, which a later run can still clean.
    for name in ("a.jpg", "x" * 200 + ".png", "z" * 237 + ".png", "y" * 250 + ".tif"):
        temp = imageio._temp_path(tmp_path / name)
        assert len(os.fsencode(temp.name)) <= 255 and not imageio.is_image_path(temp)
        assert imageio._TEMP_WITH_WRITER.fullmatch(temp.name)["pid"] == str(os.getpid())


def test_a_jfif_jpeg_is_read_and_comes_back_as_a_jpg():
    # Windows browsers save web photos as .jfif: they were not found in folders and came back as PNG.
    from enhance.imageio import is_image_path, output_extension
    for name in ("a.jfif", "a.JFIF", "a.jpe"):
        assert is_image_path(Path(name)) and output_extension(name, "same") == ".jpg"
    assert output_extension("a.jfif", "png") == ".png"


def test_camera_raw_files_are_named_as_such(tmp_path, capsys):
    # A DNG is a TIFF inside: read as one, it gave its small embedded preview without a word.
    (tmp_path / "shots").mkdir()
    Image.fromarray(dark_rgb(24, 32)).save(tmp_path / "shots" / "IMG_0001.DNG", format="TIFF")
    with pytest.raises(imageio.ImageReadError, match="a camera RAW file, which this tool does not read"):
        read_image(tmp_path / "shots" / "IMG_0001.DNG")
    assert run(tmp_path / "shots", "-o", tmp_path / "out") == 2  # nothing else to enhance
    assert ("left out 1 file in a camera RAW format, which needs a RAW converter"
            in capsys.readouterr().err)

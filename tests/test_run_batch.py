"""`enhance run` over folders as a lab batches them: files named twice, globs with -r, links, Ctrl-C."""

from pathlib import Path

import pytest
from PIL import Image

from enhance.run import OUTPUT_MARK
from test_run import dark_rgb, run, weights, written  # noqa: F401 - weights is a fixture used by name


@pytest.fixture
def shots(tmp_path) -> Path:
    """shots/a.jpg, shots/b.png and shots/day1/a.jpg: two photos of one name, one folder apart."""
    folder = tmp_path / "shots"
    (folder / "day1").mkdir(parents=True)
    Image.fromarray(dark_rgb(24, 32, 1)).save(folder / "a.jpg", quality=95)
    Image.fromarray(dark_rgb(24, 32, 2)).save(folder / "b.png")
    Image.fromarray(dark_rgb(24, 32, 3)).save(folder / "day1" / "a.jpg", quality=95)
    return folder


def test_a_photo_named_alone_and_again_by_its_folder_keeps_its_subfolder_with_r(shots, weights, tmp_path, capsys):
    # Taken where it was named alone, day1/a.jpg went to OUT/a.jpg, and shots/a.jpg failed as writing it too.
    for order in ([shots / "day1" / "a.jpg", shots], [shots / "day1", shots]):
        out = tmp_path / f"out{len(order[0].parts)}"
        assert run(*order, "-r", "-o", out, "--weights", weights, "--tile", "0") == 0
        assert "done 3, skipped 0, failed 0" in capsys.readouterr().out
        assert written(out) == ["a.jpg", "b.png", "day1/a.jpg"]


def test_a_quoted_glob_with_r_enters_the_folders_it_matches(shots, weights, tmp_path, capsys):
    # As the shell's own expansion of shots/* would: day1/ is not left out unsaid.
    out = tmp_path / "out"
    assert run(str(shots / "*"), "-r", "-o", out, "--weights", weights, "--tile", "0") == 0
    assert written(out) == ["a.jpg", "b.png", "day1/a.jpg"]
    capsys.readouterr()
    assert run(str(shots / "*"), "-o", tmp_path / "flat", "--weights", weights, "--tile", "0") == 0
    assert written(tmp_path / "flat") == ["a.jpg", "b.png"]  # without -r, subfolders stay out


def test_a_glob_round_a_symlink_loop_writes_each_photo_once_where_it_lies(shots, weights, tmp_path, capsys):
    (shots / "loop").symlink_to(shots)  # ** goes round it some 40 times before the system says no
    Image.fromarray(dark_rgb(24, 32, 4)).save(shots / "night.png")  # sorts after shots/loop/...
    out = tmp_path / "out"
    assert run(str(shots / "**" / "*.png"), "-r", "-o", out, "--weights", weights, "--tile", "0") == 0
    assert "done 2, skipped 0, failed 0" in capsys.readouterr().out
    assert written(out) == ["b.png", "night.png"]  # not loop/loop/.../night.png


def test_a_link_to_nothing_in_a_folder_fails_by_name(shots, weights, tmp_path, capsys):
    (shots / "gone.png").symlink_to(tmp_path / "moved-away.png")
    (shots / "self.png").symlink_to(shots / "self.png")
    out = tmp_path / "out"
    assert run(shots, "-o", out, "--weights", weights, "--tile", "0") == 1
    captured = capsys.readouterr()
    assert "done 2, skipped 0, failed 2" in captured.out
    failed = [line for line in captured.err.splitlines() if line.startswith("failed: ")]
    assert [line.split(":")[1].strip() for line in failed] == [str(shots / "gone.png"), str(shots / "self.png")]
    assert written(out) == ["a.jpg", "b.png"]


def test_ctrl_c_before_the_first_photo_leaves_no_output_folder(shots, weights, tmp_path, monkeypatch, capsys):
    from enhance import run as run_module

    def interrupted(*args, **kwargs):  # Ctrl-C while the weights load (on a GPU, while CUDA starts)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "load_model", interrupted)
    assert run(shots / "b.png", "-o", tmp_path / "new" / "out", "--weights", weights) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # -o and the parent made for it are gone


def test_sigterm_while_the_model_loads_ends_like_ctrl_c(shots, weights, tmp_path, monkeypatch, capsys):
    import os
    import signal
    import time

    from enhance import run as run_module

    def terminated(*args, **kwargs):  # `kill` or `timeout` while the weights load
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(run_module, "load_model", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert run(shots / "b.png", "-o", tmp_path / "out", "--weights", weights) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and signal.getsignal(signal.SIGTERM) == before


def test_an_empty_output_folder_made_beforehand_is_marked_as_ours(tmp_path, weights, capsys):
    # `mkdir shots/enhanced` then `enhance run shots -r -o shots/enhanced`: the rerun must resume,
    # not take the outputs for photos in a folder of inputs.
    shots = tmp_path / "shots"
    shots.mkdir()
    Image.fromarray(dark_rgb(24, 32)).save(shots / "a.png")
    out = shots / "enhanced"
    out.mkdir()
    assert run(shots, "-r", "-o", out, "--weights", weights) == 0
    assert (out / OUTPUT_MARK).is_file() and (out / "a.png").is_file()
    assert run(shots, "-r", "-o", out, "--weights", weights, "--skip-existing") == 0
    assert "done 0, skipped 1, failed 0" in capsys.readouterr().out

    empty = tmp_path / "empty"
    empty.mkdir()
    (shots / "bad.png").write_bytes(b"not a photo")
    assert run(shots / "bad.png", "-o", empty, "--weights", weights) == 1
    assert empty.is_dir() and not any(empty.iterdir())  # as it was: the user's folder, left empty

"""`enhance run` end to end on folders the tests make: bad files, resume, overwrite, sharding."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enhance.cli import main
from enhance import imageio
from enhance.imageio import read_image
from enhance.inference import enhance_image
from enhance.models import create_model
from enhance.run import OUTPUT_MARK, _glob_root, collect_inputs
from enhance.weights import load_model, save_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "saga-s-test.safetensors"
    save_weights(create_model("saga-s"), path, name="saga-s")
    return path


def dark_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((height, width, 3)) * 50).astype(np.uint8)


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(dark_rgb(48, 64, 1)).save(folder / "a.jpg", quality=95)
    Image.fromarray(dark_rgb(40, 56, 2)).save(folder / "b.png")
    Image.fromarray(dark_rgb(32, 40, 3)).save(folder / "sub" / "c.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # truncated
    return folder


def run(*args) -> int:
    return main(["run", *map(str, args)])


def written(out: Path) -> list[str]:
    """The files under an output folder, but for the mark that `enhance run` leaves in one it made."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != OUTPUT_MARK)


def test_batch_goes_on_past_a_bad_file_and_names_it(photos, weights, tmp_path, capsys):
    out = tmp_path / "out"
    status = run(photos, "-o", out, "--weights", weights, "--tile", "0")
    captured = capsys.readouterr()
    assert status == 1
    assert written(out) == ["a.jpg", "b.png"]
    assert "broken.png" in captured.err and "failed: " in captured.err
    assert "done 2, skipped 0, failed 1" in captured.out
    assert read_image(out / "b.png").pixels.shape == (40, 56, 3)
    assert [p.name for p in out.glob(".*")] == [OUTPUT_MARK]  # no temporary files left behind


def test_gifs_are_enhanced_and_files_that_are_not_photos_are_named(photos, weights, tmp_path, capsys):
    (photos / "broken.png").unlink()
    Image.fromarray(dark_rgb(24, 32, 4)).save(photos / "d.gif")
    (photos / "notes.txt").write_text("shot at dusk")
    (photos / ".DS_Store").write_bytes(b"\x00")  # hidden files are neither enhanced nor named
    out = tmp_path / "out"
    assert run(photos, "-o", out, "--weights", weights, "--tile", "0") == 0
    assert written(out) == ["a.jpg", "b.png", "d.png"]
    err = capsys.readouterr().err
    assert "left out 1 file whose names are not those of photos" in err and "notes.txt" in err
    assert ".DS_Store" not in err


def test_recursive_mirrors_subfolders_and_skip_existing_resumes(photos, weights, tmp_path, capsys):
    (photos / "broken.png").unlink()
    out = tmp_path / "out"
    assert run(photos, "-o", out, "--weights", weights, "-r", "--tile", "0") == 0
    assert (out / "sub" / "c.png").is_file()
    before = (out / "a.jpg").stat().st_mtime_ns
    capsys.readouterr()
    assert run(photos, "-o", out, "--weights", weights, "-r", "--skip-existing") == 0
    assert "done 0, skipped 3, failed 0" in capsys.readouterr().out
    assert (out / "a.jpg").stat().st_mtime_ns == before


def test_existing_outputs_are_not_replaced_without_overwrite(photos, weights, tmp_path, capsys):
    (photos / "broken.png").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"the user's own file")
    assert run(photos, "-o", out, "--weights", weights, "--tile", "0") == 1
    assert (out / "a.jpg").read_bytes() == b"the user's own file"
    assert "exists" in capsys.readouterr().err
    assert run(photos, "-o", out, "--weights", weights, "--tile", "0", "--overwrite") == 0
    assert read_image(out / "a.jpg").pixels.shape == (48, 64, 3)


def test_never_writes_into_an_input_folder_unless_asked(photos, weights, capsys):
    (photos / "broken.png").unlink()
    assert run(photos, "-o", photos, "--weights", weights) == 2
    assert "--allow-input-folder" in capsys.readouterr().err
    assert run(photos, "-o", photos, "--weights", weights, "--suffix", "_bright", "--allow-input-folder",
               "--tile", "0") == 0
    assert (photos / "a_bright.jpg").is_file()


def test_an_output_folder_inside_a_recursive_input_is_not_walked_again(photos, weights, capsys):
    (photos / "broken.png").unlink()
    out = photos / "enhanced"
    assert run(photos, "-r", "-o", out, "--weights", weights, "--tile", "0") == 0
    first = written(out)
    assert first == ["a.jpg", "b.png", "sub/c.png"]
    capsys.readouterr()
    # The rerun resumes: it sees the three photos again, not their outputs as new inputs.
    assert run(photos, "-r", "-o", out, "--weights", weights, "--tile", "0", "--skip-existing") == 0
    assert "done 0, skipped 3, failed 0" in capsys.readouterr().out
    assert written(out) == first


def test_an_output_folder_inside_a_recursive_glob_is_not_matched_again(photos, weights, capsys):
    out = photos / "enhanced"
    pattern = str(photos / "**" / "*.png")
    assert run(pattern, "-r", "-o", out, "--weights", weights, "--tile", "0") == 1  # broken.png fails
    assert written(out) == ["b.png", "sub/c.png"]  # with -r, below the glob's first wildcard
    capsys.readouterr()
    assert run(pattern, "-r", "-o", out, "--weights", weights, "--tile", "0", "--skip-existing") == 1
    assert "done 0, skipped 2, failed 1" in capsys.readouterr().out
    # A glob that names the output folder itself is taken at its word.
    named = collect_inputs([str(out / "**" / "*.png")], True, output_folder=out)
    assert [f.name for f, _ in named] == ["b.png", "c.png"]


def test_a_glob_root_is_its_leading_components_without_wildcards():
    assert _glob_root("shots/**/*.jpg") == Path("shots")
    assert _glob_root("/data/day[12]/raw/*.tif") == Path("/data")
    assert _glob_root("*.png") == Path(".")


def test_a_photo_folder_chosen_as_output_inside_the_input_stays_input(photos, weights, capsys):
    """-o naming a subfolder of the walk that holds photos of its own: they stay protected input photos."""
    (photos / "broken.png").unlink()
    own = photos / "sub"  # holds c.png, and would receive a.jpg's and b.png's outputs
    Image.fromarray(dark_rgb(40, 56, 9)).save(own / "b.png")  # a different photo with b.png's name
    before = {p.name: p.read_bytes() for p in own.iterdir()}
    assert run(photos, "-r", "-o", own, "--weights", weights, "--overwrite", "--tile", "0") == 2
    assert "--allow-input-folder" in capsys.readouterr().err
    assert run(photos, "-r", "-o", own, "--weights", weights, "--overwrite", "--allow-input-folder",
               "--tile", "0") == 1
    assert "which is an input photo" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in own.iterdir() if p.name in before} == before
    assert not (own / OUTPUT_MARK).exists()  # a folder that existed is not marked as ours


def test_rerunning_into_the_input_folder_does_not_enhance_the_earlier_outputs(photos, weights, capsys):
    (photos / "broken.png").unlink()
    options = ["-o", photos, "--weights", weights, "--allow-input-folder", "--suffix", "_e", "--tile", "0"]
    assert run(photos, *options) == 0
    capsys.readouterr()
    assert run(photos, *options, "--skip-existing") == 0
    captured = capsys.readouterr()
    assert "done 0, skipped 2, failed 0" in captured.out and "left out 2 files that are this run's own" in captured.err
    assert sorted(p.name for p in photos.iterdir() if p.is_file()) == ["a.jpg", "a_e.jpg", "b.png", "b_e.png"]


def test_a_suffix_with_a_path_separator_is_a_usage_error(photos, weights, tmp_path, capsys):
    assert run(photos / "a.jpg", "-o", tmp_path / "out", "--weights", weights, "--suffix", "/../../x") == 2
    assert "cannot hold a path separator" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_max_pixels_below_one_is_a_usage_error(photos, weights, tmp_path, capsys):
    assert run(photos / "a.jpg", "-o", tmp_path / "out", "--weights", weights, "--max-pixels", "0") == 2
    assert "--max-pixels 0: must be at least 1" in capsys.readouterr().err


def test_two_photos_of_one_name_from_two_folders_are_told_how_to_part_them(photos, weights, tmp_path, capsys):
    Image.fromarray(dark_rgb(24, 32, 6)).save(photos / "sub" / "b.png")  # another b.png
    assert run(photos / "b.png", photos / "sub" / "b.png", "-o", tmp_path / "out", "--weights", weights) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "also writes (give them separate -o folders, or use -r from a folder above" in failed[0]


def test_a_file_named_twice_is_enhanced_once(photos, weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(photos / "a.jpg", str(photos / "sub" / ".." / "a.jpg"), "-o", out, "--weights", weights) == 0
    assert "done 1, skipped 0, failed 0" in capsys.readouterr().out


def test_file_system_refusals_fail_that_photo_not_the_batch(photos, weights, tmp_path, capsys):
    (photos / "broken.png").unlink()
    long_name = photos / ("x" * 250 + ".png")  # legal, but not with the suffix added
    Image.fromarray(dark_rgb(24, 32, 4)).save(long_name)
    out = tmp_path / "out"
    (out / "a_enhanced.jpg").mkdir(parents=True)  # an output that is a folder
    assert run(photos, "-o", out, "--weights", weights, "--suffix", "_enhanced", "--tile", "0") == 1
    captured = capsys.readouterr()
    assert "done 1, skipped 0, failed 2" in captured.out  # b.png made it
    assert "Traceback" not in captured.err and f"failed: {photos / 'a.jpg'}: output " in captured.err
    assert any(line.startswith(f"failed: {long_name}:") and "too long" in line for line in captured.err.splitlines())
    loop = photos / "loop.png"
    loop.symlink_to(loop)
    assert run(loop, "-o", out, "--weights", weights) == 2
    assert "a symbolic link to nothing" in capsys.readouterr().err


def test_a_subfolder_that_cannot_be_read_is_named(photos, weights, tmp_path, monkeypatch, capsys):
    (photos / "broken.png").unlink()
    real_scandir = os.scandir

    def scandir(path="."):  # as for a folder without read permission (tests may run as root)
        if Path(path) == photos / "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert run(photos, "-r", "-o", tmp_path / "out", "--weights", weights, "--tile", "0") == 1
    captured = capsys.readouterr()
    assert "done 2, skipped 0, failed 1" in captured.out
    assert (f"failed: {photos / 'sub'}: cannot read the folder (Permission denied); its photos were left out"
            in captured.err)


def test_a_process_without_photos_under_torchrun_ends_quietly(photos, weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run(photos / "a.jpg", "-o", tmp_path / "out", "--weights", weights) == 0  # rank 0 has it
    assert capsys.readouterr().err == ""


def test_sigterm_ends_like_ctrl_c_without_a_partial_file(photos, weights, tmp_path, monkeypatch, capsys):
    import signal

    from enhance import run as run_module

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(run_module, "enhance_photo", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert run(photos, "-o", tmp_path / "out", "--weights", weights) == 130
    assert "interrupted after 0 photos" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # restored for whoever called main
    assert not (tmp_path / "out").exists()  # made by this run, and nothing written into it


def test_a_batch_that_writes_nothing_leaves_no_output_folder(photos, weights, tmp_path, capsys):
    out = tmp_path / "new" / "out"
    assert run(photos / "broken.png", "-o", out, "--weights", weights) == 1
    assert not (tmp_path / "new").exists()  # -o and the parent made for it are gone
    assert run(photos / "b.png", "-o", out, "--weights", tmp_path / "missing.safetensors") == 2
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    assert run(photos / "broken.png", "-o", existing, "--weights", weights) == 1
    assert existing.is_dir()  # a folder the user had stays
    assert run(photos / "b.png", photos / "broken.png", "-o", out, "--weights", weights) == 1
    assert written(out) == ["b.png"]


def test_webp_quality_follows_jpeg_quality(photos, weights, tmp_path):
    sizes = []
    for quality in (10, 100):
        out = tmp_path / f"q{quality}"
        assert run(photos / "b.png", "-o", out, "--weights", weights, "--ext", "webp",
                   "--jpeg-quality", quality) == 0
        sizes.append((out / "b.webp").stat().st_size)
    assert sizes[0] < sizes[1]


def test_a_photo_too_large_for_its_output_format_fails_before_the_network(photos, weights, tmp_path, monkeypatch,
                                                                          capsys):
    from enhance import run as run_module

    monkeypatch.setitem(imageio.MAX_SIDE, ".webp", 50)  # b.png is 56 px wide
    monkeypatch.setattr(run_module, "enhance_photo", None)  # never reached
    assert run(photos / "b.png", "-o", tmp_path / "out", "--weights", weights, "--ext", "webp") == 1
    assert "56x40 is too large for .webp (at most 50 px a side); use --ext png" in capsys.readouterr().err


def test_an_output_never_replaces_an_input_photo_even_with_overwrite(photos, weights, capsys):
    (photos / "broken.png").unlink()
    Image.fromarray(dark_rgb(24, 32, 5)).save(photos / "a.png")  # a.jpg --ext png would land on it
    before = {p.name: p.read_bytes() for p in photos.iterdir() if p.is_file()}
    assert run(photos, "-o", photos, "--weights", weights, "--allow-input-folder", "--overwrite",
               "--ext", "png", "--tile", "0") == 1
    err = capsys.readouterr().err
    assert "which is an input photo" in err and "a.jpg" in err and "b.png" in err
    assert {p.name: p.read_bytes() for p in photos.iterdir() if p.is_file()} == before


def test_suffix_ext_and_tiles(photos, weights, tmp_path):
    (photos / "broken.png").unlink()
    out = tmp_path / "out"
    assert run(photos / "a.jpg", "-o", out, "--weights", weights, "--suffix", "_x", "--ext", "png",
               "--tile", "32") == 0
    assert read_image(out / "a_x.png").pixels.shape == (48, 64, 3)


def test_alpha_and_16_bit_depth_survive(tmp_path, weights):
    import cv2

    rgba = np.dstack([dark_rgb(24, 32), np.linspace(0, 255, 24 * 32).reshape(24, 32).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    deep = (np.random.default_rng(0).random((24, 32, 3)) * 9000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
    out = tmp_path / "out"
    assert run(tmp_path / "alpha.png", tmp_path / "deep.png", "-o", out, "--weights", weights, "--tile", "0") == 0
    alpha_out = read_image(out / "alpha.png")
    assert np.array_equal(alpha_out.alpha, rgba[..., 3])
    assert read_image(out / "deep.png").pixels.dtype == np.uint16


def test_float_tiff_comes_back_as_float_tiff_with_its_notes(tmp_path, weights, capsys):
    import tifffile

    dark = dark_rgb(24, 32).astype(np.float32) / 255
    dark[0, 0, 0] = 1.5  # one value above white: clipped, and the note says so
    tifffile.imwrite(tmp_path / "export.tif", dark, photometric="rgb")
    out = tmp_path / "out"
    assert run(tmp_path / "export.tif", "-o", out, "--weights", weights, "--ext", "same") == 0
    assert "export.tif: 0.043% of the floating-point values were outside 0..1" in capsys.readouterr().err
    enhanced = tifffile.imread(out / "export.tif")
    assert enhanced.dtype == np.float32
    # The file holds the network's float output itself, not a copy rounded through 8 or 16 bits.
    expected = enhance_image(load_model(weights), np.clip(dark, 0, 1), tile=0)
    np.testing.assert_allclose(enhanced, expected, atol=1e-6)


def test_alpha_dropped_by_jpeg_is_one_line_note(tmp_path, weights, capsys):
    rgba = np.dstack([dark_rgb(24, 32), np.full((24, 32), 100, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = tmp_path / "out"
    assert run(tmp_path / "alpha.png", "-o", out, "--weights", weights, "--ext", "jpg") == 0
    err = capsys.readouterr().err
    assert "alpha.jpg: JPEG cannot store transparency" in err
    assert "write_image(" not in err  # the note alone, not Python's warning with its source line
    assert read_image(out / "alpha.jpg").alpha is None


def test_bad_command_lines_are_one_line_errors(tmp_path, weights, capsys):
    assert run(tmp_path / "nothing-here", "-o", tmp_path / "out", "--weights", weights) == 2
    assert "no such file" in capsys.readouterr().err
    assert run(tmp_path, "-o", tmp_path / "out", "--weights", tmp_path / "missing.safetensors") == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert run(tmp_path, "-o", tmp_path / "out", "--weights", weights, "--jpeg-quality", "200") == 2
    assert "--jpeg-quality 200" in capsys.readouterr().err
    assert run(tmp_path, "-o", tmp_path / "out", "--weights", weights, "--device", "cpu", "--precision", "fp16") == 2
    assert "fp16 is for GPUs" in capsys.readouterr().err


def test_an_output_that_is_a_file_fails_once_before_any_photo_is_enhanced(photos, weights, capsys):
    taken = photos / "a.jpg"
    before = taken.read_bytes()
    assert run(photos, "-o", taken, "--weights", weights) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-o takes an output folder" in err and "a.jpg" in err
    assert taken.read_bytes() == before


@pytest.mark.slow
def test_a_bad_photo_in_one_share_does_not_stop_the_other_processes(photos, weights, tmp_path):
    # torchrun stops every process when one exits non-zero: rank 1's quick failure used to end
    # rank 0's share early, and every resume again, so the batch could never be finished sharded.
    (photos / "broken.png").rename(photos / "0-broken.png")  # sorted first: rank 0's share
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "cli.py"), "run", str(photos), "-o", str(out), "--weights", str(weights), "-r", "--tile", "0"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 1, result.stderr[-2000:]
    assert written(out) == ["a.jpg", "b.png", "sub/c.png"]  # every good photo, the bad one's share included
    assert "enhance run: photos failed in 1 of 2 processes" in result.stderr
    assert "interrupted" not in result.stderr


@pytest.mark.slow
def test_a_sharded_resume_shares_out_what_is_left(photos, weights, tmp_path):
    # Shared out before the skip, a resume whose done photos were all rank 0's left rank 1 all the work.
    from enhance import run as run_module
    (photos / "broken.png").unlink()
    for i in range(3):
        Image.fromarray(dark_rgb(24, 32, 10 + i)).save(photos / f"d{i}.png")
    out = tmp_path / "out"
    jobs, _ = run_module.plan_jobs(run_module.collect_inputs([str(photos)], True), out, "", "same", True)
    assert len(jobs) == 6
    for job in jobs[0::2]:  # rank 0's share when every photo is shared out: as if it had finished first
        job.destination.parent.mkdir(parents=True, exist_ok=True)
        job.destination.write_bytes(b"an earlier output")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "cli.py"), "run", str(photos), "-o", str(out), "--weights", str(weights), "-r", "--tile", "0",
         "--skip-existing"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[rank 0/2] done 2, skipped 3" in result.stdout and "[rank 1/2] done 1, skipped 0" in result.stdout
    assert all(job.destination.read_bytes() == b"an earlier output" for job in jobs[0::2])  # skipped, not redone
    assert all(read_image(job.destination).pixels.shape[2] == 3 for job in jobs[1::2])


@pytest.mark.slow
def test_torchrun_shards_the_files_between_two_processes(photos, weights, tmp_path):
    (photos / "broken.png").unlink()
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "cli.py"), "run", str(photos), "-o", str(out), "--weights", str(weights), "-r", "--tile", "0"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert written(out) == ["a.jpg", "b.png", "sub/c.png"]
    # Each rank did its own share: 3 files split 2 + 1.
    assert "[rank 0/2] done 2" in result.stdout and "[rank 1/2] done 1" in result.stdout


def test_options_are_not_abbreviated(photos, weights, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        run(photos / "a.jpg", "-o", tmp_path / "out", "--weights", weights, "--over")  # not --overwrite
    assert stopped.value.code == 2 and "unrecognized arguments: --over" in capsys.readouterr().err


def test_help_starts_without_importing_pytorch():
    code = "import sys, enhance.cli; enhance.cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "False", result.stderr
    import enhance
    assert enhance.enhance_image.__module__ == "enhance.inference"  # the public names load on use


def test_python_dash_m_enhance_is_the_same_command(photos, weights, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "enhance", "run", photos / "b.png", "-o", out, "--weights", weights],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "b.png").is_file()


def test_strength_mixes_the_result_with_the_original(photos, weights, tmp_path, capsys):
    source = photos / "b.png"
    assert run(source, "-o", tmp_path / "full", "--weights", weights, "--tile", "0") == 0
    assert run(source, "-o", tmp_path / "mixed", "--weights", weights, "--tile", "0", "--strength", "0.25") == 0
    original = read_image(source).pixels.astype(np.float64)
    full = read_image(tmp_path / "full" / "b.png").pixels.astype(np.float64)
    mixed = read_image(tmp_path / "mixed" / "b.png").pixels.astype(np.float64)
    assert np.abs(mixed - (0.25 * full + 0.75 * original)).max() <= 0.5 + 1e-9  # rounded once

    assert run(source, "-o", tmp_path / "bad", "--weights", weights, "--strength", "1.5") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "enhance run: --strength 1.5: must be between 0 and 1"
    assert not (tmp_path / "bad").exists()


def test_weights_whose_output_is_not_finite_fail_each_photo_by_name(photos, weights, tmp_path, capsys):
    model = load_model(weights)
    with torch.no_grad():
        model.embed.bias.fill_(3e38)  # finite weights (NaN ones are refused on loading) that overflow
    broken = tmp_path / "overflow.safetensors"
    save_weights(model, broken, name="saga-s")
    assert run(photos / "b.png", "-o", tmp_path / "out", "--weights", broken) == 1
    assert "b.png: ValueError: the network's output is not finite (NaN or inf); the weights are broken" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written: no black photo


def test_a_photo_that_is_not_dark_is_said_to_be_brighter_than_the_training_photos(photos, weights, tmp_path, capsys):
    from enhance.models import list_models
    from enhance.pipeline import ANY_EXPOSURE_MODEL

    daylight = photos / "daylight.png"
    Image.fromarray((np.random.default_rng(5).random((40, 56, 3)) * 100 + 100).astype(np.uint8)).save(daylight)
    assert run(daylight, photos / "b.png", "-o", tmp_path / "out", "--weights", weights) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "is not dark" in line]
    assert notes == [f"{daylight}: this photo is not dark (mean level 59% of white; the models learnt from dark "
                     "photos at 1-30%), so the result may come out too bright; --exposure -1 or --strength 0.5 "
                     "may suit it better"]  # b.png, as dark as LOL's photos, gets no such note
    assert ANY_EXPOSURE_MODEL in list_models()  # the model the note suggests without --weights

    night = photos / "night.png"
    Image.fromarray(np.full((40, 56, 3), 1, np.uint8)).save(night)
    assert run(night, "-o", tmp_path / "out2", "--weights", weights) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"{night}: this photo is darker than any the models learnt from (mean level 0.39% of white; the models "
        "learnt from dark photos at 1-30%), so the result may come out too dark; --exposure +1 may suit it better"]


def test_the_input_level_note_offers_only_remedies_not_in_use(photos, weights, tmp_path, capsys):
    daylight = photos / "daylight.png"
    Image.fromarray(np.full((40, 56, 3), 180, np.uint8)).save(daylight)
    assert run(daylight, "-o", tmp_path / "out", "--weights", weights, "--exposure", "-1") == 0
    assert capsys.readouterr().err.splitlines()[0].endswith("may come out too bright; --strength 0.5 may suit it better")
    assert run(daylight, "-o", tmp_path / "out2", "--weights", weights, "--exposure", "-1", "--strength", "0.7") == 0
    assert capsys.readouterr().err.splitlines()[0].endswith("so the result may come out too bright")


def test_a_closed_pipe_ends_the_command_quietly():
    # `enhance eval ... | head`: the reader leaves early; a traceback would be noise in the user's terminal.
    script = ("import sys; import enhance.cli as cli, enhance.modelinfo as info\n"
              "def main(args):\n    raise BrokenPipeError\n"
              "info.main = main\nsys.exit(cli.main(['models']))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (result.returncode, result.stderr) == (141, "")

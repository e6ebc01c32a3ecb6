"""The research scripts in scripts/ on bad input: one line naming the problem and a non-zero exit
status, not a traceback; and their outputs labelled as they are meant to be.

Most run in this process (runpy, with sys.argv set): starting Python and torch anew for each
would take seconds a case. compare_evals.py starts fast, so it runs as a researcher runs it.
"""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args, monkeypatch, capsys) -> tuple[object, str, str]:
    """(exit code, stdout, stderr) of `python scripts/<name>.py ARGS`; the code is the message
    for a SystemExit("..."), which Python prints as one line and exits 1 with."""
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *map(str, args)])
    try:
        runpy.run_path(str(SCRIPTS / f"{name}.py"), run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, name: str, *words: str) -> None:
    assert isinstance(code, str), code  # SystemExit with a message: exit status 1, no traceback
    assert code.startswith(f"{name}: ") and "\n" not in code, code
    for word in words:
        assert word in code, code


@pytest.fixture
def pairs(tmp_path) -> Path:
    """A LOL-style folder of three 32x48 pairs, 1 2 3; pairs 2 and 3 share one ground truth."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for side in ("low", "high"):
        (data / side).mkdir(parents=True)
    truths = {stem: (rng.random((32, 48, 3)) * 200 + 30).astype(np.uint8) for stem in ("1", "2")}
    truths["3"] = truths["2"]
    for i, (stem, high) in enumerate(truths.items()):
        Image.fromarray(high).save(data / "high" / f"{stem}.png")
        Image.fromarray((high * (0.1 + 0.05 * i)).astype(np.uint8)).save(data / "low" / f"{stem}.png")
    return data


def stem_list(path: Path, *stems: str) -> Path:
    path.write_text("".join(f"{stem}\n" for stem in stems) or "# no stems\n")
    return path


# --- compare_evals.py ----------------------------------------------------------------------------


def compare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "compare_evals.py"), *map(str, args)],
                          capture_output=True, text=True)


def eval_report(path: Path, psnrs: list[float], gt_mean: bool = True) -> Path:
    """Rows as `enhance eval --report` writes them; without --gt-mean its GT-mean figures are null."""
    rows = [{"name": str(i), "psnr": p, "ssim": 0.8, "psnr_gt_mean": p + 5 if gt_mean else None,
             "ssim_gt_mean": 0.9 if gt_mean else None, "exposure_stops": 0.1} for i, p in enumerate(psnrs)]
    path.write_text(json.dumps({"images": rows}))
    return path


def test_compare_evals_refuses_a_file_that_is_not_a_json_report_in_one_line(tmp_path):
    report = eval_report(tmp_path / "a.json", [20.0, 21.0])
    (tmp_path / "list.txt").write_text("1\n2\n")
    for other, words in ((tmp_path / "list.txt", "not a JSON report"), (tmp_path / "gone.json", "No such file"),
                         (tmp_path, "Is a directory")):
        result = compare(report, other)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"compare_evals: {other}: {words}")
        assert len(result.stderr.splitlines()) == 1
    # A no-reference report has no per-image PSNR to compare.
    (tmp_path / "photos.json").write_text(json.dumps({"images": [{"name": "0", "input_brightness": 0.1}]}))
    result = compare(report, tmp_path / "photos.json")
    assert result.returncode == 1 and "no per-image PSNR" in result.stderr, result.stderr


def test_compare_evals_takes_reports_written_without_gt_mean(tmp_path):
    plain = eval_report(tmp_path / "a.json", [20.0, 21.0, 22.0], gt_mean=False)
    with_gt_mean = eval_report(tmp_path / "b.json", [21.0, 21.0, 23.0])
    result = compare(plain, with_gt_mean)
    assert result.returncode == 0, result.stderr
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    assert "better on   2 of 3" in lines["PSNR (dB)"]
    assert "not in both reports" in lines["GT-mean PSNR (dB)"] and "--gt-mean" in lines["GT-mean SSIM"]
    assert "better on" in lines["exposure error (stops, lower is better)"]


def test_compare_evals_refuses_a_without_that_names_no_image_or_leaves_none(tmp_path):
    base = eval_report(tmp_path / "a.json", [20.0, 21.0, 22.0])
    cand = eval_report(tmp_path / "b.json", [21.0, 22.0, 20.0])
    result = compare(base, cand, "--without", "2,7")  # 7 is not an image of the reports: a typo
    assert result.returncode == 1 and result.stderr.strip() == "compare_evals: --without 7: no such image in the reports"
    result = compare(base, cand, "--without", "0,1,2")
    assert result.returncode == 1 and "leaves no image" in result.stderr and "nan" not in result.stdout
    result = compare(base, cand, "--without", "2, 1")  # a space after the comma is no part of the name
    assert result.returncode == 0, result.stderr
    assert "better on   1 of 1" in result.stdout


# --- anchor_protocols.py, ensemble_eval.py, input_darkness.py -------------------------------------


def test_anchor_protocols_reports_bad_input_in_one_line(pairs, tmp_path, monkeypatch, capsys):
    run = lambda *args: run_script("anchor_protocols", *args, monkeypatch=monkeypatch, capsys=capsys)[0]
    assert_one_line_error(run("--data", tmp_path / "nowhere"), "anchor_protocols", "no such folder")
    assert_one_line_error(run("--data", pairs, "--list", stem_list(tmp_path / "empty.txt")),
                          "anchor_protocols", "holds no stems")
    assert_one_line_error(run("--data", pairs, "--list", tmp_path / "gone.txt"),
                          "anchor_protocols", "gone.txt", "No such file")
    # A stem without a pair would make the means silently cover fewer images than listed.
    assert_one_line_error(run("--data", pairs, "--list", stem_list(tmp_path / "val.txt", "1", "9")),
                          "anchor_protocols", "1 stem(s)", "9")
    assert_one_line_error(run("--data", pairs, "--weights", tmp_path / "gone.safetensors"),
                          "anchor_protocols", "no such weights file")


def test_ensemble_eval_reports_bad_input_before_any_pass(pairs, tmp_path, monkeypatch, capsys, random_saga_s):
    from enhance.weights import save_weights

    weights = tmp_path / "run.safetensors"
    save_weights(random_saga_s, weights, name="saga-s")
    run = lambda *args: run_script("ensemble_eval", *args, monkeypatch=monkeypatch, capsys=capsys)

    code, _, err = run(weights, "--data", pairs)
    assert code == 2 and "two or more weights files" in err  # the mean of one model is enhance eval
    # A registered name loads, but is no file to hash for the report: that used to fail after the
    # whole evaluation, in a traceback.
    code, out, _ = run(weights, "saga-s", "--data", pairs)
    assert_one_line_error(code, "ensemble_eval", "saga-s: no such weights file")
    assert "PSNR" not in out
    assert_one_line_error(run(weights, weights, "--data", tmp_path / "nowhere")[0], "ensemble_eval", "no such folder")
    assert_one_line_error(run(weights, weights, "--data", pairs, "--list", stem_list(tmp_path / "e.txt"))[0],
                          "ensemble_eval", "holds no stems")
    assert_one_line_error(run(weights, weights, "--data", pairs, "--list", stem_list(tmp_path / "v.txt", "2", "8"))[0],
                          "ensemble_eval", "8")


def test_input_darkness_reports_a_folder_without_the_listed_stems_in_one_line(pairs, tmp_path, monkeypatch, capsys):
    run = lambda *args: run_script("input_darkness", *args, monkeypatch=monkeypatch, capsys=capsys)
    # The default list is LOL's validation split, whose stems this folder lacks: this used to end in
    # a traceback from the line fit of no pairs at all.
    assert_one_line_error(run(pairs)[0], "input_darkness", "none of the", "requested stems")
    assert_one_line_error(run(pairs, "--list", stem_list(tmp_path / "v.txt", "1", "9"))[0], "input_darkness", "9")
    assert_one_line_error(run(pairs, "--list", stem_list(tmp_path / "e.txt"))[0], "input_darkness", "holds no stems")
    assert_one_line_error(run(tmp_path / "nowhere")[0], "input_darkness", "no such folder")
    for shifts, words in (("-1,x", "must be a number of stops"), ("5", "between -3 and 3")):
        code, _, err = run(pairs, f"--shifts={shifts}")
        assert code == 2 and words in err and "Traceback" not in err


# --- exposure_spread.py, profile_tiled.py -----------------------------------------------------


def test_exposure_spread_gives_usage_on_no_or_wrong_arguments(pairs, tmp_path, monkeypatch, capsys):
    run = lambda *args: run_script("exposure_spread", *args, monkeypatch=monkeypatch, capsys=capsys)
    code, _, err = run()  # used to run on ../shared/datasets/LOL-v1-train, relative to wherever it was started
    assert code == 2 and err.startswith("usage: exposure_spread.py")
    code, out, _ = run("--help")  # used to be read as a dataset folder
    assert code == 0 and "val_list" in out
    code, _, err = run(pairs, stem_list(tmp_path / "v.txt", "2"), "extra")
    assert code == 2 and "unrecognized arguments: extra" in err
    assert_one_line_error(run(tmp_path / "nowhere")[0], "exposure_spread", "no such folder")
    assert_one_line_error(run(pairs, tmp_path / "gone.txt")[0], "exposure_spread", "No such file")
    assert_one_line_error(run(pairs, stem_list(tmp_path / "e.txt"))[0], "exposure_spread", "holds no stems")
    # A validation stem not in the folder would be counted as one without a training twin.
    assert_one_line_error(run(pairs, stem_list(tmp_path / "w.txt", "2", "9"))[0], "exposure_spread", "9")


def test_exposure_spread_labels_shared_ground_truths(pairs, tmp_path, monkeypatch, capsys):
    code, out, _ = run_script("exposure_spread", pairs, stem_list(tmp_path / "v.txt", "1", "2"),
                              monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    assert "2 of 3 pairs share their ground truth with another pair (1 ground truths, each paired with 2-2" in out
    assert out.strip().endswith("1 of 2 pairs in " + str(tmp_path / "v.txt") +
                                " share their ground truth with a training pair: 2")
    (pairs / "high" / "3.png").unlink()
    (pairs / "low" / "3.png").unlink()
    code, out, _ = run_script("exposure_spread", pairs, stem_list(tmp_path / "v.txt", "1"),
                              monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0 and "2-0" not in out  # no shared ground truth: no range of dark shots
    assert out.strip().endswith("0 of 1 pairs in " + str(tmp_path / "v.txt") +
                                " share their ground truth with a training pair")


def test_exposure_spread_correlates_a_reports_exposure_errors(pairs, tmp_path, monkeypatch, capsys):
    from enhance.imageio import read_image
    from enhance.metrics import mean_brightness
    truth_stops = {stem: np.log2(mean_brightness(read_image(pairs / "high" / f"{stem}.png").pixels))
                   for stem in ("1", "2", "3")}
    # A model that lands every photo on one exposure: its error falls exactly as the truth brightens.
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"images": [{"name": stem, "exposure_stops": -stops}
                                             for stem, stops in truth_stops.items()]}))
    code, out, _ = run_script("exposure_spread", pairs, "--eval", report, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    assert out.strip().splitlines()[-1].startswith(f"{report}: 3 images, exposure error's correlation")
    assert out.strip().endswith("with the ground truth's r = -1.00")

    run = lambda *args: run_script("exposure_spread", *args, monkeypatch=monkeypatch, capsys=capsys)[0]
    assert_one_line_error(run(pairs, "--eval", tmp_path / "gone.json"), "exposure_spread", "gone.json")
    (tmp_path / "other.json").write_text('{"psnr": 20}')
    assert_one_line_error(run(pairs, "--eval", tmp_path / "other.json"), "exposure_spread", "not an `enhance eval")
    report.write_text(json.dumps({"images": [{"name": "1", "exposure_stops": 0.1}]}))
    assert_one_line_error(run(pairs, "--eval", report), "exposure_spread", "at least 3")


def test_profile_tiled_reports_bad_arguments_before_profiling(tmp_path, monkeypatch, capsys):
    run = lambda *args: run_script("profile_tiled", *args, monkeypatch=monkeypatch, capsys=capsys)
    for args, words in ((("--size", "600by400"), "--size: invalid size value"),
                        (("--size", "0x400"), "--size: invalid size value"),
                        (("--tile", "-5"), "--tile -5")):
        code, _, err = run(*args)
        assert code == 2 and words in err, err
    assert_one_line_error(run("--model", tmp_path / "gone.safetensors")[0], "profile_tiled", "no such weights file")

"""`enhance bench` as a command: one-line errors with exit status 2, outputs checked before the run and
replaced through a temporary file, reports that name the machine. Nothing here times a real cell."""

import json
import math
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from enhance import bench, photobench, rank
from enhance.cli import main as cli_main
from enhance.weights import REPO_ROOT


@pytest.fixture
def no_benchmark(monkeypatch):
    """A usage error must come before any cell runs; a run here fails the test at once instead of taking hours."""
    def ran(*args, **kwargs):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(bench, "run_benchmark", ran)


def record(attention="saga", size=64, status="ok", **fields):
    r = {key: None for key in bench.RECORD_KEYS}
    r.update(attention=attention, size=size, mode="infer", device="cpu", precision="fp32", model="saga-s",
             status=status, **fields)
    if status == "ok":
        r.update(ms=10.0, mpix_per_s=0.4, peak_mem_mb=300.0, baseline_mem_mb=250.0, activation_mem_mb=50.0)
    return r


def fails_with_usage_error(argv, capsys, message):
    with pytest.raises(SystemExit) as err:
        cli_main(["bench", *argv])
    assert err.value.code == 2
    stderr = capsys.readouterr().err
    # The error is the last line (a warning may come before it), and no traceback.
    assert "Traceback" not in stderr and message in stderr.strip().splitlines()[-1], stderr


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "-64"], "each side must be a positive"),
    (["--attention", "foo"], "unknown foo"),
    (["--timeout", "0"], "--timeout 0: must be a positive"),
    (["--cell-seconds", "-1"], "--cell-seconds -1: must be a positive"),
    (["--threads", "-1"], "--threads -1: must be 0 or more"),
    (["--repeats", "0"], "--repeats 0: must be 1 or more"),
    (["--warmup", "-1"], "--warmup -1: must be 0 or more"),
    (["--max-mem-gb", "nan"], "--max-mem-gb nan"),
    (["--photo", "inf"], "each size must be above 0"),
    (["--photo", "nan"], "each size must be above 0"),
    (["--photo", "1e9"], "refuses photos over 200 MP"),
    (["--photo", "1", "--plot", "p.png"], "--photo writes no plot"),
    (["--photo", "1", "--photo-args=--model saga-l"], "bench's own --model"),
    (["--rank"], "--rank needs --images"),
])
def test_bad_values_are_one_line_errors_with_status_2(argv, message, capsys, no_benchmark):
    fails_with_usage_error(argv, capsys, message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu_is_a_usage_error(capsys, no_benchmark):
    fails_with_usage_error(["--device", "cuda"], capsys, "sees no CUDA GPU")


def test_an_unwritable_output_fails_before_the_run(tmp_path, capsys, no_benchmark):
    (tmp_path / "afile").write_text("")
    fails_with_usage_error(["--json", str(tmp_path / "afile" / "r.json")], capsys, "is a file, not a folder")
    fails_with_usage_error(["--markdown", str(tmp_path)], capsys, "is a folder")
    fails_with_usage_error(["--plot", str(tmp_path / "r.xyz")], capsys, "matplotlib cannot write .xyz")


def test_an_existing_output_is_replaced_through_a_temporary_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_benchmark", lambda *args, **kwargs: [record()])
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(bench.os, "replace", lambda src, dst: (replaced.append((src, dst)), real_replace(src, dst)))
    out = tmp_path / "r.json"
    out.write_text("the previous run\n")
    assert cli_main(["bench", "--sizes", "64", "--json", str(out), "--markdown", str(tmp_path / "new" / "r.md")]) == 0
    assert json.loads(out.read_text()) == [record()]
    assert [dst for _, dst in replaced] == [out, tmp_path / "new" / "r.md"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["new", "r.json", "r.md"]  # no temporary left
    assert (tmp_path / "new" / "r.md").read_text() == capsys.readouterr().out.rstrip("\n") + "\n"


def test_a_failed_write_leaves_the_earlier_file_as_it_was(tmp_path):
    out = tmp_path / "r.md"
    out.write_text("the previous run\n")

    def half_then_fail(temporary):
        temporary.write_text("half a rep")
        raise OSError(28, "No space left on device")

    with pytest.raises(SystemExit, match="--markdown .*r.md: cannot write \\(No space left on device\\)"):
        bench.write_atomically(out, "--markdown", half_then_fail)
    assert out.read_text() == "the previous run\n" and [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_the_report_names_the_machine_even_when_no_cell_ran():
    report = bench.report_markdown([record(status="timeout", note="killed after the 1 s limit")])
    assert f"device cpu ({bench._device_name(torch.device('cpu'))})" in report
    assert f"torch {torch.__version__}" in report


# --------------------------------------------------------------------------- --rank and --ablation

def test_rank_input_errors_are_one_line(tmp_path, capsys):
    images = tmp_path / "low"
    images.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "1.png")
    fails_with_usage_error(["--rank", "--images", str(images), "--stems", str(tmp_path / "none.txt")], capsys,
                           "none.txt: cannot read")
    fails_with_usage_error(["--rank", "--images", str(images), "--weights-saga", str(images),
                            "--weights-linear", str(images)], capsys, "--weights-saga: ")
    (images / "2.png").write_bytes(b"not a png")
    fails_with_usage_error(["--rank", "--images", str(images)], capsys, "2.png")


def write_log(folder, rows):
    folder.mkdir()
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_ablation_logs_without_scores_are_one_line_errors(tmp_path, capsys):
    good = write_log(tmp_path / "good", [{"kind": "val", "step": 1, "psnr": 20.0, "ssim": 0.7, "psnr_gt_mean": 25.0,
                                          "ssim_gt_mean": 0.8}])
    no_val = write_log(tmp_path / "no-val", [{"kind": "train", "step": 1, "loss": 0.1}])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "log.jsonl").write_text('{"kind": "val", "step": 1, "psnr": 20.0}\n{"kind": "val", "ste\n')
    fails_with_usage_error(["--ablation", str(good), str(no_val)], capsys, "no validation rows")
    fails_with_usage_error(["--ablation", str(good), str(broken)], capsys, "line 2: not a JSON row")
    fails_with_usage_error(["--ablation", str(good), str(tmp_path)], capsys, "no such training log")
    fails_with_usage_error(["--ablation", str(good), str(good), "--json", str(tmp_path / "a.json")], capsys,
                           "--ablation writes only a Markdown table")


def test_ablation_best_skips_nan_scores_and_missing_ones_show_as_dashes(tmp_path):
    nan = {"kind": "val", "step": 1, "psnr": math.nan, "ssim": math.nan, "psnr_gt_mean": math.nan,
           "ssim_gt_mean": math.nan}
    saga = write_log(tmp_path / "saga", [nan, {"kind": "val", "step": 2, "psnr": 20.0, "ssim": 0.7,
                                               "psnr_gt_mean": 25.0, "ssim_gt_mean": 0.8}])
    old = write_log(tmp_path / "linear", [{"kind": "val", "step": 2, "psnr": 19.5, "ssim": 0.6}])  # no GT-mean
    table = rank.ablation_markdown(saga, old)
    assert "| **best** | 20.00 | 19.50 | +0.50 | 0.7000 | 0.6000 | +0.1000 | 25.00 | - | - | 0.8000 | - | - |" in table


# --------------------------------------------------------------------------- --photo

def test_photo_runs_this_checkouts_enhance(tmp_path, monkeypatch):
    seen = {}

    def fake_run(command, **kwargs):
        seen.update(kwargs)
        return subprocess.CompletedProcess(command, 0, "", "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:01.50\n"
                                                           "Maximum resident set size (kbytes): 204800\n")

    monkeypatch.setattr(photobench.subprocess, "run", fake_run)
    assert photobench.run_one(tmp_path / "p.jpg", tmp_path, []) == (1.5, 200.0)
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(REPO_ROOT)


def test_photo_writes_markdown_and_json_naming_machine_and_precision(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(photobench, "run_one", lambda photo, out_dir, extra: (2.0, 300.0))
    monkeypatch.setattr(photobench, "gnu_time_missing", lambda: None)  # run_one, which needs it, is replaced
    monkeypatch.setattr(photobench, "compare_tiled_with_whole", lambda extra: "tiled vs whole: fine.")
    monkeypatch.setattr(photobench, "flops_per_megapixel", lambda model, tile: 1e11)
    monkeypatch.setattr(photobench, "matmul_tflops", lambda dtype: 1.0)
    assert cli_main(["bench", "--photo", "0.01", "--photo-args", "--precision fp32", "--markdown",
                     str(tmp_path / "p.md"), "--json", str(tmp_path / "p.json")]) == 0
    printed = capsys.readouterr().out
    assert "precision fp32 (fp32)" in printed and bench._device_name(torch.device("cpu")) in printed
    markdown = (tmp_path / "p.md").read_text()
    assert "| 0.01 MP | 116x87 | 2.0 |" in markdown and "precision fp32 (fp32)" in markdown
    result = json.loads((tmp_path / "p.json").read_text())
    assert result["photos"] == [{"megapixels": 0.01, "width": 116, "height": 87, "wall_s": 2.0, "peak_rss_mb": 300.0}]


def test_a_cell_or_photo_size_named_twice_is_measured_once(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_benchmark(attentions, sizes, modes, **kwargs):
        seen.update(attentions=attentions, sizes=sizes, modes=modes)
        return []

    monkeypatch.setattr(bench, "run_benchmark", fake_benchmark)
    assert cli_main(["bench", "--attention", "saga,linear,saga", "--sizes", "64,128,064", "--mode",
                     "infer,infer"]) == 0
    assert seen == {"attentions": ["saga", "linear"], "sizes": [64, 128], "modes": ["infer"]}

    photos = []
    monkeypatch.setattr(photobench, "run_one", lambda photo, out_dir, extra: photos.append(photo) or (2.0, 300.0))
    monkeypatch.setattr(photobench, "gnu_time_missing", lambda: None)
    monkeypatch.setattr(photobench, "compare_tiled_with_whole", lambda extra: "tiled vs whole: fine.")
    monkeypatch.setattr(photobench, "flops_per_megapixel", lambda model, tile: 1e11)
    monkeypatch.setattr(photobench, "matmul_tflops", lambda dtype: 1.0)
    assert cli_main(["bench", "--photo", "0.01,0.010,0.02"]) == 0
    assert len(photos) == 2


def test_photo_without_gnu_time_is_a_usage_error_before_any_photo(tmp_path, monkeypatch, capsys):
    # macOS's /usr/bin/time has no -v and Windows has none: this was a misleading "enhance run failed".
    monkeypatch.setattr(photobench, "GNU_TIME", str(tmp_path / "no-time"))
    monkeypatch.setattr(photobench, "run_one", lambda *args: pytest.fail("a photo was measured"))
    fails_with_usage_error(["--photo", "0.01"], capsys, "--photo measures with GNU time")


def test_reports_are_utf8_whatever_the_locale(tmp_path):
    bench.write_text(tmp_path / "r.md", "--markdown", "Δ ± ≥\n")
    assert (tmp_path / "r.md").read_bytes() == "Δ ± ≥\n".encode("utf-8")

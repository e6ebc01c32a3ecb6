"""`enhance eval` on tiny generated folders in the layouts researchers download (LOL-v1 eval15,
LOL-v2 Real_captured with low00690/normal00690 names), and on the awkward cases around them:
images that cannot be scored, a stem list, precision labels, 16-bit pixels in the metrics."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from enhance import cli
from enhance.evaluate import evaluate
from enhance.inference import resolve_precision
from enhance.metrics import exposure_stops, mean_brightness, psnr_gt_mean, ssim, ssim_gt_mean
from enhance.models import create_model
from enhance.pairs import find_pairs
from enhance.weights import save_weights


def _images(rng, size=(32, 48)):
    """(low, ground truth) uint8: a colour gradient with a little noise, and a dark copy of it."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    high = np.stack([xx / w, yy / h, 1 - xx / w], axis=-1) * 200 + rng.normal(0, 8, (h, w, 3)) + 30
    high = np.clip(high, 0, 255).astype(np.uint8)
    return np.round(high * 0.15).astype(np.uint8), high


def _folder(root: Path, low_name="low", high_name="high", stems=("1", "2", "3"),
            low_file="{}", high_file="{}", sizes=None) -> Path:
    (root / low_name).mkdir(parents=True)
    (root / high_name).mkdir()
    rng = np.random.default_rng(0)
    for i, stem in enumerate(stems):
        low, high = _images(rng, sizes[i] if sizes else (32, 48))
        Image.fromarray(low).save(root / low_name / f"{low_file.format(stem)}.png")
        Image.fromarray(high).save(root / high_name / f"{high_file.format(stem)}.png")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "m.safetensors"
    save_weights(create_model("saga-s"), path, name="saga-s")
    return path


def run(*argv) -> int:
    return cli.main(["eval", "--no-progress", *map(str, argv)])


def test_lol_v2_real_names_save_and_json_labels(weights, tmp_path, capsys):
    data = _folder(tmp_path / "LOL-v2" / "Real_captured" / "Test", "Low", "Normal", stems=("00690", "00691"),
                   low_file="low{}", high_file="normal{}")
    out, report_path = tmp_path / "out", tmp_path / "r.json"
    assert run("--data", data, "--weights", weights, "--save-dir", out, "--report", report_path) == 0
    assert "LOL-v2-real (Test)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["00690.png", "00691.png"]
    report = json.loads(report_path.read_text())
    assert [r["name"] for r in report["images"]] == ["00690", "00691"]
    assert report["precision"] == "fp32" and report["device"] == "cpu" and len(report["weights_sha256"]) == 64


def test_size_mismatch_counts_once_in_the_not_evaluated_line(weights, tmp_path, capsys):
    data = _folder(tmp_path / "d")
    Image.new("RGB", (40, 30)).save(data / "high" / "2.png")
    assert run("--data", data, "--weights", weights) == 1
    captured = capsys.readouterr()
    # It was counted twice: once as a problem of the pair set, once as skipped by evaluate().
    assert "1 of the images asked for were not evaluated" in captured.err
    assert f"skipped 2: low 48x32 ({data / 'low' / '2.png'}) vs ground truth 40x30 ({data / 'high' / '2.png'})" \
        in captured.out


def test_list_stem_without_ground_truth_counts_once(weights, tmp_path, capsys):
    data = _folder(tmp_path / "d")
    (data / "high" / "3.png").unlink()
    stems = tmp_path / "stems.txt"
    stems.write_text("1\n3\n9\n")
    assert run("--data", data, "--list", stems, "--weights", weights) == 1
    assert "2 of the images asked for were not evaluated" in capsys.readouterr().err


def test_empty_stem_list_names_the_file(weights, tmp_path, capsys):
    data = _folder(tmp_path / "d")
    stems = tmp_path / "stems.txt"
    stems.write_text("# nothing yet\n\n")
    assert run("--data", data, "--list", stems, "--weights", weights) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{stems}: holds no stems" in err


def test_image_smaller_than_the_ssim_window_is_skipped_by_name(weights, tmp_path, capsys):
    data = _folder(tmp_path / "d", stems=("1", "2"), sizes=[(32, 48), (8, 9)])
    report_path = tmp_path / "r.json"
    assert run("--data", data, "--weights", weights, "--report", report_path) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"skipped 2: {data / 'low' / '2.png'}: 9x8 is smaller than the 11x11 window of SSIM" in captured.out
    assert json.loads(report_path.read_text())["n_images"] == 1


def test_ssim_refuses_a_small_image_with_its_size():
    tiny = np.zeros((8, 9, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11x11 pixels .*got 9x8"):
        ssim(tiny, tiny)


def test_auto_precision_is_labelled_with_the_precision_that_ran(tmp_path):
    data = _folder(tmp_path / "d", stems=("1",))
    torch.manual_seed(0)
    report = evaluate(create_model("saga-s").eval(), find_pairs(data), precision="auto", progress=False)
    ran = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[resolve_precision("auto", torch.device("cpu"))]
    assert report["precision"] == ran
    assert "auto" not in report["protocol"].split("; ")


def test_csv_rows_carry_the_device(weights, tmp_path):
    data = _folder(tmp_path / "d", stems=("1", "2"))
    report_path = tmp_path / "r.csv"
    assert run("--data", data, "--weights", weights, "--report", report_path) == 0
    with open(report_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["device"] for r in rows] == ["cpu", "cpu"] and {r["precision"] for r in rows} == {"fp32"}


def test_metrics_read_16bit_pixels_as_16bit():
    rng = np.random.default_rng(0)
    out8 = rng.integers(20, 200, size=(16, 16, 3), dtype=np.uint8)
    target8 = rng.integers(20, 200, size=(16, 16, 3), dtype=np.uint8)
    target16 = target8.astype(np.uint16) * 257  # the same picture in 16 bits
    assert mean_brightness(target16) == pytest.approx(mean_brightness(target8))
    assert exposure_stops(out8, target16) == pytest.approx(exposure_stops(out8, target8))
    assert psnr_gt_mean(out8, target16) == pytest.approx(psnr_gt_mean(out8, target8))
    assert ssim_gt_mean(out8, target16) == pytest.approx(ssim_gt_mean(out8, target8))

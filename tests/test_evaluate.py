"""`enhance eval` end to end on tiny generated LOL-v1-style folders (never dataset images),
plus one run on two real validation pairs when ../shared/datasets is present."""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from enhance import cli
from enhance.evaluate import evaluate, to_8bit, tta_enhance, write_report
from enhance.imageio import read_image
from enhance.metrics import psnr
from enhance.models import MODELS, create_model, get_entry
from enhance.pairs import find_pairs, read_stem_list
from enhance.weights import load_model, save_weights

ROOT = Path(__file__).resolve().parents[1]
LOL_V1_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "LOL-v1-train"
STEMS = ["1", "2", "10"]
REPORT_KEYS = {"psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean", "n_images", "model", "weights_sha256",
               "tta", "protocol", "dataset_layout", "images"}


def _write_pair(root: Path, stem: str, rng, size=(48, 64)) -> None:
    """A smooth colour gradient with a little noise as ground truth; low = a dark copy."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    high = np.stack([xx / w, yy / h, 1 - xx / w], axis=-1) * 200 + rng.normal(0, 8, (h, w, 3)) + 30
    high = np.clip(high, 0, 255).astype(np.uint8)
    low = np.round(high * 0.15).astype(np.uint8)
    Image.fromarray(high).save(root / "high" / f"{stem}.png")
    Image.fromarray(low).save(root / "low" / f"{stem}.png")


@pytest.fixture(scope="module")
def lol(tmp_path_factory):
    """(data folder in LOL-v1 layout with 3 pairs, saga-s weights file with random weights)."""
    root = tmp_path_factory.mktemp("lol")
    data = root / "eval15"
    (data / "low").mkdir(parents=True)
    (data / "high").mkdir()
    rng = np.random.default_rng(0)
    for stem in STEMS:
        _write_pair(data, stem, rng)
    torch.manual_seed(0)
    weights = root / "m.safetensors"
    save_weights(create_model("saga-s"), weights, name="saga-s")
    return data, weights


def run(*argv) -> int:
    return cli.main(["eval", "--no-progress", *map(str, argv)])


def test_json_report_gt_mean_and_saved_pngs(lol, tmp_path, capsys):
    data, weights = lol
    report_path, out_dir = tmp_path / "r.json", tmp_path / "outputs"
    assert run("--data", data, "--weights", weights, "--gt-mean", "--report", report_path,
               "--save-dir", out_dir) == 0
    printed = capsys.readouterr().out
    assert "LOL-v1 (eval15)" in printed
    assert "GT-mean PSNR dB" in printed and "GT-mean SSIM" in printed

    report = json.loads(report_path.read_text())
    assert REPORT_KEYS <= set(report)
    assert report["n_images"] == 3 and len(report["images"]) == 3
    assert report["tta"] is False and report["dataset_layout"] == "LOL-v1 (eval15)"
    assert len(report["weights_sha256"]) == 64
    assert report["parameters"] > 0 and report["flops_256x256"] > 0
    # GT-mean figures are present and kept apart from the plain ones.
    assert report["psnr_gt_mean"] is not None and report["ssim_gt_mean"] is not None
    assert report["psnr_gt_mean"] != report["psnr"]
    for record in report["images"]:
        assert set(record) == {"name", "psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean", "exposure_stops", "seconds"}
    assert "exposure vs GT" in printed
    assert report["exposure_error_stops"] == pytest.approx(np.mean([abs(r["exposure_stops"]) for r in report["images"]]))

    # The saved PNGs are the exact 8-bit images that were scored.
    scores = []
    for record in report["images"]:
        saved = Image.open(out_dir / f"{record['name']}.png")
        assert saved.mode == "RGB"
        output = np.asarray(saved)
        assert output.dtype == np.uint8
        target = np.asarray(Image.open(data / "high" / f"{record['name']}.png"))
        scores.append(psnr(output, target, data_range=255.0))
        assert scores[-1] == pytest.approx(record["psnr"], abs=1e-9)
    assert np.mean(scores) == pytest.approx(report["psnr"], abs=1e-9)


def test_csv_report_has_one_row_per_image(lol, tmp_path, capsys):
    data, weights = lol
    report_path = tmp_path / "r.csv"
    assert run("--data", data, "--weights", weights, "--report", report_path) == 0
    assert "GT-mean" not in capsys.readouterr().out  # not asked for: no GT-mean column at all
    with open(report_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == STEMS
    assert {"psnr", "ssim", "seconds"} <= set(rows[0])
    assert all(float(r["psnr"]) > 0 and r["psnr_gt_mean"] == "" for r in rows)
    assert {r["model"] for r in rows} == {str(weights)} and {r["tta"] for r in rows} == {""}
    assert all(r["protocol"].startswith("output quantised to 8 bits") for r in rows)  # labelled, row by row
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file


def test_tta_is_labelled(lol, tmp_path, capsys):
    data, weights = lol
    report_path = tmp_path / "r.json"
    assert run("--data", data, "--weights", weights, "--tta", "--report", report_path) == 0
    printed = capsys.readouterr().out
    assert "TTA x8" in printed
    report = json.loads(report_path.read_text())
    assert report["tta"] is True and "TTA x8" in report["protocol"] and "TTA x8" in report["title"]
    assert report["n_images"] == 3
    write_report(report, tmp_path / "r.csv")  # and in a CSV report, on every row
    with open(tmp_path / "r.csv", newline="") as f:
        assert {row["tta"] for row in csv.DictReader(f)} == {"TTA x8 (flip/rotate self-ensemble)"}


class Pointwise(nn.Module):
    """A per-pixel colour map: it commutes with every flip and rotation."""

    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 3.0 + 0.1)
            self.mix.bias.fill_(0.02)

    def forward(self, x):
        return self.mix(x).clamp(0, 1)


class HalfExposure(nn.Module):
    """Half the ground truth's brightness for the generated pairs, whose low is 0.15 x high."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.5 / 0.15))

    def forward(self, x):
        return (x * self.gain).clamp(0, 1)


def test_exposure_column_measures_global_brightness_in_stops(lol):
    data, _ = lol
    model = HalfExposure().eval()
    report = evaluate(model, find_pairs(data), progress=False)
    for record in report["images"]:  # half as bright is -1 stop, give or take the 8-bit rounding of low
        assert record["exposure_stops"] == pytest.approx(-1.0, abs=0.02)
    assert report["exposure_error_stops"] == pytest.approx(abs(report["exposure_stops"]))


def test_tta_undoes_its_transforms():
    # With a flip/rotation-equivariant model every one of the 8 passes, transformed back, equals
    # the single pass; a wrongly undone rotation or flip would show as a difference.
    model = Pointwise().eval()
    x = torch.rand(1, 3, 10, 14)  # not square: a rotation left undone would change the shape
    single = model(x)
    assert torch.allclose(tta_enhance(model, x, tile=0, precision="fp32"), single, atol=1e-6)


def test_tta_on_equivariant_model_matches_single_pass(lol):
    data, _ = lol
    pairs = find_pairs(data)
    plain = evaluate(Pointwise().eval(), pairs, tta=False, progress=False)
    ensemble = evaluate(Pointwise().eval(), pairs, tta=True, progress=False)
    assert ensemble["tta"] is True and plain["tta"] is False
    # Float rounding in the average moves a few pixels across an 8-bit step: allow 0.01 dB. An
    # ensemble that did not undo its transforms would be off by decibels on these gradients.
    assert [r["psnr"] for r in ensemble["images"]] == pytest.approx([r["psnr"] for r in plain["images"]],
                                                                     abs=0.01)


def test_list_restricts_split_and_reports_missing_stem(lol, tmp_path, capsys):
    data, weights = lol
    stem_list = tmp_path / "split.txt"
    stem_list.write_text("# two stems, one of them absent\n2\n99\n")
    report_path = tmp_path / "r.json"
    # The report is written, but the exit status says that not every image asked for was scored.
    assert run("--data", data, "--weights", weights, "--list", stem_list, "--report", report_path) == 1
    captured = capsys.readouterr()
    assert "requested stem not found as a pair: 99" in captured.out
    assert "1 of the images asked for were not evaluated (listed above); the means are over 1" in captured.err
    report = json.loads(report_path.read_text())
    assert report["n_images"] == 1 and [r["name"] for r in report["images"]] == ["2"]


def test_broken_weights_with_a_non_finite_output_are_an_error(lol, tmp_path, capsys):
    data, weights = lol
    model = load_model(weights)
    with torch.no_grad():
        model.embed.bias.fill_(3e38)  # finite weights (NaN ones are refused on loading) that overflow
    broken = tmp_path / "nan.safetensors"
    save_weights(model, broken, name="saga-s")
    assert run("--data", data, "--weights", broken, "--report", tmp_path / "r.json") == 2
    assert "the network's output is not finite (NaN or inf); the weights are broken" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_report_and_save_dir_that_cannot_be_written_fail_before_the_run(lol, tmp_path, capsys):
    data, weights = lol
    a_file = tmp_path / "keep.json"
    a_file.write_text("{}")
    assert run("--data", data, "--weights", weights, "--report", a_file / "r.json") == 2
    assert "--report" in capsys.readouterr().err
    assert run("--data", data, "--weights", weights, "--save-dir", a_file) == 2
    assert "--save-dir" in capsys.readouterr().err and a_file.read_text() == "{}"


@pytest.mark.parametrize("content", ["empty", "unrecognised"])
def test_bad_folder_is_one_line_exit_2(tmp_path, capsys, content):
    folder = tmp_path / "not_a_benchmark"
    folder.mkdir()
    if content == "unrecognised":
        (folder / "photos").mkdir()
        (folder / "notes.txt").write_text("hello")
    assert run("--data", folder) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and "Traceback" not in err


def test_bad_list_and_report_paths_fail_before_any_image_is_evaluated(lol, tmp_path, capsys):
    data, weights = lol
    assert run("--data", data, "--weights", weights, "--list", tmp_path / "no-such-split.txt") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "no-such-split.txt: No such file" in captured.err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    (tmp_path / "folder.json").mkdir()
    for report in (tmp_path / "folder.json", blocker / "r.json"):  # a folder; a folder that cannot be made
        assert run("--data", data, "--weights", weights, "--report", report) == 2
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and "--report" in captured.err
        assert "PSNR" not in captured.out  # refused before the evaluation, not after it


def test_untrained_registry_model_exit_2(lol, capsys, monkeypatch):
    # Every registered model has weights now: register an untrained one for the test.
    monkeypatch.setitem(MODELS, "saga-l", dataclasses.replace(get_entry("saga-l"), weights=None, sha256=None))
    data, _ = lol
    assert run("--data", data, "--model", "saga-l") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no trained weights" in err


def test_bad_weights_file_exit_2(lol, tmp_path, capsys):
    data, _ = lol
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert run("--data", data, "--weights", bad) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err


def test_save_dir_refuses_input_folders(lol, capsys):
    data, weights = lol
    assert run("--data", data, "--weights", weights, "--save-dir", data) == 2
    assert "--data folder" in capsys.readouterr().err
    # Outputs named <stem>.png would replace the low-light inputs themselves.
    assert run("--data", data, "--weights", weights, "--save-dir", data / "low") == 2
    assert "holds input images" in capsys.readouterr().err


def test_save_dir_files_are_replaced_only_with_overwrite(lol, tmp_path, capsys):
    data, weights = lol
    out_dir = tmp_path / "outputs"
    out_dir.mkdir()
    (out_dir / "2.png").write_bytes(b"the user's own file")
    assert run("--data", data, "--weights", weights, "--save-dir", out_dir) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "already holds 2.png" in captured.err and "--overwrite" in captured.err
    assert (out_dir / "2.png").read_bytes() == b"the user's own file" and not (out_dir / "1.png").exists()
    assert run("--data", data, "--weights", weights, "--save-dir", out_dir, "--overwrite") == 0
    assert read_image(out_dir / "2.png").pixels.shape == (48, 64, 3)


def test_no_reference_mode_is_labelled(lol, tmp_path, capsys):
    data, weights = lol
    report_path, out_dir = tmp_path / "r.json", tmp_path / "outputs"
    assert run("--data", data / "low", "--weights", weights, "--no-reference", "--report", report_path,
               "--save-dir", out_dir) == 0
    assert "no-reference statistics — not a benchmark figure" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["no_reference"] is True and report["psnr"] is None and report["ssim"] is None
    assert report["n_images"] == 3
    assert "not a benchmark figure" in report["protocol"]
    assert set(report["no_reference_statistics"]) == {"input", "output"}
    assert sorted(p.name for p in out_dir.iterdir()) == ["1.png", "10.png", "2.png"]


def test_size_mismatch_is_listed_not_scored(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    _write_pair(tmp_path, "1", rng)
    _write_pair(tmp_path, "2", rng)
    Image.new("RGB", (32, 32)).save(tmp_path / "high" / "2.png")  # replace with a different size
    pairs = find_pairs(tmp_path)
    report = evaluate(Pointwise().eval(), pairs, progress=False)
    assert report["n_images"] == 1
    assert [s["name"] for s in report["skipped"]] == ["2"]
    assert any("size mismatch" in line for line in report["problems"])


def test_16bit_ground_truth_is_rounded_to_8bit():
    values = np.array([[[0, 128, 257], [385, 65406, 65535]]], dtype=np.uint16)
    assert to_8bit(values).tolist() == [[[0, 0, 1], [1, 254, 255]]]


@pytest.mark.slow
def test_real_lol_v1_validation_pairs(lol, tmp_path):
    if not LOL_V1_TRAIN.is_dir():
        pytest.skip(f"{LOL_V1_TRAIN} is not here (the shared datasets are not on this machine)")
    _, weights = lol
    stems = [line.strip() for line in (ROOT / "datasets" / "lol_v1_val.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")][:2]
    stem_list = tmp_path / "two.txt"
    stem_list.write_text("\n".join(stems) + "\n")
    report_path = tmp_path / "r.json"
    assert run("--data", LOL_V1_TRAIN, "--list", stem_list, "--weights", weights, "--report", report_path) == 0
    assert json.loads(report_path.read_text())["n_images"] == 2


def test_committed_training_list_is_the_dataset_minus_the_validation_list():
    if not LOL_V1_TRAIN.is_dir():
        pytest.skip(f"{LOL_V1_TRAIN} is not here (the shared datasets are not on this machine)")
    train = read_stem_list(ROOT / "datasets" / "lol_v1_train.txt")
    val = read_stem_list(ROOT / "datasets" / "lol_v1_val.txt")
    assert len(train) == len(set(train)) and not set(train) & set(val)
    assert sorted(train + val) == sorted(pair.stem for pair in find_pairs(LOL_V1_TRAIN).pairs)

"""What a newcomer walking through the README ran into: train's last line, an empty run folder left by a
failed start, a user's own low/ + high/ folder called LOL-v1, modelcard replacing shipped weights, eval
--no-reference leaving files out unsaid, and bench --help without some defaults."""

import argparse
import json
from pathlib import Path

import pytest

from enhance import bench
from enhance.cli import main
from enhance.modelcard import main as ship
from enhance.pairs import find_pairs
from test_pairs import make_split
from test_train_own_data import config_file, own_data
from test_run import weights  # noqa: F401 - a fixture used by name


def train(config: Path, data: Path, out: Path, *extra) -> int:
    return main(["train", "--config", str(config), "--data", str(data), "--out", str(out), *map(str, extra)])


def last_stderr_line(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def own_pairs(tmp_path) -> tuple[Path, Path]:
    """A user's own folder of three pairs (not LOL) and a 2-step config validating on stem 1."""
    data = own_data(tmp_path / "mydata", [(f"{i}.png", f"{i}.png") for i in (1, 2, 3)])
    return data, config_file(tmp_path)


# --- 1. train says where it stopped and what it saved ---------------------------------------------

def test_train_stopped_by_max_steps_says_where_and_how_to_go_on(own_pairs, tmp_path, capsys):
    data, config = own_pairs
    out = tmp_path / "run"
    assert train(config, data, out, "--max-steps", 1) == 0
    assert last_stderr_line(capsys) == (f"stopped at step 1 of 2 (--max-steps 1); checkpoint saved: "
                                        f"{out / 'checkpoint.pt'}; continue with --resume --out {out}")
    assert (out / "checkpoint.pt").is_file()

    assert train(config, data, out, "--resume") == 0
    line = last_stderr_line(capsys)
    best = json.loads((out / "best.json").read_text())
    assert line == (f"finished all 2 steps; best weights: {out / 'best.safetensors'} (step {best['step']}, "
                    f"validation PSNR {best['psnr']:.2f} dB); log: {out / 'log.jsonl'}; curves: {out / 'curves.png'}")
    assert all((out / name).is_file() for name in ("best.safetensors", "log.jsonl", "curves.png"))


# --- 2. a failed start leaves no empty run folder behind -----------------------------------------

def test_train_failing_before_training_removes_the_folders_it_made(tmp_path):
    data = own_data(tmp_path / "mydata", [(f"{i}.png", f"{i}.png") for i in (1, 2, 3)])
    config = config_file(tmp_path, val_stems=None)  # the default val_list: LOL-v1's stems, none of them here
    out = tmp_path / "runs" / "first"
    with pytest.raises(SystemExit, match="the default val_list"):
        train(config, data, out)
    assert not (tmp_path / "runs").exists()  # -out and the parent made for it


def test_train_failing_before_training_keeps_a_folder_it_did_not_make(tmp_path):
    data = own_data(tmp_path / "mydata", [(f"{i}.png", f"{i}.png") for i in (1, 2, 3)])
    config = config_file(tmp_path, val_stems=None)
    out = tmp_path / "mine"
    out.mkdir()  # the user's, made before the run
    with pytest.raises(SystemExit, match="the default val_list"):
        train(config, data, out)
    assert out.is_dir() and not any(out.iterdir())


# --- 3. a user's own low/ + high/ folder is not called LOL-v1 ------------------------------------

@pytest.mark.parametrize("path, layout", [
    ("mydata", "low/high folders (mydata)"),
    ("holiday/Test", "low/high folders (Test)"),
    ("eval15", "LOL-v1 (eval15)"),
    ("Our485", "LOL-v1 (Our485)"),
    ("LOL-v1-train", "LOL-v1 (LOL-v1-train)"),
    ("LOLdataset", "LOL-v1 (LOLdataset)"),
])
def test_low_high_folders_are_lol_v1_only_when_they_are_lols(tmp_path, path, layout):
    assert find_pairs(make_split(tmp_path / path)).layout == layout


def test_a_root_of_own_splits_is_not_lol_v1_either(tmp_path):
    make_split(tmp_path / "mine" / "Train", names=("2.png",))
    make_split(tmp_path / "mine" / "Test", names=("1.png",))
    assert find_pairs(tmp_path / "mine").layout == "low/high folders (Test; test split chosen, Train/ also present)"
    assert find_pairs(tmp_path / "mine", split="train").layout == ("low/high folders (Train; training split chosen, "
                                                                    "Test/ also present)")



def test_train_and_eval_label_own_data_as_low_high_folders(own_pairs, weights, tmp_path, capsys):
    data, config = own_pairs
    assert train(config, data, tmp_path / "run", "--max-steps", 0) == 0
    assert "dataset layout: low/high folders (mydata) (2 training pairs" in capsys.readouterr().err
    report = tmp_path / "report.json"
    assert main(["eval", "--no-progress", "--data", str(data), "--weights", str(weights), "--report", str(report)]) == 0
    assert "dataset layout: low/high folders (mydata) (3 images)" in capsys.readouterr().out
    saved = json.loads(report.read_text())
    assert saved["dataset_layout"] == "low/high folders (mydata)"
    assert saved["title"] == "PSNR/SSIM on low/high folders (mydata)"


# --- 4. modelcard does not replace shipped weights unasked ---------------------------------------

@pytest.fixture
def finished_run(own_pairs, tmp_path) -> Path:
    data, config = own_pairs
    assert train(config, data, tmp_path / "run") == 0
    return tmp_path / "run"


def test_modelcard_refuses_to_replace_shipped_weights_without_overwrite(finished_run, tmp_path):
    out = tmp_path / "weights"
    argv = [str(finished_run), "--name", "tiny", "--hardware", "test CPU", "--out", str(out)]
    assert ship(argv) == 0
    weights, card = out / "tiny.safetensors", out / "tiny.json"
    card.write_text("the card a user edited\n")
    before = weights.read_bytes()
    with pytest.raises(SystemExit) as refused:
        ship(argv)
    assert str(refused.value.code) == (f"{weights}: already exists (as does {card}); pass --overwrite to replace them, "
                                       "or ship under another --name")
    assert weights.read_bytes() == before and card.read_text() == "the card a user edited\n"

    assert ship(argv + ["--overwrite"]) == 0
    assert json.loads(card.read_text())["name"] == "tiny"
    assert sorted(p.name for p in out.iterdir()) == ["tiny.json", "tiny.safetensors"]  # no temporary file left


def test_modelcard_names_the_one_file_that_exists(finished_run, tmp_path):
    out = tmp_path / "weights"
    out.mkdir()
    (out / "tiny.json").write_text("{}\n")  # a card without its weights
    with pytest.raises(SystemExit, match=r"tiny\.json: already exists; pass --overwrite to replace it,"):
        ship([str(finished_run), "--name", "tiny", "--hardware", "test CPU", "--out", str(out)])
    assert not (out / "tiny.safetensors").exists()


# --- 5. eval --no-reference names what it leaves out --------------------------------------------

def test_eval_no_reference_names_the_files_and_folders_it_leaves_out(weights, tmp_path, capsys):
    photos = own_data(tmp_path / "shots", [("1.png", "1.png"), ("2.png", "2.png")]) / "low"
    (photos / "1.xmp").write_text("sidecar")
    (photos / "notes.txt").write_text("notes")
    (photos / ".DS_Store").write_text("")  # hidden: not counted, as enhance run does not count it
    (photos / "day2").mkdir()
    argv = ["eval", "--no-progress", "--no-reference", "--data", str(photos), "--weights", str(weights),
            "--save-dir", str(tmp_path / "out")]
    assert main(argv) == 0
    left_out = [line for line in capsys.readouterr().err.splitlines() if "left out" in line]
    assert left_out == [f"enhance eval: left out 2 files whose names are not those of images (.png, .webp, .jpg, "
                        f".jpeg, .jfif, .jpe, .bmp, .tif, .tiff) and 1 subfolder (only images directly in --data are read): "
                        f"{photos / '1.xmp'}, {photos / 'day2'}/, {photos / 'notes.txt'}"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "2.png"]


def test_eval_no_reference_on_a_folder_of_images_only_says_nothing_left_out(weights, tmp_path, capsys):
    photos = own_data(tmp_path / "shots", [("1.png", "1.png")]) / "low"
    assert main(["eval", "--no-progress", "--no-reference", "--data", str(photos), "--weights", str(weights)]) == 0
    assert "left out" not in capsys.readouterr().err


# --- 6. bench --help shows every default ---------------------------------------------------------

def test_bench_help_shows_the_default_of_every_flag_that_has_one():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    for action in parser._actions:
        if action.default in (None, False, argparse.SUPPRESS):  # flags off by default, outputs not written
            continue
        assert "(default" in action.help, action.option_strings
    shown = " ".join(parser.format_help().split())  # argparse wraps lines wherever the terminal width says
    for default in ("(default 256,512,1024,1280,2048)", "(default infer,train)", "(default cpu)", "(default fp32)",
                    "(default saga-s)", "(default none)"):
        assert default in shown, default


def test_a_card_of_ones_own_data_does_not_claim_lol(finished_run, tmp_path, capsys):
    out = tmp_path / "weights"
    ship([str(finished_run), "--name", "mine", "--hardware", "test CPU", "--out", str(out)])
    card = json.loads((out / "mine.json").read_text())
    assert card["training_data"].startswith("not described") and "LOL-v1 training split" not in card["training_data"]
    assert "datasets/lol_v1_val.txt" not in card["validation"]["images"]
    assert "pass --training-data" in capsys.readouterr().err

    ship([str(finished_run), "--name", "mine", "--hardware", "test CPU", "--out", str(out), "--overwrite",
          "--training-data", "my 40 night shots, my own"])
    assert json.loads((out / "mine.json").read_text())["training_data"] == "my 40 night shots, my own"

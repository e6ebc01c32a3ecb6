"""`enhance train` on a user's own paired data: what is not LOL-v1 is refused in one line, before training."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from enhance import train as train_module
from enhance.cli import main
from enhance.train import TrainConfig

CONFIG = """
model = "saga-s"
patch_size = 16
batch_size = 2
steps = 2
warmup_steps = 1
bf16 = false
channels_last = false
compile = false
val_every = 1
checkpoint_every = 1
log_every = 1
"""


def own_data(folder: Path, names: list[tuple[str, str]], size=(40, 48)) -> Path:
    """LOL-style low/ and high/ folders with the given (low name, high name) pairs of PNGs."""
    (folder / "low").mkdir(parents=True)
    (folder / "high").mkdir()
    rng = np.random.default_rng(0)
    for low_name, high_name in names:
        high = (rng.random((*size, 3)) * 200 + 30).astype(np.uint8)
        Image.fromarray(high).save(folder / "high" / high_name)
        Image.fromarray((high * 0.15).astype(np.uint8)).save(folder / "low" / low_name)
    return folder


def config_file(tmp_path: Path, val_stems: str | None = "1") -> Path:
    text = CONFIG
    if val_stems is not None:
        (tmp_path / "val.txt").write_text(val_stems + "\n")
        text += f'val_list = "{(tmp_path / "val.txt").as_posix()}"\n'
    path = tmp_path / "own.toml"
    path.write_text(text)
    return path


def train(config: Path, data: Path, out: Path) -> int:
    return main(["train", "--config", str(config), "--data", str(data), "--out", str(out)])


def test_float_tiffs_smaller_than_the_patch_are_refused_before_training(tmp_path):
    # Pillow cannot read a float TIFF's header, so the header check skipped them and the first batch
    # crashed in torch.stack with crops of different shapes.
    data = tmp_path / "data"
    for sub in ("low", "high"):
        (data / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 5):
        high = (rng.random((20, 24, 3)) * 0.8 + 0.1).astype(np.float32)
        tifffile.imwrite(data / "high" / f"{i}.tif", high, photometric="rgb")
        tifffile.imwrite(data / "low" / f"{i}.tif", high * 0.15, photometric="rgb")
    config = config_file(tmp_path)
    config.write_text(config.read_text().replace("patch_size = 16", "patch_size = 32"))
    with pytest.raises(SystemExit, match=r"patch_size asks for 32-px patches in batches of 2, but the training "
                                         r"image .*low.2\.tif is 24x20"):
        train(config, data, tmp_path / "run")
    assert not (tmp_path / "run" / "log.jsonl").exists()


@pytest.mark.parametrize("extra, name", [
    ("patch_size = 8\n", "patch_size"),
    ("patch_schedule = [[1, 8, 4]]\n", r"patch_schedule entry \[1, 8, 4\]"),
])
def test_an_ssim_term_with_patches_smaller_than_its_window_is_a_config_error(tmp_path, extra, name):
    # ssim_loss's 11-tap window does not fit an 8-px patch: the first step crashed with a traceback.
    body = CONFIG.replace("patch_size = 16\n", "") + extra
    path = tmp_path / "ssim.toml"
    path.write_text(body + "ssim_weight = 0.5\n")
    with pytest.raises(SystemExit, match=rf"^{path}: {name} asks for 8-px patches, smaller than the 11-px window"):
        TrainConfig.from_file(path)
    path.write_text(body)  # without the SSIM term small patches are fine
    TrainConfig.from_file(path)


def test_more_training_processes_than_training_pairs_is_refused(tmp_path, monkeypatch):
    # Two pairs, one of them validation: under torchrun with two processes, rank 1's shard was empty and it
    # said "no image pairs in <data>", which the data plainly has.
    data = own_data(tmp_path / "data", [("1.png", "1.png"), ("2.png", "2.png")])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(train_module.dist, "init_process_group", lambda *args, **kwargs: None)
    monkeypatch.setattr(train_module.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(train_module.dist, "get_world_size", lambda: 2)
    with pytest.raises(SystemExit, match=r"data: 1 training pair\(s\) for 2 training processes.*run at most 1"):
        train(config_file(tmp_path), data, tmp_path / "run")


def test_an_empty_val_list_is_a_config_error(tmp_path):
    # Path("") is the current folder: the error was ": cannot read the validation list (Is a directory)".
    path = tmp_path / "noval.toml"
    path.write_text(CONFIG + 'val_list = ""\n')
    with pytest.raises(SystemExit, match=rf"^{path}: val_list must name a file of validation stems"):
        TrainConfig.from_file(path)


def test_the_default_val_list_on_other_data_is_said_to_be_the_default(tmp_path):
    data = own_data(tmp_path / "data", [(f"IMG_{i}.png", f"IMG_{i}.png") for i in range(3)])
    with pytest.raises(SystemExit, match=r"lol_v1_val.txt \(the default val_list, LOL-v1's validation split\): "
                                         r"30 of the 30 .*set val_list in the config") as raised:
        train(config_file(tmp_path, val_stems=None), data, tmp_path / "run")
    assert "\n" not in str(raised.value)


def test_a_typo_in_a_config_key_suggests_the_key_meant(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(CONFIG.replace("batch_size", "batchsize"))
    with pytest.raises(SystemExit, match=r"unknown config keys: batchsize \(did you mean batch_size\?\)$"):
        TrainConfig.from_file(path)


def test_partners_named_by_suffix_are_shown_in_the_error(tmp_path):
    data = own_data(tmp_path / "data", [(f"000{i}_low.png", f"000{i}_high.png") for i in range(1, 4)])
    with pytest.raises(SystemExit, match=r"no file name matches .*\(3 and 3 images, e\.g\. 0001_low\.png and "
                                         r"0001_high\.png\); partners need the same name"):
        train(config_file(tmp_path), data, tmp_path / "run")


def test_an_image_without_a_partner_is_named_with_its_folder(tmp_path):
    data = own_data(tmp_path / "data", [(f"{i}.png", f"{i}.png") for i in range(1, 4)])
    (data / "high" / "3.png").unlink()
    with pytest.raises(SystemExit, match=r"images without a partner in .*data: low.3\.png$"):
        train(config_file(tmp_path), data, tmp_path / "run")


def test_negative_max_steps_are_refused(tmp_path):
    from enhance.cli import main

    with pytest.raises(SystemExit, match=r"^--max-steps -1: must be 0 or more$"):
        main(["train", "--config", str(tmp_path / "never-read.toml"), "--data", str(tmp_path), "--out",
              str(tmp_path / "run"), "--max-steps", "-1"])
    assert not (tmp_path / "run").exists()

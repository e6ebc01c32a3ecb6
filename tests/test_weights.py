"""Weights files from strangers: every bad file is a one-line WeightsError naming it, never a
traceback, a silent cast, a black photo or gigabytes allocated for a file of a few bytes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from enhance import modelinfo
from enhance import weights as weights_module
from enhance.cli import main as cli_main
from enhance.models import MODELS, ModelEntry, create_model
from enhance.weights import WeightsError, load_model, save_weights

TINY = dict(widths=(16, 32), encoder_blocks=(1,), middle_blocks=1, decoder_blocks=(1,))


@pytest.fixture(scope="module")
def tiny():
    """(state dict, config JSON) of a small network: files made from it load in milliseconds."""
    torch.manual_seed(0)
    model = create_model("saga-s", **TINY)
    return {k: v.clone() for k, v in model.state_dict().items()}, json.dumps(model.config.to_dict())


def write(path: Path, tensors: dict, config: str) -> Path:
    save_file(tensors, str(path), metadata={"config": config})
    return path


def refused(path, match: str) -> str:
    with pytest.raises(WeightsError, match=match) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("config", ["[16, 32]", "null", '"saga-s"', "3"])
def test_a_config_that_is_not_a_json_object_is_refused(tmp_path, tiny, config):
    path = write(tmp_path / "odd.safetensors", tiny[0], config)
    assert refused(path, "the network config in the file's metadata is not valid").startswith(str(path))


@pytest.mark.parametrize("change, named", [
    ({"head_dim": 0}, "head_dim"),  # was a ZeroDivisionError
    ({"widths": [-16, 32]}, "widths"),  # a RuntimeError from nn.Conv2d
    ({"widths": [16.0, 32]}, "widths"),
    ({"widths": [True, True], "head_dim": True}, "widths"),
    ({"head_dim": True}, "head_dim"),  # JSON true passed as a channel count of 1
    ({"middle_blocks": -3}, "middle_blocks"),
    ({"middle_blocks": 2.5}, "middle_blocks"),
    ({"ffn_expansion": -2}, "ffn_expansion"),
    ({"ffn_expansion": "2"}, "ffn_expansion"),  # "2" * 16 channels asked for 10^17 bytes
    ({"ffn_expansion": float("nan")}, "ffn_expansion"),
])
def test_absurd_config_values_are_named_not_a_traceback(tmp_path, tiny, change, named):
    config = {**json.loads(tiny[1]), **change}
    path = write(tmp_path / "odd.safetensors", tiny[0], json.dumps(config))
    assert named in refused(path, "the network config in the file's metadata is not valid")


def test_a_deeply_nested_config_is_refused(tmp_path, tiny):
    path = write(tmp_path / "deep.safetensors", tiny[0], "[" * 100_000)
    refused(path, "the network config in the file's metadata is not valid")


def test_huge_widths_in_a_small_file_allocate_nothing(tmp_path):
    # 200 one-number tensors claiming 65536 channels: the network alone would need 80+ GB.
    tensors = {f"t{i}": torch.zeros(1) for i in range(200)}
    config = json.dumps({"widths": [65536, 131072], "encoder_blocks": [1], "decoder_blocks": [1], "middle_blocks": 1})
    path = write(tmp_path / "huge.safetensors", tensors, config)
    refused(path, "weights do not match the network")


def test_more_blocks_than_the_file_has_tensors_are_refused_before_building(tmp_path, tiny, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a network was built for a file that cannot match it")

    monkeypatch.setattr(weights_module, "SAGAUNet", never)
    config = {**json.loads(tiny[1]), "middle_blocks": 1_000_000}  # building that took hours
    path = write(tmp_path / "deep.safetensors", tiny[0], json.dumps(config))
    refused(path, "blocks over 2 levels, but the file holds")


@pytest.mark.parametrize("dtype", [torch.int32, torch.int8, torch.bool, torch.complex64])
def test_tensors_that_are_not_floating_point_are_refused(tmp_path, tiny, dtype):
    tensors = {k: v.to(dtype) for k, v in tiny[0].items()}
    path = write(tmp_path / "quantised.safetensors", tensors, tiny[1])
    refused(path, "not floating point")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.float8_e4m3fn])
def test_other_float_dtypes_load_as_fp32(tmp_path, tiny, dtype):
    tensors = {k: v.to(dtype) for k, v in tiny[0].items()}
    model = load_model(write(tmp_path / "half.safetensors", tensors, tiny[1]))
    weight = model.state_dict()["to_rgb.weight"]
    assert weight.dtype == torch.float32 and torch.equal(weight, tensors["to_rgb.weight"].float())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_infinite_weights_are_refused_naming_the_tensor(tmp_path, tiny, value):
    tensors = dict(tiny[0])
    tensors["to_rgb.weight"] = tensors["to_rgb.weight"].clone()
    tensors["to_rgb.weight"][0, 0, 0, 0] = value
    path = write(tmp_path / "broken.safetensors", tensors, tiny[1])
    refused(path, "tensor to_rgb.weight holds NaN or infinite values")


@pytest.mark.parametrize("name", ["folder", "folder.safetensors"])
def test_a_folder_is_called_a_folder(tmp_path, name):
    (tmp_path / name).mkdir()
    message = refused(tmp_path / name, "is a folder, not a weights file")
    assert "pickle" not in message


def test_a_typo_of_a_model_name_suggests_the_nearest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name nearby
    assert refused("saga-m", "neither a registered model").endswith("did you mean 'saga-s'?")
    assert "did you mean" not in refused("quux", "neither a registered model")


def test_unreadable_or_altered_shipped_weights_say_so_and_how_to_recover(monkeypatch, tmp_path):
    model = create_model("saga-s", **TINY)
    sha = save_weights(model, tmp_path / "saga-s.safetensors", name="saga-s")
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(MODELS, "saga-s", ModelEntry("saga-s", model.config, "test", "saga-s.safetensors", "0" * 64))
    assert "restore it from the repository" in refused("saga-s", "does not match the registry")
    monkeypatch.setitem(MODELS, "saga-s", ModelEntry("saga-s", model.config, "test", "saga-s.safetensors", sha))

    def no_permission(path):  # what open() raises for a file without read permission (tests may run as root)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(weights_module, "sha256_of", no_permission)
    assert "Permission denied" in refused("saga-s", "cannot read the weights file of model 'saga-s'")


def test_enhance_models_calls_an_unreadable_weights_file_unreadable(monkeypatch, capsys):
    def no_permission(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(modelinfo, "sha256_of", no_permission)
    assert modelinfo.model_info("saga-s").weights == "unreadable"
    assert cli_main(["models"]) == 1
    assert " unreadable " in capsys.readouterr().out


def test_enhance_run_and_eval_report_a_bad_weights_file_in_one_line(tmp_path, tiny, capsys):
    dark = (np.random.default_rng(0).random((16, 16, 3)) * 50).astype(np.uint8)
    for folder in ("low", "high"):
        (tmp_path / "lol" / folder).mkdir(parents=True)
        Image.fromarray(dark).save(tmp_path / "lol" / folder / "1.png")
    nan = {**tiny[0], "embed.weight": torch.full_like(tiny[0]["embed.weight"], float("nan"))}
    bad = {"nan.safetensors": (nan, tiny[1]), "list.safetensors": (tiny[0], "[1, 2]")}
    for name, (tensors, config) in bad.items():
        path = write(tmp_path / name, tensors, config)
        for argv in (["run", tmp_path / "lol" / "low" / "1.png", "-o", tmp_path / "out", "--weights", path],
                     ["eval", "--no-progress", "--data", tmp_path / "lol", "--weights", path]):
            assert cli_main(list(map(str, argv))) == 2
            lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
            assert len(lines) == 1 and name in lines[0], lines
    assert not (tmp_path / "out" / "1.png").exists()  # no black photo written from NaN weights

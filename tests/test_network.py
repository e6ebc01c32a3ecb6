"""SAGA-UNet, the model registry, weights files and enhance_image."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open

import enhance
from enhance import modelinfo
from enhance import weights as weights_module
from enhance.attention import ATTENTION_TYPES
from enhance.cli import main as cli_main
from enhance.models import MODELS, ModelEntry, create_model, list_models
from enhance.network import UNetConfig
from enhance.weights import WEIGHTS_DIR, UntrainedModelError, WeightsError, load_model, save_weights, sha256_of

TINY = dict(widths=(16, 32), encoder_blocks=(1,), middle_blocks=1, decoder_blocks=(1,))


def test_registry_has_a_default_and_a_quality_model():
    names = list_models()
    assert names[0] == "saga-s" and "saga-l" in names
    params = {n: sum(p.numel() for p in create_model(n).parameters()) for n in names}
    assert 0.3e6 <= params["saga-s"] <= 0.65e6
    assert 1.3e6 <= params["saga-l"] <= 1.8e6
    with pytest.raises(KeyError, match="known models"):
        create_model("nope")


@pytest.mark.parametrize("size", [(1, 1), (3, 517), (401, 599)])
def test_any_input_size_keeps_its_shape_and_range(size):
    model = create_model("saga-s").eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1


def test_eval_output_is_clamped_and_still_differentiable():
    """The clamp is in place without autograd (a photo-sized copy saved) and a copy with it."""
    torch.manual_seed(0)
    model = create_model("saga-s").eval()
    with torch.no_grad():  # a bias large enough that some outputs would pass 1
        model.to_rgb.bias.fill_(0.6)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = model(x)
    assert out.max() == 1 and out.min() >= 0
    out.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(model(x), out.detach())


def test_seeded_construction_is_deterministic():
    x = torch.rand(1, 3, 40, 56)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        with torch.no_grad():
            outs.append(create_model("saga-s").eval()(x))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_every_attention_type_trains_under_the_same_network(attention):
    torch.manual_seed(0)
    model = create_model("saga-s", attention=attention, **TINY).train()
    x = torch.rand(2, 3, 32, 48)
    out = model(x)
    assert out.shape == x.shape
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = create_model("saga-s").eval()
    path = tmp_path / "model.safetensors"
    sha = save_weights(model, path, name="saga-s")
    assert sha == sha256_of(path) and len(sha) == 64
    loaded = load_model(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_saving_the_same_weights_twice_gives_the_same_bytes(tmp_path):
    # the registry records a shipped file's sha256, so a re-shipped model must keep it
    torch.manual_seed(0)
    model = create_model("saga-s")
    # four saves: a writer with a random key order would match by chance once in 6**3
    paths = [tmp_path / f"copy{i}.safetensors" for i in range(4)]
    shas = {save_weights(model, path, name="saga-s") for path in paths}
    assert len(shas) == 1
    assert len({path.read_bytes() for path in paths}) == 1
    with safe_open(str(paths[0]), framework="pt") as f:  # the reference reader agrees
        assert f.metadata()["model"] == "saga-s"
        assert torch.equal(f.get_tensor("to_rgb.weight"), model.state_dict()["to_rgb.weight"])


def test_corrupt_file_gives_one_line_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00\x01not a safetensors file at all")
    with pytest.raises(WeightsError) as err:
        load_model(path)
    assert "broken.safetensors" in str(err.value) and "\n" not in str(err.value)


def test_pickle_files_are_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"x": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="only .safetensors"):
        load_model(path)


def test_mismatched_weights_list_missing_and_unexpected_keys(tmp_path):
    from safetensors.torch import save_file

    model = create_model("saga-s")
    tensors = {k: v.clone() for k, v in model.state_dict().items()}
    tensors.pop("embed.weight")
    tensors["extra.weight"] = torch.zeros(3)
    path = tmp_path / "mismatch.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(model.config.to_dict())})
    with pytest.raises(WeightsError) as err:
        load_model(path)
    message = str(err.value)
    assert "mismatch.safetensors" in message and "missing keys: embed.weight" in message
    assert "unexpected keys: extra.weight" in message


def test_wrong_architecture_is_named(tmp_path):
    small = create_model("saga-s", **TINY)
    path = tmp_path / "small.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(path),
              metadata={"config": json.dumps(create_model("saga-s").config.to_dict())})
    with pytest.raises(WeightsError, match="weights do not match the network"):
        load_model(path)


def test_untrained_model_is_refused_loudly(monkeypatch, tmp_path):
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(MODELS, "saga-s", ModelEntry("saga-s", MODELS["saga-s"].config, "test", None, None))
    with pytest.raises(UntrainedModelError, match="no trained weights"):
        load_model("saga-s")
    with pytest.warns(UserWarning, match="RANDOM WEIGHTS"):
        model = load_model("saga-s", allow_untrained=True)
    assert not model.training


def test_registry_sha256_is_checked(monkeypatch, tmp_path):
    model = create_model("saga-s")
    sha = save_weights(model, tmp_path / "saga-s.safetensors", name="saga-s")
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    good = ModelEntry("saga-s", model.config, "test", "saga-s.safetensors", sha)
    monkeypatch.setitem(MODELS, "saga-s", good)
    assert load_model("saga-s") is not None
    monkeypatch.setitem(MODELS, "saga-s", ModelEntry("saga-s", model.config, "test", "saga-s.safetensors", "0" * 64))
    with pytest.raises(WeightsError, match="does not match the registry"):
        load_model("saga-s")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_enhance_image_keeps_shape_and_dtype(dtype):
    torch.manual_seed(0)
    model = create_model("saga-s").eval()
    rng = np.random.default_rng(0)
    image = rng.random((37, 53, 3))
    if dtype == np.float32:
        image = image.astype(np.float32)
    else:
        image = (image * np.iinfo(dtype).max).astype(dtype)
    out = enhance.enhance_image(model, image, precision="fp32")
    assert out.shape == image.shape and out.dtype == image.dtype


def test_enhance_image_rejects_bad_arrays():
    model = create_model("saga-s").eval()
    with pytest.raises(ValueError, match="H x W x 3"):
        enhance.enhance_image(model, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        enhance.enhance_image(model, np.full((8, 8, 3), 2.0, np.float32))


def test_config_round_trips_through_dict():
    cfg = UNetConfig(**TINY, attention="linear")
    assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("config", ['{"widths": [16, 32], "bogus": 1}', "{not json", '{"widths": "abc"}'])
def test_a_broken_config_in_the_metadata_is_a_one_line_weights_error(tmp_path, config):
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"config": config})
    with pytest.raises(WeightsError, match=r"odd.safetensors: the network config in the file's metadata is not valid"):
        load_model(path)


def test_enhance_models_lists_each_model_with_its_weights_and_scores(capsys):
    assert cli_main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("saga-s (default)")
    for name in list_models():
        row = next(line for line in lines if line.split()[0] == name)
        card = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        assert " ok " in row and f"{card['validation']['psnr']:.2f} / {card['validation']['ssim']:.3f}" in row


def test_enhance_models_names_missing_and_altered_weights(monkeypatch, tmp_path, capsys):
    shutil.copy(WEIGHTS_DIR / "saga-s.safetensors", tmp_path / "saga-s.safetensors")
    (tmp_path / "saga-l.safetensors").write_bytes(b"not the shipped file")
    monkeypatch.setattr(modelinfo, "WEIGHTS_DIR", tmp_path)
    assert modelinfo.model_info("saga-s").weights == "ok"
    assert modelinfo.model_info("saga-l").weights == "sha256 mismatch"
    assert modelinfo.model_info("saga-s-any-exposure").weights == "missing"
    assert cli_main(["models"]) == 1
    assert "missing" in capsys.readouterr().out
    assert modelinfo.model_info("saga-l").val_psnr is None  # a card's scores are not the altered file's


def test_enhance_models_shows_only_the_scores_of_a_card_that_names_the_weights(monkeypatch, tmp_path):
    shutil.copy(WEIGHTS_DIR / "saga-s.safetensors", tmp_path / "saga-s.safetensors")
    monkeypatch.setattr(modelinfo, "WEIGHTS_DIR", tmp_path)
    card = json.loads((WEIGHTS_DIR / "saga-s.json").read_text())
    (tmp_path / "saga-s.json").write_text(json.dumps(card))
    assert modelinfo.model_info("saga-s").val_psnr == card["validation"]["psnr"]
    (tmp_path / "saga-s.json").write_text(json.dumps({**card, "sha256": "0" * 64}))
    assert modelinfo.model_info("saga-s").val_psnr is None
    for broken in ("{broken", "[]", '{"validation": null}'):
        (tmp_path / "saga-s.json").write_text(broken)
        assert modelinfo.model_info("saga-s").val_psnr is None

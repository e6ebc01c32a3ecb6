"""Seamless tiling: tiles that share the whole photo's SAGA state reproduce the whole-image pass."""

import numpy as np
import pytest
import torch

from enhance.inference import auto_tile_size, enhance_tensor
from enhance.models import create_model
from enhance.tiling import run_tiled, tile_grid
from enhance.weights import UntrainedModelError, load_model


def shipped_or_seeded_model():
    """The shipped default weights when present (the realistic case), else a seeded random model."""
    try:
        return load_model()
    except UntrainedModelError:
        torch.manual_seed(0)
        return create_model("saga-s").eval()


def test_tile_grid_covers_every_pixel_once_with_cores():
    tiles = tile_grid(96, 136, tile=32, halo=8, multiple_of=8)
    covered = np.zeros((96, 136), int)
    for t in tiles:
        covered[t.top:t.bottom, t.left:t.right] += 1
        assert t.win_top <= t.top and t.win_bottom >= t.bottom
        assert t.win_top % 8 == 0 and t.win_left % 8 == 0  # windows stay on the network's grid
    assert (covered == 1).all()


def test_256px_tiles_match_the_whole_image_within_one_8bit_step():
    """The issue's criterion: 1024x768 photo, 256-px tiles vs one pass, max-abs <= 1/255."""
    model = shipped_or_seeded_model()
    torch.manual_seed(1)
    # A photo-like input: smooth dark gradients plus noise, not uniform noise.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 768), torch.linspace(0, 1, 1024), indexing="ij")
    image = torch.stack([0.05 + 0.15 * xx, 0.1 * yy + 0.05, 0.2 * xx * yy]).unsqueeze(0)
    image = (image + 0.02 * torch.randn_like(image)).clamp(0, 1)
    with torch.no_grad():
        whole = model(image)
    tiled = run_tiled(model, image, tile=256, mode="exact")
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() <= 1 / 255


def test_odd_sized_photo_tiles_keep_shape_and_agree():
    model = shipped_or_seeded_model()
    image = torch.rand(1, 3, 203, 317) * 0.3
    with torch.no_grad():
        whole = model(image)
    for mode in ("exact", "fast"):
        tiled = run_tiled(model, image, tile=64, mode=mode)
        assert tiled.shape == image.shape
        assert (tiled - whole).abs().max().item() <= 2 / 255


def test_tiling_refuses_attention_without_a_global_sum():
    model = create_model("saga-s", attention="channel").eval()
    with pytest.raises(ValueError, match="seamless tiling"):
        run_tiled(model, torch.rand(1, 3, 64, 64), tile=32)


def test_auto_tile_is_whole_image_for_small_photos_and_bounded_for_huge_ones():
    model = create_model("saga-s")
    cpu = torch.device("cpu")
    assert auto_tile_size(model, 400, 600, cpu) == 0
    side = auto_tile_size(model, 6000, 8000, cpu)
    assert 128 <= side < 6000 and side % 64 == 0


def test_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    """A tile that does not fit is halved until it does, instead of failing the photo."""
    import enhance.inference as inference

    model = create_model("saga-s").eval()
    tried = []
    real_run_tiled = inference.run_tiled

    def flaky_run_tiled(model, x, side, **kwargs):
        tried.append(side)
        if side > 128:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes")
        return real_run_tiled(model, x, side, **kwargs)

    monkeypatch.setattr(inference, "run_tiled", flaky_run_tiled)
    out = enhance_tensor(model, torch.rand(1, 3, 300, 300), tile=256, precision="fp32")
    assert out.shape == (1, 3, 300, 300)
    assert tried == [256, 128]

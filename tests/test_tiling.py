"""Seamless tiling: tiles that share the whole photo's SAGA state reproduce the whole-image pass."""

import numpy as np
import pytest
import torch

from enhance.inference import (CPU_TILE, auto_tile_size, enhance_image, enhance_tensor, from_tensor, photo_tensor,
                               to_tensor)
from enhance.models import create_model
from enhance.tiling import DiskMap, count_ops, run_tiled, tile_grid
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
    tiled = run_tiled(model, image, tile=256)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() <= 1 / 255


def test_odd_sized_photo_tiles_keep_shape_and_agree_in_fp32_and_bf16():
    model = shipped_or_seeded_model()
    image = torch.rand(1, 3, 203, 317) * 0.3
    with torch.no_grad():
        whole = model(image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            whole_bf16 = model(image)
    tiled = run_tiled(model, image, tile=64)
    assert tiled.shape == image.shape
    assert (tiled - whole).abs().max().item() <= 1e-3 / 255  # the same arithmetic, reordered
    tiled_bf16 = run_tiled(model, image, tile=64, dtype=torch.bfloat16)
    assert (tiled_bf16 - whole_bf16).abs().max().item() <= 1 / 255


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("tile", [0, 64])
def test_integer_photos_converted_window_by_window_give_the_same_pixels(dtype, tile):
    """enhance_image keeps an integer photo as integers (no float copy) and converts each window;
    the result is bit-identical to converting the whole photo first, padding included."""
    model = shipped_or_seeded_model()
    rng = np.random.default_rng(3)
    image = (rng.random((101, 157, 3)) * 0.3 * np.iinfo(dtype).max).astype(dtype)
    as_integers = photo_tensor(image)
    assert as_integers.dtype != torch.float32 and as_integers.data_ptr() == image.ctypes.data  # a view
    whole_float_first = from_tensor(enhance_tensor(model, to_tensor(image), tile=tile, precision="fp32"), dtype)
    np.testing.assert_array_equal(enhance_image(model, image, tile=tile, precision="fp32"), whole_float_first)


def test_progress_reaches_its_total_once_per_op_and_state_pass():
    model = create_model("saga-s").eval()
    calls = []
    run_tiled(model, torch.rand(1, 3, 64, 96), tile=32, on_tile=lambda done, total: calls.append((done, total)))
    tiles, ops, state_passes = 2 * 3, count_ops(model), len(model.saga_layers())
    assert calls[-1] == ((ops + state_passes) * tiles,) * 2
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1))


def test_disk_map_round_trips_windows_in_bf16_and_fp32():
    for dtype in (torch.bfloat16, torch.float32):
        full = torch.randn(1, 5, 12, 20).to(dtype)
        disk = DiskMap(tuple(full.shape), dtype)
        disk.write(0, 0, full[..., :6, :])
        disk.write(6, 0, full[..., 6:, :11])
        disk.write(6, 11, full[..., 6:, 11:])
        assert torch.equal(disk.read(3, 10, 4, 17), full[..., 3:10, 4:17])


def test_disk_map_refuses_to_flush_a_band_not_filled_edge_to_edge():
    disk = DiskMap((1, 2, 4, 10), torch.float32)
    disk.write(0, 0, torch.ones(1, 2, 4, 6))
    with pytest.raises(RuntimeError, match="6 of 10 columns"):
        disk.flush()


def test_feature_maps_spilled_to_disk_give_bit_identical_results():
    torch.manual_seed(0)
    model = create_model("saga-s").eval()
    image = torch.rand(1, 3, 96, 160)
    in_memory = run_tiled(model, image, tile=32)
    spilled = run_tiled(model, image, tile=32, map_budget=0)
    assert torch.equal(in_memory, spilled)


def test_tiling_refuses_attention_without_a_global_sum():
    model = create_model("saga-s", attention="channel").eval()
    with pytest.raises(ValueError, match="seamless tiling"):
        run_tiled(model, torch.rand(1, 3, 64, 64), tile=32)


def test_auto_tile_is_whole_image_for_tiny_photos_and_fixed_on_the_cpu():
    model = create_model("saga-s")
    cpu = torch.device("cpu")
    assert auto_tile_size(model, 200, 240, cpu) == 0
    assert auto_tile_size(model, 400, 600, cpu) == CPU_TILE
    assert auto_tile_size(model, 6000, 8000, cpu) == CPU_TILE


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

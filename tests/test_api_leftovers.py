"""The Python API's edge cases: fractional tiles, bf16 weights, models that cannot tile, NaN photos."""

import copy
import math

import numpy as np
import pytest
import torch

from enhance import enhance_image
from enhance.inference import auto_tile_size, enhance_tensor
from enhance.models import create_model

from test_api import photo

# Two levels, one block each: the real blocks of every attention type, small enough to run in milliseconds.
TINY = dict(widths=(16, 32), encoder_blocks=(1,), middle_blocks=1, decoder_blocks=(1,))


def tiny_model(attention: str = "saga"):
    torch.manual_seed(0)
    return create_model("saga-s", attention=attention, **TINY).eval()


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# 1. Tile sizes


@pytest.mark.parametrize("tile", [256.5, 8.9, np.float32(8.5), math.inf, True, False, np.bool_(True)])
def test_a_fractional_or_boolean_tile_is_refused_not_truncated(tile):
    with pytest.raises(ValueError, match="tile size must be 0 .*whole number of pixels.*got") as err:
        enhance_image(tiny_model(), photo(), tile=tile, precision="fp32")
    assert repr(tile) in one_line(err)


def test_an_integral_float_tile_is_taken_as_that_many_pixels():
    model, image = tiny_model(), photo()  # 20 x 28: four 16-px tiles
    expected = enhance_image(model, image, tile=16, precision="fp32")
    for tile in (16.0, np.float64(16.0)):
        np.testing.assert_array_equal(enhance_image(model, image, tile=tile, precision="fp32"), expected)


# 2. Weights in another dtype than float32


@pytest.mark.parametrize("dtype, name", [(torch.bfloat16, "bfloat16"), (torch.float16, "float16")])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_model_cast_to_half_precision_is_refused_naming_its_dtype_and_the_fix(dtype, name, precision):
    model = tiny_model().to(dtype)
    with pytest.raises(ValueError, match=rf"weights are {name}, but enhance needs float32.*model\.float\(\)") as err:
        enhance_image(model, photo(), precision=precision)
    one_line(err)
    assert all(p.dtype == dtype for p in model.parameters())  # the caller's model is left as it was


def test_the_fix_the_error_names_runs():
    model = tiny_model().to(torch.bfloat16).float()
    out = enhance_image(model, photo(), precision="bf16")
    assert out.shape == photo().shape and out.dtype == np.uint8


# 3. Models whose attention cannot tile


@pytest.mark.parametrize("attention", ["channel", "sra", "softmax"])
def test_auto_runs_a_model_that_cannot_tile_on_the_whole_photo(attention):
    model = tiny_model(attention)
    image = photo(264, 16)  # taller than the CPU's 256-px auto tile
    assert auto_tile_size(model, 264, 16, torch.device("cpu")) > 0  # a saga model would be tiled here
    out = enhance_image(model, image, tile="auto", precision="fp32")
    np.testing.assert_array_equal(out, enhance_image(model, image, tile=0, precision="fp32"))


@pytest.mark.parametrize("tile", [8, 512])  # 512: even a tile the photo fits in, so big and small photos agree
def test_an_explicit_tile_on_a_model_that_cannot_tile_is_refused_by_name(tile):
    with pytest.raises(ValueError, match=rf"tile={tile}: this model's 'sra' attention cannot be tiled.*tile=0") as err:
        enhance_image(tiny_model("sra"), photo(), tile=tile, precision="fp32")
    one_line(err)


def test_out_of_memory_on_a_model_that_cannot_tile_is_not_retried_in_tiles(monkeypatch):
    """Retrying in tiles would replace the real error with 'cannot be tiled'."""
    model = tiny_model("channel")

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123 bytes")

    monkeypatch.setattr(model, "forward", out_of_memory)
    with pytest.raises(RuntimeError, match="can't allocate memory"):
        enhance_tensor(model, torch.rand(1, 3, 264, 16), tile="auto", precision="fp32")


# 4. Non-finite pixels


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_non_finite_pixels_are_refused_with_their_count(value, dtype):
    image = (photo() / 255).astype(dtype)
    image[0, 0, :2] = value  # two values, one pixel
    image[5, 7, 2] = value
    with pytest.raises(ValueError, match=r"non-finite pixels \(NaN or infinity\): 2 of 560; .*nan_to_num") as err:
        enhance_image(tiny_model(), image, precision="fp32")
    one_line(err)


def test_a_float64_value_beyond_float32_is_out_of_range_not_infinite():
    image = photo() / 255
    image[0, 0, 0] = 1e300
    with pytest.raises(ValueError, match=r"must hold values in \[0, 1\]; this one spans 0 to 1e\+300"):
        enhance_image(tiny_model(), image, precision="fp32")


def test_a_file_in_and_a_file_out_through_the_package_names(tmp_path):
    # The README's example: read_image, enhance_photo and write_image from `import enhance`.
    import enhance
    from PIL import Image
    rgba = np.dstack([(np.random.default_rng(0).random((24, 40, 3)) * 40).astype(np.uint8),
                      np.full((24, 40), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "dark.png")

    photo = enhance.read_image(tmp_path / "dark.png")
    written = enhance.write_image(tmp_path / "bright.png", enhance.enhance_photo(tiny_model(), photo, tile=0))

    back = enhance.read_image(written)
    assert back.pixels.shape == (24, 40, 3) and back.pixels.dtype == np.uint8
    assert np.array_equal(back.alpha, photo.alpha)  # what the network does not touch comes back as it was
    assert {"enhance_photo", "read_image", "write_image"} <= set(enhance.__all__)

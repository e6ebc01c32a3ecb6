"""The public Python API as a notebook or script calls it: enhance_image and adjust_exposure."""

import threading
import warnings

import numpy as np
import pytest
import torch

from enhance import adjust_exposure, enhance_image


def photo(height: int = 20, width: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("image", [torch.zeros(4, 4, 3, dtype=torch.uint8), [[[0, 0, 0]]]])
def test_a_tensor_or_a_list_is_a_type_error_that_asks_for_an_array(random_saga_s, image):
    with pytest.raises(TypeError, match="expected an H x W x 3 NumPy array, got torch.Tensor|got builtins.list"):
        enhance_image(random_saga_s, image)


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3)])
def test_an_empty_image_is_a_value_error(random_saga_s, shape):
    with pytest.raises(ValueError, match="empty"):
        enhance_image(random_saga_s, np.zeros(shape, np.uint8))


def test_a_read_only_array_is_enhanced_without_a_pytorch_warning(random_saga_s):
    image = photo()
    image.flags.writeable = False  # as np.asarray(PIL.Image.open(...)) gives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = enhance_image(random_saga_s, image, precision="fp32")
    assert out.shape == image.shape and out.dtype == np.uint8


def test_big_endian_uint16_is_taken_as_uint16(random_saga_s):
    native = photo().astype(np.uint16) * 257
    out = enhance_image(random_saga_s, native.astype(">u2"), precision="fp32")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, enhance_image(random_saga_s, native, precision="fp32"))


@pytest.mark.parametrize("tile", ["abc", None, -1])
def test_a_bad_tile_is_a_value_error_naming_the_option(random_saga_s, tile):
    with pytest.raises(ValueError, match="tile size must be 0"):
        enhance_image(random_saga_s, photo(), tile=tile)


def in_another_thread(call):
    """call()'s result, or the exception it raised, from a thread that has ended."""
    result = {}

    def target():
        try:
            result["value"] = call()
        except Exception as err:  # noqa: BLE001 - handed back to the test
            result["value"] = err

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return result["value"]


@pytest.mark.parametrize("other_tile", [0, 8])
def test_one_model_serves_threads_while_one_of_them_runs_a_tiled_pass(random_saga_s, other_tile):
    """Another thread's pass through the same model, run in the middle of a tiled pass (from its
    progress callback), must neither see the tiled pass's state hook nor take it away."""
    image, other = photo(seed=1), photo(seed=2)
    expected = enhance_image(random_saga_s, image, tile=0, precision="fp32")
    expected_other = enhance_image(random_saga_s, other, tile=0, precision="fp32")
    others = []

    def on_tile(done, total):
        if done == 1:
            others.append(in_another_thread(lambda: enhance_image(random_saga_s, other, tile=other_tile,
                                                                  precision="fp32")))

    out = enhance_image(random_saga_s, image, tile=8, precision="fp32", on_tile=on_tile)
    assert isinstance(others[0], np.ndarray), others[0]
    assert np.abs(others[0].astype(int) - expected_other).max() <= 1
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert all(layer.state_hook is None for layer in random_saga_s.saga_layers())


def test_state_hooks_are_removed_when_a_tiled_pass_is_interrupted(random_saga_s):
    def on_tile(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        enhance_image(random_saga_s, photo(), tile=8, on_tile=on_tile)
    assert all(layer.state_hook is None for layer in random_saga_s.saga_layers())


def test_exposure_keeps_float16_white_white():
    pixels = np.array([0.0, 0.5, 1.0], np.float16)
    out = adjust_exposure(pixels, 1.0)
    assert out.dtype == np.float16
    assert out[0] == 0.0 and out[2] == 1.0


def test_exposure_takes_big_endian_uint16_as_uint16():
    codes = np.array([0, 1000, 30000, 65535], np.uint16)
    np.testing.assert_array_equal(adjust_exposure(codes.astype(">u2"), 0.5), adjust_exposure(codes, 0.5))


def test_exposure_refuses_a_tensor_and_a_non_number_of_stops_by_name():
    with pytest.raises(TypeError, match="expected a NumPy array, got torch.Tensor"):
        adjust_exposure(torch.zeros(2, 2, 3), 0.5)
    with pytest.raises(TypeError, match="exposure must be a number of stops, got None"):
        adjust_exposure(photo(), None)

"""The exposure control: stops of light in linear light, the same through `enhance run` and the pipeline."""

import doctest

import numpy as np
import pytest

import enhance.exposure
from enhance.cli import main
from enhance.exposure import (SHOULDER_KNEE, adjust_exposure, expose_linear, exposure_curve, linear_to_srgb,
                              srgb_to_linear)
from enhance.imageio import Photo, read_image, write_image
from enhance.pipeline import enhance_photo
from enhance.weights import save_weights


def dark_photo(height: int = 24, width: int = 32) -> Photo:
    pixels = np.random.default_rng(0).integers(0, 40, (height, width, 3), dtype=np.uint8)
    return Photo(pixels, None, False, 8, "PNG", None, None)


def test_srgb_transfer_functions_invert_each_other():
    codes = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(codes)), codes, atol=1e-12)
    assert srgb_to_linear(np.array(0.5)) == pytest.approx(0.2140, abs=1e-4)  # mid-gray code: 21% of the light


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_one_stop_doubles_the_light_below_the_knee_and_rolls_off_above(dtype):
    top = np.iinfo(dtype).max
    codes = np.arange(0, top + 1, max(1, top // 255), dtype=dtype)
    brighter = adjust_exposure(codes, 1.0)
    assert brighter.dtype == dtype
    light_in = srgb_to_linear(codes / top)
    below_knee = 2 * light_in <= SHOULDER_KNEE
    # Twice the light, encoded back and rounded to the nearest code: within half a code value.
    doubled_codes = linear_to_srgb(2 * light_in[below_knee]) * top
    assert np.abs(brighter[below_knee] - doubled_codes).max() <= 0.5 + 1e-6
    # Above the knee the light is compressed, not clipped: only white reaches white.
    assert brighter[-1] == top and np.all(brighter[:-1][light_in[:-1] < 0.45] < top)
    clipped_double = linear_to_srgb(np.minimum(2 * light_in[~below_knee], 1.0)) * top
    assert np.all(brighter[~below_knee] <= clipped_double + 0.5)  # compressed: never brighter than twice the light
    assert np.all(np.diff(brighter.astype(np.int64)) >= 0)  # the curve never reverses
    halved_codes = linear_to_srgb(light_in / 2) * top
    assert np.abs(adjust_exposure(codes, -1.0) - halved_codes).max() <= 0.5 + 1e-6
    assert np.count_nonzero(brighter > codes) > 0.9 * codes.size  # all but black and white move


@pytest.mark.parametrize("stops", [0.3, 1.0, 3.0])
def test_the_shoulder_is_smooth_monotone_and_keeps_highlight_gradation(stops):
    light = np.linspace(0.0, 1.0, 100_001)
    out = expose_linear(light, stops)
    slopes = np.diff(out) / np.diff(light)
    assert out[0] == 0.0 and out[-1] == pytest.approx(1.0) and np.all(slopes > 0)  # strictly increasing
    assert np.abs(np.diff(slopes)).max() < 1e-3 * 2**stops  # no kink where the shoulder meets the line
    # The brightest tenth of the input keeps distinct 16-bit codes instead of clipping to one.
    top_tenth = np.round(linear_to_srgb(out[light >= 0.9]) * 65535)
    assert np.unique(top_tenth).size > 50


def test_zero_stops_returns_the_pixels_themselves():
    pixels = dark_photo(8, 8).pixels
    assert adjust_exposure(pixels, 0.0) is pixels


def test_float_photos_follow_the_same_curve():
    codes = np.arange(256, dtype=np.uint8)
    as_float = adjust_exposure(codes.astype(np.float32) / 255, 0.8)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(np.round(as_float * 255).astype(np.uint8), adjust_exposure(codes, 0.8))


def test_plus_and_minus_cancel_below_white():
    codes = np.arange(0, 128, dtype=np.uint8)
    round_trip = adjust_exposure(adjust_exposure(codes, 0.5), -0.5)
    assert np.abs(round_trip.astype(int) - codes).max() <= 1


@pytest.mark.parametrize("stops", [3.5, -4.0, float("nan"), 10**400])
def test_out_of_range_stops_are_an_error(stops):
    with pytest.raises(ValueError, match="must be between -3 and 3 stops"):
        exposure_curve(stops, np.uint8)


def test_pipeline_applies_the_exposure_to_the_networks_result(random_saga_s):
    photo = dark_photo()
    plain = enhance_photo(random_saga_s, photo, tile=0).pixels
    brighter = enhance_photo(random_saga_s, photo, tile=0, exposure=0.7).pixels
    np.testing.assert_array_equal(brighter, exposure_curve(0.7, np.uint8)[plain])
    with pytest.raises(ValueError, match="exposure 9: must be between"):
        enhance_photo(random_saga_s, photo, exposure=9)


def test_run_exposure_flag(tmp_path, random_saga_s, capsys):
    weights = tmp_path / "net.safetensors"
    save_weights(random_saga_s, weights)
    (tmp_path / "in").mkdir()
    source = write_image(tmp_path / "in" / "dark.png", dark_photo())
    out = tmp_path / "out"

    assert main(["run", str(source), "-o", str(out / "plain"), "--weights", str(weights), "--tile", "0"]) == 0
    assert main(["run", str(source), "-o", str(out / "bright"), "--weights", str(weights), "--tile", "0",
                 "--exposure", "0.5"]) == 0
    plain = read_image(out / "plain" / "dark.png").pixels
    bright = read_image(out / "bright" / "dark.png").pixels
    np.testing.assert_array_equal(bright, exposure_curve(0.5, np.uint8)[plain])

    assert main(["run", str(source), "-o", str(out / "bad"), "--weights", str(weights), "--exposure", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "enhance run: --exposure 5: must be between -3 and 3 stops"
    assert not (out / "bad").exists()



def test_doctests_pass():
    result = doctest.testmod(enhance.exposure)
    assert result.attempted > 0 and result.failed == 0

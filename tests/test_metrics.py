import doctest
import math

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import enhance.metrics
from enhance.metrics import (
    colourfulness,
    gt_mean_align,
    mean_brightness,
    psnr,
    psnr_gt_mean,
    quantize_8bit,
    rms_contrast,
    ssim,
    ssim_gt_mean,
)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_uint8(rng, shape=(48, 40, 3)):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def skimage_ssim(a, b, data_range):
    # The parameters the project's ssim() promises (Wang et al.'s reference settings).
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=data_range, channel_axis=-1,
    )


# --- quantize_8bit ---------------------------------------------------------------------------

def test_quantize_8bit_rounds_and_clips():
    x = np.array([-1.0, 0.0, 0.4 / 255, 0.6 / 255, 100.4 / 255, 1.0, 2.0])
    q = quantize_8bit(x)
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 0, 0, 1, 100, 255, 255]


def test_quantize_8bit_round_trips_8bit_values():
    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(quantize_8bit(values / 255.0), values)


# --- PSNR ------------------------------------------------------------------------------------

def test_psnr_identical_is_inf(rng):
    a = random_uint8(rng)
    assert psnr(a, a.copy()) == math.inf
    f = a / 255.0
    assert psnr(f, f.copy(), data_range=1.0) == math.inf


def test_psnr_constant_offset_matches_formula():
    target = np.full((8, 8, 3), 100, dtype=np.uint8)
    output = target + np.uint8(10)
    assert psnr(output, target, data_range=255.0) == pytest.approx(20 * math.log10(255 / 10))
    # uint8 inputs must not wrap around when the output is darker than the target.
    assert psnr(target, output, data_range=255.0) == pytest.approx(20 * math.log10(255 / 10))


def test_psnr_float_offset_with_unit_range():
    target = np.full((8, 8, 3), 0.5)
    assert psnr(target + 0.1, target, data_range=1.0) == pytest.approx(20.0)


def test_psnr_agrees_with_skimage_uint8(rng):
    for _ in range(5):
        a, b = random_uint8(rng), random_uint8(rng)
        assert psnr(a, b, data_range=255.0) == pytest.approx(
            peak_signal_noise_ratio(b, a, data_range=255), rel=1e-12
        )


def test_psnr_agrees_with_skimage_float(rng):
    a = rng.random((30, 20, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    assert psnr(a, b, data_range=1.0) == pytest.approx(
        peak_signal_noise_ratio(b, a, data_range=1.0), rel=1e-12
    )


def test_psnr_protocol_quantised_output(rng):
    """Float output quantised as if saved, then compared at data range 255."""
    target = random_uint8(rng)
    output01 = np.clip(target / 255.0 + rng.normal(0, 0.02, target.shape), 0, 1)
    out8 = quantize_8bit(output01)
    expected = peak_signal_noise_ratio(target, out8, data_range=255)
    assert psnr(out8, target) == pytest.approx(expected)


def test_psnr_shape_mismatch_raises():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


# --- SSIM ------------------------------------------------------------------------------------

def test_ssim_identical_is_one(rng):
    a = random_uint8(rng)
    assert ssim(a, a.copy()) == pytest.approx(1.0)
    assert ssim(a / 255.0, a / 255.0, data_range=1.0) == pytest.approx(1.0)


def test_ssim_agrees_with_skimage_uint8(rng):
    a = random_uint8(rng)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, b, data_range=255.0) == pytest.approx(skimage_ssim(a, b, 255), abs=1e-12)


def test_ssim_agrees_with_skimage_float(rng):
    a = rng.random((40, 36, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert ssim(a, b, data_range=1.0) == pytest.approx(skimage_ssim(a, b, 1.0), abs=1e-12)


def test_ssim_uint8_and_float_agree(rng):
    a, b = random_uint8(rng), random_uint8(rng)
    assert ssim(a, b, 255.0) == pytest.approx(ssim(a / 255.0, b / 255.0, 1.0), abs=1e-9)


def test_ssim_rejects_non_rgb():
    with pytest.raises(ValueError):
        ssim(np.zeros((16, 16)), np.zeros((16, 16)))


# --- GT-mean ---------------------------------------------------------------------------------

def test_gt_mean_half_brightness_becomes_target(rng):
    target = rng.random((20, 24, 3)) * 0.9
    aligned = gt_mean_align(0.5 * target, target)
    assert np.allclose(aligned, target)
    target8 = 2 * rng.integers(0, 128, size=(20, 24, 3), dtype=np.uint8)
    assert psnr_gt_mean(target8 // 2, target8) > 200  # float rounding only
    assert ssim_gt_mean(target8 // 2, target8) == pytest.approx(1.0)


def test_gt_mean_scores_the_aligned_output_unrounded_as_hvi_cidnet_does(rng):
    """measure.py scores np.clip(im1 * ratio, 0, 255) as a float array: no second rounding."""
    target = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    output = (target * 0.37 + rng.integers(0, 9, size=target.shape)).astype(np.uint8)
    gray = lambda img: (img.astype(np.float64) @ [0.299, 0.587, 0.114]).mean()
    aligned = np.clip(output * (gray(target) / gray(output)), 0, 255)
    assert not np.array_equal(aligned, np.round(aligned))  # so a second rounding would show
    mse = np.mean((aligned - target) ** 2)
    assert psnr_gt_mean(output, target) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    assert ssim_gt_mean(output, target) == pytest.approx(ssim(aligned, target, data_range=255.0), abs=1e-12)


def test_gt_mean_matches_hvi_cidnet_formula(rng):
    """The formula of HVI-CIDNet's measure.py, with cv2's RGB2GRAY on float images."""
    output = rng.random((20, 24, 3)).astype(np.float32) * 0.4
    target = rng.random((20, 24, 3)).astype(np.float32)
    mean_restored = cv2.cvtColor(output, cv2.COLOR_RGB2GRAY).mean()
    mean_target = cv2.cvtColor(target, cv2.COLOR_RGB2GRAY).mean()
    expected = np.clip(output * (mean_target / mean_restored), 0, 1)
    assert np.allclose(gt_mean_align(output, target), expected, atol=1e-6)


def test_gt_mean_uses_bt601_weights():
    # Pure-blue target, pure-green output: only the weights decide the scale.
    target = np.zeros((2, 2, 3)) + [0.0, 0.0, 1.0]   # gray 0.114
    output = np.zeros((2, 2, 3)) + [0.0, 0.5, 0.0]   # gray 0.2935
    aligned = gt_mean_align(output, target)
    assert aligned[0, 0, 1] == pytest.approx(0.5 * 0.114 / (0.587 * 0.5))


def test_gt_mean_accepts_uint8_and_clips():
    target = np.full((2, 2, 3), 200, dtype=np.uint8)
    output = np.array([[[10] * 3, [250] * 3], [[10] * 3, [10] * 3]], dtype=np.uint8)
    aligned = gt_mean_align(output, target)
    assert aligned.dtype == np.float64
    assert aligned.max() == 1.0 and aligned.min() >= 0.0


def test_gt_mean_black_output_unchanged():
    black = np.zeros((4, 4, 3))
    assert np.array_equal(gt_mean_align(black, np.full((4, 4, 3), 0.5)), black)


# --- no-reference statistics -----------------------------------------------------------------

def test_mean_brightness_and_contrast():
    gray = np.full((4, 4, 3), 0.3)
    assert mean_brightness(gray) == pytest.approx(0.3)
    assert rms_contrast(gray) == pytest.approx(0.0)
    half = np.zeros((2, 2, 3))
    half[0] = 1.0
    assert mean_brightness(half) == pytest.approx(0.5)
    assert rms_contrast(half) == pytest.approx(0.5)


def test_colourfulness_gray_is_zero(rng):
    g = rng.random((10, 10, 1)).repeat(3, axis=2)
    assert colourfulness(g) == pytest.approx(0.0, abs=1e-9)


def test_colourfulness_analytic_red_green():
    # rg = +255 / -255 (std 255, mean 0); yb = 127.5 on both pixels (std 0, mean 127.5).
    img = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert colourfulness(img) == pytest.approx(255 + 0.3 * 127.5)


# --- doctests --------------------------------------------------------------------------------

def test_doctests_pass():
    result = doctest.testmod(enhance.metrics)
    assert result.attempted > 0
    assert result.failed == 0

"""Image quality metrics for low-light enhancement benchmarks.

Full-reference metrics (need a ground-truth image):

- :func:`psnr` and :func:`ssim` take an explicit ``data_range`` (255 for 8-bit images).
- :func:`psnr_gt_mean` and :func:`ssim_gt_mean` first rescale the output's brightness to the
  ground truth's (:func:`gt_mean_align`), the "GT-mean" protocol some papers report as well.

The evaluation protocol we follow (as in Retinexformer / HVI-CIDNet evaluations): the model's
float output in [0, 1] is quantised to 8 bits exactly as if it had been saved to a PNG
(:func:`quantize_8bit`), then compared with the 8-bit ground truth at ``data_range=255``::

    out8 = quantize_8bit(model_output)          # float [0, 1] -> uint8
    score = psnr(out8, target_uint8, data_range=255.0)

No-reference statistics (for photos without ground truth): :func:`mean_brightness`,
:func:`rms_contrast`, :func:`colourfulness`.

Images are H x W x 3 RGB numpy arrays throughout.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

__all__ = [
    "quantize_8bit",
    "psnr",
    "ssim",
    "gt_mean_align",
    "psnr_gt_mean",
    "ssim_gt_mean",
    "mean_brightness",
    "exposure_stops",
    "rms_contrast",
    "colourfulness",
]

# ITU-R BT.601 luma weights for R, G, B: the weights cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) uses,
# documented by OpenCV as Y = 0.299 R + 0.587 G + 0.114 B
# (https://docs.opencv.org/3.0.0/de/d25/imgproc_color_conversions.html).
BT601_RGB_WEIGHTS = np.array([0.299, 0.587, 0.114])

# Side of SSIM's Gaussian window: scikit-image truncates a sigma-1.5 Gaussian at 3.5 sigma,
# 2 * int(3.5 * 1.5 + 0.5) + 1 = 11 taps. A smaller image has no position where it fits.
SSIM_MIN_SIDE = 11


def _check_pair(output: np.ndarray, target: np.ndarray) -> None:
    if output.shape != target.shape:
        raise ValueError(f"output and target differ in shape: {output.shape} vs {target.shape}")


def _check_rgb(img: np.ndarray, name: str = "image") -> None:
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must be H x W x 3 RGB, got shape {img.shape}")


def _to_float01(img: np.ndarray) -> np.ndarray:
    """uint8 (0-255) or uint16 (0-65535) -> float64 in [0, 1]; float arrays are taken to be in
    [0, 1] already."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if img.dtype == np.uint16:  # read_image keeps 16-bit files as uint16: read as floats they were 0-65535
        return img.astype(np.float64) / 65535.0
    return img.astype(np.float64)


def _gray(img01: np.ndarray) -> np.ndarray:
    return img01 @ BT601_RGB_WEIGHTS


def quantize_8bit(img_float01: np.ndarray) -> np.ndarray:
    """Round a float image in [0, 1] to uint8 the way saving it as an 8-bit PNG would.

    Values outside [0, 1] are clipped, as a PNG cannot hold them.

    >>> quantize_8bit(np.array([-0.2, 0.0, 0.5, 0.999, 1.0, 1.7]))
    array([  0,   0, 128, 255, 255, 255], dtype=uint8)
    """
    x = np.asarray(img_float01, dtype=np.float64)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def psnr(output: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels.

    ``data_range`` is the span of possible pixel values: 255 for 8-bit images, 1 for
    float images in [0, 1]. Identical images have no error at all, so the result is
    ``float('inf')`` (some papers' scripts add 1e-8 to the MSE and report ~128 dB instead).

    >>> a = np.zeros((4, 4, 3), dtype=np.uint8)
    >>> b = np.full((4, 4, 3), 10, dtype=np.uint8)
    >>> round(psnr(a, b, data_range=255.0), 4)   # 20 * log10(255 / 10)
    28.1308
    >>> psnr(a, a)
    inf
    """
    # float64 first: subtracting uint8 arrays would wrap around.
    out = np.asarray(output, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    _check_pair(out, tgt)
    mse = float(np.mean((out - tgt) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(output: np.ndarray, target: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity of two H x W x 3 images, per channel then averaged.

    The parameters are those of Wang et al.'s reference MATLAB code (11-tap Gaussian
    window with sigma 1.5, K1 = 0.01, K2 = 0.03, population covariance); scikit-image's
    documentation gives these settings for matching that implementation. Like the
    reference code, the mean ignores a 5-pixel border where the window does not fit.
    Images must be at least 11 x 11. Accepts uint8 or float arrays; ``data_range`` must
    match them (255 for uint8, 1 for floats in [0, 1]).

    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    >>> ssim(a, a)
    1.0
    >>> ssim(a, 255 - a) < 0
    True
    """
    out = np.asarray(output)
    tgt = np.asarray(target)
    _check_pair(out, tgt)
    _check_rgb(out, "output")
    if min(out.shape[:2]) < SSIM_MIN_SIDE:
        # scikit-image's own message here asks for "at least 7x7", which is not enough for this window.
        raise ValueError(f"SSIM needs images of at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels "
                         f"(its Gaussian window), got {out.shape[1]}x{out.shape[0]}")
    # skimage wants matching dtypes; float64 keeps uint8 and float inputs on one path.
    score = structural_similarity(
        out.astype(np.float64),
        tgt.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        K1=0.01,
        K2=0.03,
        data_range=data_range,
        channel_axis=-1,
    )
    return float(score)


def gt_mean_align(output01: np.ndarray, target01: np.ndarray) -> np.ndarray:
    """Scale the output so its mean gray level equals the ground truth's ("GT-mean").

    Low-light enhancement is ill-posed in overall brightness, so some papers also report
    metrics after removing that one degree of freedom. The formula is the one in HVI-CIDNet's
    ``measure.py`` (github.com/Fediory/HVI-CIDNet, ``--use_GT_mean``)::

        mean_restored = cv2.cvtColor(im1, cv2.COLOR_RGB2GRAY).mean()
        mean_target = cv2.cvtColor(im2, cv2.COLOR_RGB2GRAY).mean()
        im1 = np.clip(im1 * (mean_target / mean_restored), 0, 255)

    with gray = 0.299 R + 0.587 G + 0.114 B (BT.601, OpenCV's RGB2GRAY). Known variations:
    HVI-CIDNet applies it to 8-bit arrays, where cv2 rounds each gray pixel to an integer
    before the mean; we compute the gray level in float, a difference far below 1/255.
    Retinexformer's ``test_from_dataset.py --GT_mean`` calls ``COLOR_BGR2GRAY`` on RGB arrays,
    i.e. it swaps the red and blue weights; we use the RGB weights, as the gray level of an
    RGB image should.

    Accepts uint8, uint16 or float [0, 1] images; returns float64 in [0, 1]. An all-black output
    has no brightness to scale and is returned unchanged (as float).

    >>> target = np.full((2, 2, 3), 0.6)
    >>> aligned = gt_mean_align(0.5 * target, target)
    >>> bool(np.allclose(aligned, target))
    True
    """
    out = _to_float01(output01)
    tgt = _to_float01(target01)
    _check_pair(out, tgt)
    _check_rgb(out, "output")
    mean_out = float(_gray(out).mean())
    if mean_out == 0.0:
        return out
    mean_tgt = float(_gray(tgt).mean())
    return np.clip(out * (mean_tgt / mean_out), 0.0, 1.0)


def psnr_gt_mean(output01: np.ndarray, target01: np.ndarray) -> float:
    """PSNR (dB, 8-bit range) after :func:`gt_mean_align`.

    As in HVI-CIDNet's ``measure.py``, the aligned output is scored as it comes, on the 0-255
    scale but not rounded to 8 bits again, against the 8-bit target at ``data_range=255``.
    Accepts uint8 or float [0, 1] images; a float target is quantised as if saved.

    >>> target = np.full((4, 4, 3), 150, dtype=np.uint8)
    >>> psnr_gt_mean(target // 2, target) > 100   # only the brightness differed
    True
    """
    aligned, target8 = _gt_mean_pair(output01, target01)
    return psnr(aligned, target8, data_range=255.0)


def ssim_gt_mean(output01: np.ndarray, target01: np.ndarray) -> float:
    """SSIM (8-bit range) after :func:`gt_mean_align`, scored as in :func:`psnr_gt_mean`.

    >>> rng = np.random.default_rng(1)
    >>> target = rng.random((16, 16, 3)) * 0.8
    >>> round(ssim_gt_mean(0.5 * target, target), 2)
    1.0
    """
    aligned, target8 = _gt_mean_pair(output01, target01)
    return ssim(aligned, target8, data_range=255.0)


def _gt_mean_pair(output01: np.ndarray, target01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The aligned output on the 0-255 scale (float, unrounded) and the 8-bit target."""
    return 255.0 * gt_mean_align(output01, target01), quantize_8bit(_to_float01(target01))


def mean_brightness(img01: np.ndarray) -> float:
    """Mean BT.601 gray level, in [0, 1] (0 black, 1 white).

    Accepts float [0, 1] (or uint8, uint16) RGB.

    >>> round(mean_brightness(np.full((2, 2, 3), 0.25)), 6)
    0.25
    """
    img = _to_float01(img01)
    _check_rgb(img)
    return float(_gray(img).mean())


def exposure_stops(output01: np.ndarray, target01: np.ndarray) -> float:
    """How much brighter the output is than the target, in photographic stops.

    log2 of the ratio of mean BT.601 gray levels: +1 is twice as bright, -1 half, 0 the
    same global exposure. Accepts float [0, 1] or uint8 RGB; a black target gives inf.

    >>> target = np.full((4, 4, 3), 0.2)
    >>> exposure_stops(2 * target, target)
    1.0
    >>> exposure_stops(target / 4, target)
    -2.0
    """
    out, ref = mean_brightness(output01), mean_brightness(target01)
    if ref == 0.0:
        return math.inf if out > 0.0 else 0.0
    if out == 0.0:
        return -math.inf
    return math.log2(out / ref)


def rms_contrast(img01: np.ndarray) -> float:
    """RMS contrast: standard deviation of the BT.601 gray levels, in [0, 0.5].

    Accepts float [0, 1] (or uint8, uint16) RGB. A flat image has contrast 0; half black and half
    white has the maximum, 0.5.

    >>> rms_contrast(np.full((2, 2, 3), 0.7))
    0.0
    >>> round(rms_contrast(np.array([[[0.0] * 3, [1.0] * 3]])), 6)
    0.5
    """
    img = _to_float01(img01)
    _check_rgb(img)
    return float(_gray(img).std())


def colourfulness(img01: np.ndarray) -> float:
    """Colourfulness M of Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images".

    With rg = R - G and yb = (R + G) / 2 - B over all pixels,
    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2).
    Computed on the 0-255 scale, as in the paper, so values are comparable with its
    published ones; 0 for any gray image. Accepts float [0, 1] (or uint8, uint16) RGB.

    >>> colourfulness(np.full((2, 2, 3), 0.5))
    0.0
    >>> round(colourfulness(np.zeros((2, 2, 3)) + [1.0, 0.0, 0.0]), 2)   # pure red
    85.53
    """
    img = _to_float01(img01)
    _check_rgb(img)
    rgb = img * 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    offset = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * offset

"""The user's say on brightness: an exposure change, in stops, applied to the enhanced photo.

How bright a dark scene should come out is partly taste. LOL's ground truths vary in exposure
by 0.27 stops, and the models miss them by about 0.2 stops, even on the photos they were trained
on (README, "Why plain PSNR lags GT-mean"). So `enhance run --exposure` and the web page's
slider let the user move it, the way a camera's exposure compensation does: in linear light,
where +1 stop is twice the light. Light that a brighter exposure would push past white is rolled
off on a shoulder instead of clipped, as a raw converter's exposure slider does: a lamp or a
window keeps its gradation, and only white stays white.

The change is a tone curve over code values, so a photo costs one table lookup per sample:
no float copy of a 12-MP photo, and the same curve for every tile.
"""

from __future__ import annotations

import numpy as np

EXPOSURE_RANGE = (-3.0, 3.0)  # stops; beyond this the result is mostly black or white
SHOULDER_KNEE = 0.6  # linear light; below it a brighter exposure is exact, above it rolls off


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light in [0, 1] (IEC 61966-2-1)."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1]."""
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.maximum(v, 0.0031308) ** (1 / 2.4) - 0.055)


def check_stops(stops: float, name: str = "exposure") -> float:
    """`stops` as a float, or a ValueError that names `name` and the allowed range."""
    low, high = EXPOSURE_RANGE
    try:
        value = float(stops)
    except OverflowError:  # an integer too large for a float: out of range like any other
        value = float("inf")
    except (TypeError, ValueError):  # None, "bright", an array: np.isfinite's message names none of it
        raise TypeError(f"{name} must be a number of stops, got {stops!r}") from None
    if not np.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} {value:g}: must be between {low:g} and {high:g} stops")
    return value


def expose_linear(linear: np.ndarray, stops: float) -> np.ndarray:
    """Linear light in [0, 1] times 2**stops, with a highlight shoulder that keeps it in [0, 1].

    Below SHOULDER_KNEE the light is exactly scaled. Above it, the scaled range [knee, gain] is
    mapped onto [knee, 1] by a rational shoulder, h(t) = s t / (1 + (s - 1) t) over t in [0, 1],
    whose start slope s matches the straight part: the curve stays smooth and monotone, and only
    input white reaches white. Its slope falls off as 1/(1 + (s - 1) t)^2, slowly enough that
    even +3 stops leaves the brightest input distinct codes.

    >>> expose_linear(np.array([0.1, 0.25, 1.0]), 1.0).round(3).tolist()  # twice the light, up to the knee
    [0.2, 0.5, 1.0]
    """
    gain = 2.0 ** check_stops(stops)
    scaled = np.clip(linear, 0.0, 1.0) * gain
    knee = SHOULDER_KNEE
    if gain <= 1.0:
        return scaled  # darker: nothing reaches white, nothing to roll off
    # Position along the shoulder, 0 at the knee and 1 at input white.
    t = np.clip((scaled - knee) / (gain - knee), 0.0, 1.0)
    slope = (gain - knee) / (1.0 - knee)  # d(shoulder)/dt at the knee, in units of (1 - knee)
    shoulder = knee + (1.0 - knee) * slope * t / (1.0 + (slope - 1.0) * t)
    return np.where(scaled <= knee, scaled, shoulder)


def exposure_curve(stops: float, dtype: np.dtype) -> np.ndarray:
    """The lookup table that changes the exposure of a uint8 or uint16 photo by `stops`.

    >>> curve = exposure_curve(1.0, np.uint8)
    >>> int(curve[0]), int(curve[128]), int(curve[230]), int(curve[255])  # black, mid-gray, highlight, white
    (0, 176, 250, 255)
    """
    top = np.iinfo(dtype).max
    codes = np.arange(top + 1, dtype=np.float64) / top
    return np.round(linear_to_srgb(expose_linear(srgb_to_linear(codes), stops)) * top).astype(dtype)


def adjust_exposure(pixels: np.ndarray, stops: float) -> np.ndarray:
    """`pixels` (uint8, uint16 or float in [0, 1], any shape) with their exposure changed by `stops`.

    0 stops returns `pixels` itself, untouched.
    """
    if check_stops(stops) == 0.0:
        return pixels
    if not isinstance(pixels, (np.ndarray, np.generic)):  # a torch tensor, a list: say so, not fail on its dtype
        raise TypeError(f"exposure: expected a NumPy array, got {type(pixels).__module__}.{type(pixels).__name__}")
    if not pixels.dtype.isnative:  # big-endian uint16 is still uint16
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    if pixels.dtype in (np.uint8, np.uint16):
        return exposure_curve(stops, pixels.dtype)[pixels]
    if np.issubdtype(pixels.dtype, np.floating):
        # At least float32 inside: the curve in float16 arithmetic takes white to 0.9995.
        work = np.clip(pixels, 0.0, 1.0).astype(np.promote_types(pixels.dtype, np.float32), copy=False)
        return linear_to_srgb(expose_linear(srgb_to_linear(work), stops)).astype(pixels.dtype)
    raise ValueError(f"exposure: expected uint8, uint16 or float pixels, got {pixels.dtype}")

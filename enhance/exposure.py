"""The user's say on brightness: an exposure change, in stops, applied to the enhanced photo.

How bright a dark scene should come out is partly taste. LOL's ground truths vary in exposure
by 0.27 stops, and the models miss them by about 0.2 stops, even on the photos they were trained
on (README, "Why plain PSNR lags GT-mean"). So `enhance run --exposure` and the web page's
slider let the user move it, the way a camera's exposure compensation does: in linear light,
where +1 stop is twice the light. Highlights that a brighter exposure pushes past white clip,
as they would in the camera.

The change is a tone curve over code values, so a photo costs one table lookup per sample:
no float copy of a 12-MP photo, and the same curve for every tile.
"""

from __future__ import annotations

import numpy as np

EXPOSURE_RANGE = (-3.0, 3.0)  # stops; beyond this the result is mostly black or clipped white


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light in [0, 1] (IEC 61966-2-1)."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1]."""
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.maximum(v, 0.0031308) ** (1 / 2.4) - 0.055)


def check_stops(stops: float, name: str = "exposure") -> float:
    """`stops` as a float, or a ValueError that names `name` and the allowed range."""
    low, high = EXPOSURE_RANGE
    if not np.isfinite(stops) or not low <= stops <= high:
        raise ValueError(f"{name} {stops:g}: must be between {low:g} and {high:g} stops")
    return float(stops)


def exposure_curve(stops: float, dtype: np.dtype) -> np.ndarray:
    """The lookup table that changes the exposure of a uint8 or uint16 photo by `stops`.

    >>> curve = exposure_curve(1.0, np.uint8)
    >>> int(curve[0]), int(curve[255]), int(curve[128])  # black stays black, white clips, mid-gray brightens
    (0, 255, 176)
    """
    top = np.iinfo(dtype).max
    codes = np.arange(top + 1, dtype=np.float64) / top
    linear = srgb_to_linear(codes) * 2.0 ** check_stops(stops)
    return np.round(linear_to_srgb(np.clip(linear, 0.0, 1.0)) * top).astype(dtype)


def adjust_exposure(pixels: np.ndarray, stops: float) -> np.ndarray:
    """`pixels` (uint8, uint16 or float in [0, 1], any shape) with their exposure changed by `stops`.

    0 stops returns `pixels` itself, untouched.
    """
    if check_stops(stops) == 0.0:
        return pixels
    if pixels.dtype in (np.uint8, np.uint16):
        return exposure_curve(stops, pixels.dtype)[pixels]
    if np.issubdtype(pixels.dtype, np.floating):
        linear = srgb_to_linear(np.clip(pixels, 0.0, 1.0)) * 2.0**stops
        return linear_to_srgb(np.clip(linear, 0.0, 1.0)).astype(pixels.dtype)
    raise ValueError(f"exposure: expected uint8, uint16 or float pixels, got {pixels.dtype}")

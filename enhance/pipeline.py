"""One photo through the network: a `Photo` in, an enhanced `Photo` out (alpha, depth, metadata kept)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import cv2
import numpy as np

from .exposure import adjust_exposure, check_stops
from .imageio import Photo, convert_pixels
from .inference import enhance_image
from .metrics import mean_brightness
from .network import SAGAUNet


def enhance_photo(model: SAGAUNet, photo: Photo, *, tile: Union[int, str] = "auto", precision: str = "auto",
                  on_tile: Optional[Callable[[int, int], None]] = None, exposure: float = 0.0,
                  strength: float = 1.0) -> Photo:
    """The enhanced photo: new RGB pixels in the same dtype; alpha, grayscale flag, ICC and EXIF
    are carried over untouched so that `write_image` writes what came in.

    exposure: stops of light added to (or, negative, taken from) the network's result.
    strength: how much of the result, mixed with the original by `blend` (1: the result alone).
    """
    check_stops(exposure)  # before the network runs, not after
    check_strength(strength)
    pixels = enhance_image(model, photo.pixels, tile=tile, precision=precision, on_tile=on_tile)
    enhanced = expose_photo(dataclasses.replace(photo, pixels=pixels, notes=list(photo.notes)), exposure)
    return blend(photo, enhanced, strength)


def expose_photo(photo: Photo, stops: float) -> Photo:
    """`photo` with `stops` of light added (negative: taken away) by `adjust_exposure`'s curve;
    `photo` itself for 0 stops."""
    if check_stops(stops) == 0.0:
        return photo
    return dataclasses.replace(photo, pixels=adjust_exposure(photo.pixels, stops))


def check_strength(strength: float, name: str = "strength") -> float:
    """`strength` as a float, or a ValueError that names `name` and the allowed range."""
    if not 0.0 <= strength <= 1.0:  # NaN fails too
        raise ValueError(f"{name} {strength:g}: must be between 0 and 1")
    return float(strength)


def blend(original: Photo, enhanced: Photo, strength: float) -> Photo:
    """The enhanced photo mixed with the original: strength 1 is the network's own output
    (returned untouched), 0 the original. cv2.addWeighted rounds and saturates in uint8 and
    uint16 alike without a full-size float copy; float32 photos in 0..1 stay in 0..1."""
    if check_strength(strength) == 1.0:
        return enhanced
    mixed = cv2.addWeighted(enhanced.pixels, strength, original.pixels, 1.0 - strength, 0.0)
    return dataclasses.replace(enhanced, pixels=mixed)


# The dark inputs of LOL-v1's 340 training pairs have mean gray levels of 1-30% of white (median
# 5%). The models brighten whatever they are given, so a photo well above that range, such as
# one taken in daylight, comes out too bright.
BRIGHT_INPUT_LEVEL = 0.35
ANY_EXPOSURE_MODEL = "saga-s-any-exposure"  # trained on inputs up to 3 stops brighter than LOL's


def bright_input_note(photo: Photo) -> Optional[str]:
    """A sentence saying the photo is brighter than the dark photos the models learnt from, or
    None for a dark one. Callers add how to tone the result down with their own controls."""
    sample = convert_pixels(photo.pixels[::4, ::4], np.float32)  # a 16th of the pixels says the level
    level = mean_brightness(sample)
    if level <= BRIGHT_INPUT_LEVEL:
        return None
    return (f"this photo is not dark (mean level {level:.0%} of white; the models learnt from dark "
            "photos at 1-30%), so the result may come out too bright")

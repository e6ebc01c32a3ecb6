"""One photo through the network: a `Photo` in, an enhanced `Photo` out (alpha, depth, metadata kept)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

import cv2

from .exposure import adjust_exposure, check_stops
from .imageio import Photo
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


# The dark inputs of LOL-v1's 340 training pairs have mean gray levels of 1.1-30% of white
# (median 5%). The models brighten whatever they are given, so a photo well above that range,
# such as one taken in daylight, comes out too bright; one well below it, too dark and noisy
# (README, "Inputs darker or brighter than LOL's").
BRIGHT_INPUT_LEVEL = 0.35
DARK_INPUT_LEVEL = 0.005  # about a stop below LOL's darkest
ANY_EXPOSURE_MODEL = "saga-s-any-exposure"  # trained on inputs 3 stops darker to 3 brighter than LOL's


@dataclasses.dataclass(frozen=True)
class LevelNote:
    """A photo outside the range of darkness the models learnt from: what to say, and the
    exposure change in stops that points the right way."""

    text: str
    stops: float

    def with_advice(self, remedies: list[str]) -> str:
        """The note and the remedies a caller offers: "...; a, b or c may suit it better"."""
        if not remedies:  # the user is adjusting already
            return self.text
        listed = remedies[0] if len(remedies) == 1 else f"{', '.join(remedies[:-1])} or {remedies[-1]}"
        return f"{self.text}; {listed} may suit it better"


def input_level_note(photo: Photo) -> Optional[LevelNote]:
    """A LevelNote for a photo much brighter or darker than LOL's dark inputs, else None.
    Callers add how to correct it with their own controls."""
    level = mean_brightness(photo.pixels[::4, ::4])  # a 16th of the pixels says the level
    learnt = "the models learnt from dark photos at 1-30%"
    if level > BRIGHT_INPUT_LEVEL:
        return LevelNote(f"this photo is not dark (mean level {level:.0%} of white; {learnt}), so the result "
                         "may come out too bright", -1.0)
    if level < DARK_INPUT_LEVEL:
        return LevelNote(f"this photo is darker than any the models learnt from (mean level {level:.2%} of "
                         f"white; {learnt}), so the result may come out too dark", +1.0)
    return None

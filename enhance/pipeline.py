"""One photo through the network: a `Photo` in, an enhanced `Photo` out (alpha, depth, metadata kept)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

from .exposure import adjust_exposure, check_stops
from .imageio import Photo
from .inference import enhance_image
from .network import SAGAUNet


def enhance_photo(model: SAGAUNet, photo: Photo, *, tile: Union[int, str] = "auto", precision: str = "auto",
                  on_tile: Optional[Callable[[int, int], None]] = None, exposure: float = 0.0) -> Photo:
    """The enhanced photo: new RGB pixels in the same dtype; alpha, grayscale flag, ICC and EXIF
    are carried over untouched so that `write_image` writes what came in.

    exposure: stops of light added to (or, negative, taken from) the network's result.
    """
    check_stops(exposure)  # before the network runs, not after
    pixels = enhance_image(model, photo.pixels, tile=tile, precision=precision, on_tile=on_tile)
    return expose_photo(dataclasses.replace(photo, pixels=pixels, notes=list(photo.notes)), exposure)


def expose_photo(photo: Photo, stops: float) -> Photo:
    """`photo` with `stops` of light added (negative: taken away) by `adjust_exposure`'s curve;
    `photo` itself for 0 stops."""
    if check_stops(stops) == 0.0:
        return photo
    return dataclasses.replace(photo, pixels=adjust_exposure(photo.pixels, stops))

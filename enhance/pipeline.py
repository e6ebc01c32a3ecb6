"""One photo through the network: a `Photo` in, an enhanced `Photo` out (alpha, depth, metadata kept)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Union

from .imageio import Photo
from .inference import enhance_image
from .network import SAGAUNet


def enhance_photo(model: SAGAUNet, photo: Photo, *, tile: Union[int, str] = "auto", precision: str = "auto",
                  on_tile: Optional[Callable[[int, int], None]] = None) -> Photo:
    """The enhanced photo: new RGB pixels in the same dtype; alpha, grayscale flag, ICC and EXIF
    are carried over untouched so that `write_image` writes what came in."""
    pixels = enhance_image(model, photo.pixels, tile=tile, precision=precision, on_tile=on_tile)
    return dataclasses.replace(photo, pixels=pixels, notes=list(photo.notes))

"""saga-enhance: low-light photo enhancement with SAGA (selective adaptive gating) linear attention.

    import enhance
    model = enhance.load_model()                  # the default model with its shipped weights
    bright = enhance.enhance_image(model, photo)  # H x W x 3 uint8 / uint16 / float in [0, 1]
    brighter = enhance.adjust_exposure(bright, 0.5)  # half a stop more light, as `--exposure 0.5`

    # A file in, a file out, as `enhance run` does: bit depth, alpha, ICC and EXIF kept.
    dark = enhance.read_image("dark.jpg")
    enhance.write_image("bright.jpg", enhance.enhance_photo(model, dark, exposure=0.5))
"""

import importlib

__version__ = "0.1.0"

# Each name and the module that holds it, imported on first use (PEP 562): `enhance --help`
# then starts without PyTorch, and a subcommand imports only what it needs.
_EXPORTS = {
    "adjust_exposure": ".exposure",
    "enhance_image": ".inference",
    "enhance_photo": ".pipeline",
    "read_image": ".imageio",
    "write_image": ".imageio",
    "create_model": ".models",
    "list_models": ".models",
    "load_model": ".weights",
    "WeightsError": ".weights",
    "UntrainedModelError": ".weights",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

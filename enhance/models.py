"""The registry of named models: one `create_model(name)` over named configurations (timm-style).

Each entry names a network configuration and, once trained, its shipped weights file in
`weights/` with the file's sha256; `enhance.weights.load_model` checks the file against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from .network import SAGAUNet, UNetConfig

DEFAULT_MODEL = "saga-s"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config: UNetConfig
    description: str
    weights: Optional[str] = None  # file name under weights/, None until trained
    sha256: Optional[str] = None  # of that file; load_model refuses a file that differs


SAGA_S = UNetConfig(widths=(16, 32, 64, 96), encoder_blocks=(1, 1, 1), middle_blocks=1, decoder_blocks=(1, 1, 1))

MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            "saga-s",
            SAGA_S,
            "the default: fast on a CPU, for photos about as dark as LOL's (4 levels, 7 SAGA blocks)",
            weights="saga-s.safetensors",
            sha256="bcf921c3dcac1582c7d3d9012ba63990439f567d6b5a438d39a15a5b525c80d7",
        ),
        ModelEntry(
            "saga-s-any-exposure",
            SAGA_S,
            "for photos much darker or brighter than LOL's: saga-s fine-tuned on inputs shifted up to 3 stops",
            weights="saga-s-any-exposure.safetensors",
            sha256="08b70e3357e98012ec6cd66ae77b8250ce966d5c4e62ba227bf9ee25ce8506e1",
        ),
        ModelEntry(
            "saga-l",
            UNetConfig(widths=(24, 48, 96, 144), encoder_blocks=(1, 1, 1), middle_blocks=2,
                       decoder_blocks=(1, 1, 1), head_dim=24),
            "larger, sized like Retinexformer: 2.3x the FLOPs of saga-s for slightly higher SSIM (8 SAGA blocks)",
            weights="saga-l.safetensors",
            sha256="1ae42d4ecddd5eefaee0e1d49ff428b84c691e42db3c169fa863314743bf0f32",
        ),
    )
}


def list_models() -> list[str]:
    """Names of the registered models, default first."""
    return sorted(MODELS, key=lambda name: (name != DEFAULT_MODEL, name))


def get_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return MODELS[name]


def create_model(name: str = DEFAULT_MODEL, **overrides) -> SAGAUNet:
    """An untrained network of a registered configuration; keyword arguments override its fields.

    >>> create_model("saga-s", attention="linear").config.attention
    'linear'
    """
    return SAGAUNet(replace(get_entry(name).config, **overrides))

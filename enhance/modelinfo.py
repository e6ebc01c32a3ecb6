"""`enhance models`: what each registered model is, how big, whether its weights are here and
intact, and how it scored on the validation split (from its model card, weights/<name>.json).

    enhance models           one line per model, the default first
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from .models import DEFAULT_MODEL, create_model, get_entry, list_models
from .weights import WEIGHTS_DIR, sha256_of


@dataclass(frozen=True)
class ModelInfo:
    name: str
    parameters: int
    weights: str  # "ok", "missing", "unreadable", "sha256 mismatch" or "not trained"
    val_psnr: Optional[float]  # plain PSNR/SSIM on datasets/lol_v1_val.txt, from the model card
    val_ssim: Optional[float]
    description: str


def model_info(name: str) -> ModelInfo:
    """The facts `enhance models` prints for one registered model."""
    entry = get_entry(name)
    parameters = sum(p.numel() for p in create_model(name).parameters())
    if not entry.weights or not entry.sha256:
        weights = "not trained"
    elif not (WEIGHTS_DIR / entry.weights).is_file():
        weights = "missing"
    else:
        try:
            weights = "ok" if sha256_of(WEIGHTS_DIR / entry.weights) == entry.sha256 else "sha256 mismatch"
        except OSError:  # e.g. no read permission: a status like the others, not a traceback
            weights = "unreadable"
    psnr = ssim = None
    if weights == "ok":  # a card's scores describe its weights file only: checked by sha256 below
        psnr, ssim = _card_scores(WEIGHTS_DIR / f"{name}.json", entry.sha256)
    return ModelInfo(name, parameters, weights, psnr, ssim, entry.description)


def _card_scores(card, sha256: str) -> tuple[Optional[float], Optional[float]]:
    """Validation PSNR and SSIM from a model card that names these weights (by sha256), else None."""
    try:
        facts = json.loads(card.read_text())
        validation = facts["validation"]
        if facts.get("sha256") != sha256:
            return None, None
        return float(validation["psnr"]), float(validation["ssim"])
    except (OSError, ValueError, TypeError, KeyError):  # no card, or one that is not what we wrote
        return None, None


def add_arguments(parser) -> None:
    """`enhance models` takes no options."""


def main(args) -> int:
    rows = [model_info(name) for name in list_models()]
    names = [f"{r.name} (default)" if r.name == DEFAULT_MODEL else r.name for r in rows]
    width = max(map(len, names))
    print(f"{'model':<{width}}  {'params':>7}  {'weights':<15}  {'val PSNR/SSIM':<14}  description")
    for name, r in zip(names, rows):
        scores = f"{r.val_psnr:.2f} / {r.val_ssim:.3f}" if r.val_psnr is not None and r.val_ssim is not None else "-"
        print(f"{name:<{width}}  {r.parameters / 1e6:6.2f}M  {r.weights:<15}  {scores:<14}  {r.description}")
    print(f"\nweights: {WEIGHTS_DIR}; val: plain PSNR/SSIM on datasets/lol_v1_val.txt at the end of training "
          "(bf16), from each model's card (<name>.json there), shown when the card names the weights' sha256 "
          "and they check out")
    return 0 if all(r.weights == "ok" for r in rows) else 1

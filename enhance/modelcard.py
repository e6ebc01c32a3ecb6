"""Ship a training run's best EMA weights: `weights/<name>.safetensors` plus its model card.

    python -m enhance.modelcard runs/saga-s --name saga-s --hardware "2-core AMD EPYC CPU, bf16"

The card (`weights/<name>.json`) records what a user needs to trust the file: architecture,
parameter count, sha256, training data and licence, steps, wall time, hardware, and the
validation figures (plain and GT-mean) beside the input's own. The printed sha256 goes into
the registry (enhance/models.py), which `load_model` checks the file against. Weights or a card
of that name already in the weights folder (the released saga-s, say) are replaced only with
`--overwrite`, through a temporary name and a rename.

By default it ships the run's best validation step (`best.safetensors`). With `--last` it ships
the end of the schedule instead, the EMA weights in the run's final `checkpoint.pt`: the pick
for a run whose validations differ by less than their noise, where the best of them is partly
luck.

A run that started from shipped weights (`init_weights` in its config) is a later stage of the
same model: the card's `stages` list every stage's recipe, the step each handed on, and its wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from .models import create_model
from .weights import REPO_ROOT, WEIGHTS_DIR, load_model, save_weights, sha256_of

TRAINING_DATA = ("340-pair subset of the LOL-v1 training split (our485; Wei et al., BMVC 2018) minus the 30 "
                 "validation stems in datasets/lol_v1_val.txt. LOL is distributed by its authors for research use; "
                 "the images are not redistributed here.")


def portable_config(config: dict) -> dict:
    """The run's config with a validation list inside the repository written relative to it.

    Training resolves the committed split to an absolute path of the training machine; the card
    is read on other machines, where only the repository-relative path means anything.
    """
    val_list = Path(config.get("val_list", ""))
    if val_list.is_absolute() and val_list.is_relative_to(REPO_ROOT):
        return {**config, "val_list": val_list.relative_to(REPO_ROOT).as_posix()}
    return config


def earlier_stages(config: dict) -> list[dict]:
    """The stages behind the run's `init_weights`, from their model card.

    Each stage: its recipe, the steps it ran, the step whose EMA weights it handed on (the next
    stage starts from those, not from its last step) and its wall time.
    """
    init = config.get("init_weights")
    if not init:
        return []
    card_path = Path(init).with_suffix(".json")
    if not card_path.exists():
        raise SystemExit(f"{card_path}: no model card for the init_weights of this run")
    return json.loads(card_path.read_text())["stages"]


def final_step(run: Path, rows: list[dict]) -> tuple[dict, dict]:
    """The EMA state dict of the run's final checkpoint, and the validation row of its step."""
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    val = [r for r in rows if r["kind"] == "val" and r["step"] == ckpt["step"]]
    if not val:
        raise SystemExit(f"{run}: no validation at the final checkpoint's step {ckpt['step']}; ship its best step instead")
    return ckpt["ema"], val[-1]


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def trained_on_lol_split(config: dict) -> bool:
    """Whether the run validated on the committed LOL-v1 split, as the shipped weights do; a run on
    one's own data names its own val_list (the LOL stems are not pairs there)."""
    return Path(portable_config(config).get("val_list", "")) == Path("datasets/lol_v1_val.txt")


def build_card(rows: list[dict], config: dict, name: str, hardware: str, weights: Path, earlier: list[dict],
               shipped: dict, training_data: str = TRAINING_DATA) -> dict:
    """`rows` and `config`: the run's log and config; `earlier`: what `earlier_stages` read before the
    shipped card was overwritten; `shipped`: the validation row (step and scores) of the shipped weights.

    `steps_trained` counts the optimiser steps behind the shipped weights (each stage up to the
    step it handed on); `steps_run` and `wall_time_hours` count all the training that was done.
    """
    config = portable_config(config)
    baseline = next((r for r in rows if r["kind"] == "baseline"), {})
    trained = [r for r in rows if r["kind"] == "train"]
    model = load_model(weights)
    steps = trained[-1]["step"] if trained else 0
    hours = round(trained[-1]["wall_seconds"] / 3600, 2) if trained else 0
    stages = earlier + [{"training_config": config, "steps": steps, "shipped_step": shipped["step"], "wall_time_hours": hours}]
    return {
        "name": name,
        "architecture": {"network": "SAGAUNet", **model.config.to_dict()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": sha256_of(weights),
        "weights": "EMA of the training weights, fp32",
        "training_data": training_data,
        "training_config": config,
        "steps_trained": sum(stage["shipped_step"] for stage in stages),
        "steps_run": sum(stage["steps"] for stage in stages),
        "wall_time_hours": round(sum(stage["wall_time_hours"] for stage in stages), 2),
        "hardware": hardware,
        "validation": {
            "images": ("30 pairs of datasets/lol_v1_val.txt, whole 600x400 images, output quantised to 8 bits"
                       if trained_on_lol_split(config) else
                       f"the pairs of {config.get('val_list')}, whole images, output quantised to 8 bits"),
            "input_psnr": baseline.get("psnr"), "input_ssim": baseline.get("ssim"),
            **{k: shipped[k] for k in ("psnr", "ssim", "psnr_gt_mean", "ssim_gt_mean")},
            "precision": "bf16 autocast" if config.get("bf16") else "fp32",
        },
        "stages": stages,
    }


def _write_atomically(path: Path, fill) -> None:
    """`fill(tmp)` writes the file under a temporary name; a crash never leaves a half-shipped file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fill(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enhance.modelcard", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder (holds best.safetensors, log.jsonl)")
    parser.add_argument("--name", required=True, help="registry name, e.g. saga-s")
    parser.add_argument("--hardware", required=True, help="what it was trained on")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="weights folder (default: the repository's)")
    parser.add_argument("--last", action="store_true",
                        help="ship the end of the schedule (the final checkpoint's EMA) instead of the best validation step")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace weights and a model card of the same --name already in --out")
    parser.add_argument("--training-data", metavar="TEXT",
                        help="the training data and its licence, for the card (default: the LOL-v1 note for runs "
                             "validated on datasets/lol_v1_val.txt, else \"not described\")")
    args = parser.parse_args(argv)
    needed = ["config.json", "log.jsonl"] + (["checkpoint.pt"] if args.last else ["best.json", "best.safetensors"])
    missing = [name for name in needed if not (args.run / name).is_file()]
    if missing:
        raise SystemExit(f"{args.run}: not a finished training run folder (no {', '.join(missing)})")
    config = json.loads((args.run / "config.json").read_text())
    training_data = args.training_data or TRAINING_DATA
    if args.training_data is None and not trained_on_lol_split(config):
        # Not LOL-v1's split, so the LOL note would be false; the data is the user's to describe.
        training_data = (f"not described: the run validated on {portable_config(config).get('val_list')}, not "
                         "LOL-v1's split (ship with --training-data to describe the data and its licence)")
        print(f"{args.run}: the card says its training data is not described; pass --training-data \"...\"",
              file=sys.stderr)
    rows = read_log(args.run)
    earlier = earlier_stages(config)  # before its card is replaced
    # Everything that can refuse the run is read before --out is made: a refusal leaves no empty folder.
    if args.last:
        ema, shipped = final_step(args.run, rows)
    else:
        shipped = json.loads((args.run / "best.json").read_text())
    weights, card_path = args.out / f"{args.name}.safetensors", args.out / f"{args.name}.json"
    # The default --out is the repository's weights/: shipping as saga-s would replace the released model.
    existing = [path for path in (weights, card_path) if path.exists()]
    if existing and not args.overwrite:
        also = f" (as does {existing[1]})" if len(existing) > 1 else ""
        raise SystemExit(f"{existing[0]}: already exists{also}; pass --overwrite to replace "
                         f"{'them' if also else 'it'}, or ship under another --name")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"{args.out}: cannot create the weights folder ({err.strerror or err})") from None
    if args.last:
        model = create_model(config["model"], attention=config.get("attention", "saga"))
        model.load_state_dict(ema)
        save_weights(model, weights, name=config["model"])  # atomic: a temporary name, then a rename
    else:
        _write_atomically(weights, lambda tmp: shutil.copyfile(args.run / "best.safetensors", tmp))
    card = build_card(rows, config, args.name, args.hardware, weights, earlier, shipped, training_data)
    _write_atomically(card_path, lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"))
    print(f"{weights}: sha256 {card['sha256']} (put it in enhance/models.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

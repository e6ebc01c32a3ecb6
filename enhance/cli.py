"""The `enhance` command: one subcommand per task, each implemented in its own module.

    enhance run photo.jpg -o out/         enhance photos (enhance/run.py)
    enhance eval --data LOL/ --model ...  benchmark PSNR/SSIM (enhance/evaluate.py)
    enhance train --config ...            train weights (enhance/train.py)
    enhance bench ...                     attention speed/memory benchmark (enhance/bench.py)
    enhance serve                         the web app (app.py)
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with add_arguments(parser) and main(args) -> int, one-line help)
SUBCOMMANDS = {
    "run": ("enhance.run", "enhance photos: files, folders or globs"),
    "train": ("enhance.train", "train a model's weights on paired images"),
    "bench": ("enhance.bench", "speed/memory of each attention type; KV-state rank"),
    "serve": ("enhance.webapp", "start the web app (same as python app.py)"),
    "eval": ("enhance.evaluate", "PSNR/SSIM on a paired benchmark (LOL-v1, LOL-v2, ...)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enhance", description="Low-light photo enhancement with SAGA attention.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return importlib.import_module(SUBCOMMANDS[args.command][0]).main(args)


if __name__ == "__main__":
    sys.exit(main())

"""The `enhance` command: one subcommand per task, each implemented in its own module.

    enhance run photo.jpg -o out/         enhance photos (enhance/run.py)
    enhance eval --data LOL/ --model ...  benchmark PSNR/SSIM (enhance/evaluate.py)
    enhance train --config ...            train weights (enhance/train.py)
    enhance bench ...                     attention speed/memory benchmark (enhance/bench.py)
    enhance serve                         the web app (app.py)
    enhance models                        the registered models and their scores (enhance/modelinfo.py)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# name -> (module with add_arguments(parser) and main(args) -> int, one-line help)
SUBCOMMANDS = {
    "run": ("enhance.run", "enhance photos: files, folders or globs"),
    "eval": ("enhance.evaluate", "PSNR/SSIM on a paired benchmark (LOL-v1, LOL-v2, ...)"),
    "train": ("enhance.train", "train a model's weights on paired images"),
    "bench": ("enhance.bench", "speed/memory of each attention type; KV-state rank"),
    "serve": ("enhance.webapp", "start the web app (same as python app.py)"),
    "models": ("enhance.modelinfo", "list the registered models: size, weights, validation scores"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (the web app's Gradio import alone takes seconds)."""
    parser = argparse.ArgumentParser(prog="enhance", description="Low-light photo enhancement with SAGA attention.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        # No abbreviations: `--over` must not quietly mean --overwrite.
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Output redirected on Windows is written in the ANSI code page, strictly: a "Δ" in a table, or
    # a photo's name in another script, would end the command after its work was done.
    if hasattr(sys.stdout, "reconfigure"):  # not a test's replacement stream
        sys.stdout.reconfigure(errors="backslashreplace")
    # tifffile logs its own warnings about damaged TIFFs; the command's one-line error names the file and says it.
    logging.getLogger("tifffile").setLevel(logging.ERROR)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command if command in SUBCOMMANDS else None)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return importlib.import_module(SUBCOMMANDS[args.command][0]).main(args)
    except KeyboardInterrupt:  # e.g. during the seconds PyTorch takes to import: no traceback
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `enhance eval ... | head`: the reader left, which is no error of ours
        # Python would also complain when flushing stdout at exit: point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a program stopped by a closed pipe


if __name__ == "__main__":
    sys.exit(main())

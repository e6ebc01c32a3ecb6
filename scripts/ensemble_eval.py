"""The output ensemble of several weights files, scored like `enhance eval`.

    python scripts/ensemble_eval.py A.safetensors B.safetensors [...] --data DIR [--list STEMS] --report OUT.json

Independently trained runs of one recipe miss a photo's exposure in different directions, so
averaging their outputs could cancel part of the miss. This answers by measurement: each
image's output is the mean of the models' fp32 whole-image outputs, then scored exactly as
`enhance eval --gt-mean` scores one model (it calls the same `evaluate`), so the report can be
compared image by image with `scripts/compare_evals.py`. A research check, not a shipped mode:
it costs one full pass per model.
"""

import argparse
import sys
from pathlib import Path

import torch

from enhance.evaluate import evaluate, print_report, write_report
from enhance.pairs import PairError, find_listed_pairs
from enhance.weights import WeightsError, load_model, sha256_of


class OutputMean(torch.nn.Module):
    """The mean of several models' outputs for the same input."""

    def __init__(self, models: list[torch.nn.Module]):
        super().__init__()
        self.models = torch.nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([model(x) for model in self.models]).mean(dim=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", type=Path, help="two or more .safetensors files")
    parser.add_argument("--data", type=Path, required=True, help="folder of low/high pairs")
    parser.add_argument("--list", type=Path, help="file of image stems to evaluate (one per line)")
    parser.add_argument("--report", type=Path, help="write the report here (.json)")
    args = parser.parse_args()
    if len(args.weights) < 2:  # the mean of one model is `enhance eval --gt-mean`
        parser.error("give two or more weights files")
    # Bad input ends in one line, as `enhance eval` reports it, not in a traceback; and before the
    # passes over the images, not after them.
    try:
        pairset = find_listed_pairs(args.data, args.list)  # the report covers every listed stem, or none
        for path in args.weights:
            # load_model also takes a registered model's name, but that is no file to hash for the report.
            if not path.exists():
                raise WeightsError(f"{path}: no such weights file")
        models = [load_model(path).eval() for path in args.weights]
    except (PairError, WeightsError) as err:
        raise SystemExit(f"ensemble_eval: {err}")
    name = "mean of " + ", ".join(str(path) for path in args.weights)
    report = evaluate(OutputMean(models), pairset, gt_mean=True, precision="fp32", tile=0,
                      model_name=name, weights_sha256=", ".join(sha256_of(p) for p in args.weights))
    print(f"model: {name}")
    print_report(report)
    if args.report is not None:
        write_report(report, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

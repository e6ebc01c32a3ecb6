"""Two `enhance eval --report X.json` reports of the same images, compared image by image.

    python scripts/compare_evals.py baseline.json candidate.json [--without STEM,STEM,...]

A mean over 30 images moves by a few tenths of a dB from run to run, so a candidate's lead on
the means says little by itself. For each figure this prints both means, on how many images the
candidate is higher, the median per-image difference, and the paired mean difference with its
standard error (the per-image differences' standard deviation over sqrt(n)): a lead of about two
standard errors or more is unlikely to be chance on these images. `--without` leaves images out,
e.g. the validation pairs whose ground truth is also a training pair's (scripts/exposure_spread.py
lists them), to see what a candidate does on scenes it has never seen.
"""

import argparse
import json
from pathlib import Path

import numpy as np

FIGURES = [("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("psnr_gt_mean", "GT-mean PSNR (dB)"),
           ("ssim_gt_mean", "GT-mean SSIM"), ("exposure_error", "exposure error (stops, lower is better)")]


def per_image(report: dict, key: str) -> dict[str, float]:
    if key == "exposure_error":
        return {row["name"]: abs(row["exposure_stops"]) for row in report["images"]}
    return {row["name"]: row[key] for row in report["images"]}


def main(baseline_path: str, candidate_path: str, without: set[str]) -> None:
    baseline, candidate = (json.loads(Path(path).read_text()) for path in (baseline_path, candidate_path))
    for key, label in FIGURES:
        base, cand = per_image(baseline, key), per_image(candidate, key)
        if set(base) != set(cand):
            raise SystemExit(f"compare_evals: the reports cover different images ({len(base)} and {len(cand)})")
        names = sorted(set(base) - without)
        diff = np.array([cand[n] - base[n] for n in names])
        better = np.count_nonzero(diff < 0 if key == "exposure_error" else diff > 0)
        stderr = diff.std(ddof=1) / np.sqrt(diff.size)
        print(f"{label:40s} {np.mean([base[n] for n in names]):8.4f} -> {np.mean([cand[n] for n in names]):8.4f}"
              f"   better on {better:3d} of {diff.size}   median {np.median(diff):+.4f}"
              f"   mean {diff.mean():+.4f} ± {stderr:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", help="report of `enhance eval --report X.json`")
    parser.add_argument("candidate", help="report of the same images")
    parser.add_argument("--without", default="", metavar="STEMS", help="comma-separated images to leave out")
    args = parser.parse_args()
    main(args.baseline, args.candidate, {stem for stem in args.without.split(",") if stem})

"""Two `enhance eval --report X.json` reports of the same images, compared image by image.

    python scripts/compare_evals.py baseline.json candidate.json [--without STEM,STEM,...] [--by-input-level DATA]

A mean over 30 images moves by a few tenths of a dB from run to run, so a candidate's lead on
the means says little by itself. For each figure this prints both means, on how many images the
candidate is higher, the median per-image difference, and the paired mean difference with its
standard error (the per-image differences' standard deviation over sqrt(n)): a lead of about two
standard errors or more is unlikely to be chance on these images. `--without` leaves images out,
e.g. the validation pairs whose ground truth is also a training pair's (scripts/exposure_spread.py
lists them), to see what a candidate does on scenes it has never seen.

`--by-input-level DATA` splits the images in two by how far their dark input's brightness (log2
of its mean; DATA is the dataset folder, read as `enhance eval --data` reads it) lies from the
median of them all: the half nearest that typical level and the half furthest from it. LOL's
own inputs spread over about three stops, so this tests a model made for other exposures on
real photos of other darkness, not synthetic ones.
"""

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np

from enhance.imageio import convert_pixels, read_image
from enhance.pairs import PairError, find_pairs

FIGURES = [("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("psnr_gt_mean", "GT-mean PSNR (dB)"),
           ("ssim_gt_mean", "GT-mean SSIM"), ("exposure_error", "exposure error (stops, lower is better)")]


def load_report(path: str) -> dict:
    """The report in `path`, or a one-line error: a missing file or a .csv would end in a traceback."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise SystemExit(f"compare_evals: {path}: {err.strerror}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SystemExit(f"compare_evals: {path}: not a JSON report (write one with `enhance eval --report X.json`)")
    rows = report.get("images") if isinstance(report, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) and "psnr" in row for row in rows):
        raise SystemExit(f"compare_evals: {path}: not a report of `enhance eval` with ground truth "
                         "(no per-image PSNR)")
    return report


def per_image(report: dict, key: str) -> dict[str, float]:
    if key == "exposure_error":
        return {row["name"]: abs(row["exposure_stops"]) for row in report["images"]}
    return {row["name"]: row[key] for row in report["images"]}


def input_levels(data: Path, names: list[str]) -> dict[str, float]:
    """log2 of the mean of each image's dark input in 0..1, found as `enhance eval` finds it."""
    try:
        pair_set = find_pairs(data, stems=names)
    except PairError as err:
        raise SystemExit(f"compare_evals: {err}")
    if pair_set.missing_stems:
        raise SystemExit(f"compare_evals: no input for image {pair_set.missing_stems[0]} in {data}")
    return {pair.stem: float(np.log2(max(convert_pixels(read_image(pair.low).pixels, np.float32).mean(), 1e-6)))
            for pair in pair_set.pairs}


def print_comparison(baseline: dict, candidate: dict, names: list[str]) -> None:
    for key, label in FIGURES:
        base, cand = per_image(baseline, key), per_image(candidate, key)
        if any(base[n] is None or cand[n] is None for n in names):
            # A report of `enhance eval` without --gt-mean holds null GT-mean figures.
            print(f"{label:40s} not in both reports (run `enhance eval` with --gt-mean)")
            continue
        diff = np.array([cand[n] - base[n] for n in names])
        better = np.count_nonzero(diff < 0 if key == "exposure_error" else diff > 0)
        stderr = diff.std(ddof=1) / np.sqrt(diff.size)
        print(f"{label:40s} {np.mean([base[n] for n in names]):8.4f} -> {np.mean([cand[n] for n in names]):8.4f}"
              f"   better on {better:3d} of {diff.size}   median {np.median(diff):+.4f}"
              f"   mean {diff.mean():+.4f} ± {stderr:.4f}")


def main(baseline_path: str, candidate_path: str, without: set[str], data: Optional[str] = None) -> None:
    baseline, candidate = load_report(baseline_path), load_report(candidate_path)
    base, cand = per_image(baseline, "psnr"), per_image(candidate, "psnr")
    if set(base) != set(cand):
        raise SystemExit(f"compare_evals: the reports cover different images ({len(base)} and {len(cand)})")
    unknown = sorted(without - set(base))
    if unknown:  # a mistyped stem would otherwise leave nothing out, silently
        raise SystemExit(f"compare_evals: --without {unknown[0]}: no such image in the reports")
    names = sorted(set(base) - without)
    if not names:  # the means of nothing would print as nan
        raise SystemExit("compare_evals: --without leaves no image to compare")
    if data is None:
        print_comparison(baseline, candidate, names)
        return
    levels = input_levels(Path(data), names)
    typical = float(np.median(list(levels.values())))
    by_distance = sorted(names, key=lambda n: abs(levels[n] - typical))
    halves = (("nearest", by_distance[:len(names) // 2]), ("furthest from", by_distance[len(names) // 2:]))
    for i, (where, group) in enumerate(halves):
        offsets = [levels[n] - typical for n in group]
        print(("\n" if i else "") + f"{len(group)} images whose input is {where} the median level "
              f"(2^{typical:.2f}): {min(offsets):+.2f} to {max(offsets):+.2f} stops from it")
        print_comparison(baseline, candidate, group)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", help="report of `enhance eval --report X.json`")
    parser.add_argument("candidate", help="report of the same images")
    parser.add_argument("--without", default="", metavar="STEMS", help="comma-separated images to leave out")
    parser.add_argument("--by-input-level", metavar="DATA",
                        help="dataset folder, as for `enhance eval --data`: compare apart the images whose "
                             "input is nearest the median level and those furthest from it")
    args = parser.parse_args()
    without = {stem.strip() for stem in args.without.split(",") if stem.strip()}  # "1, 2" means 1 and 2
    main(args.baseline, args.candidate, without, args.by_input_level)

"""How well a dark LOL photo's own brightness statistics predict its ground truth's exposure.

    python scripts/exposure_spread.py ../shared/datasets/LOL-v1-train [datasets/lol_v1_val.txt]
        [--eval REPORT.json ...]

Prints, in stops (log2 of mean gray level), the mean absolute deviation of the ground truths'
exposure from their average, and the mean absolute error of a leave-one-out linear fit on the
dark inputs' statistics. Compare both with the models' `exposure vs GT` error from `enhance eval`.

It also counts the pairs whose ground truth is pixel for pixel the ground truth of another pair
(LOL pairs one normal-light shot with several dark shots of some scenes): for those, the exposure
is fixed by the scene, which a model can learn, not by chance. Given a validation list, it says
how many validation pairs share their ground truth with a training pair.

Given `enhance eval --report` files (JSON), it correlates each model's signed exposure error per
image with the dark input's and the ground truth's exposure: a model that cannot predict the
ground truth's exposure regresses towards the average one, so its error falls as the ground
truth gets brighter.
"""

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from enhance.imageio import read_image
from enhance.metrics import mean_brightness
from enhance.pairs import PairError, find_pairs, read_stem_list


def features(low01: np.ndarray) -> list[float]:
    gray = low01.mean(axis=2)
    return [np.log2(gray.mean() + 1e-3), *np.log2(np.percentile(gray, [10, 50, 90, 99]) + 1e-3),
            np.log2(gray.std() + 1e-3), 1.0]


def read_exposure_errors(report: str) -> dict[str, float]:
    """Image name -> signed exposure error in stops (log2 of output over ground-truth gray level)."""
    try:
        images = json.loads(Path(report).read_text())["images"]
        return {str(image["name"]): float(image["exposure_stops"]) for image in images}
    except OSError as err:
        raise SystemExit(f"exposure_spread: {report}: {err.strerror}")
    except (ValueError, KeyError, TypeError):
        raise SystemExit(f"exposure_spread: {report}: not an `enhance eval --report` JSON file "
                         "with per-image exposure errors")


def main(folder: str, val_list: str | None = None, reports: list[str] = ()) -> None:
    # Bad input ends in one line, not in a traceback.
    try:
        pairs = find_pairs(Path(folder)).pairs
        val = read_stem_list(val_list, allow_empty=False) if val_list else None
    except PairError as err:
        raise SystemExit(f"exposure_spread: {err}")
    except OSError as err:  # an unreadable stem list
        raise SystemExit(f"exposure_spread: {err.filename}: {err.strerror}")
    errors_by_report = {report: read_exposure_errors(report) for report in reports}
    found = {pair.stem for pair in pairs}
    absent = [stem for stem in val or [] if stem not in found]
    if absent:  # a stem not in the folder would be counted as one without a training twin
        raise SystemExit(f"exposure_spread: {len(absent)} stem(s) of {val_list} have no pair in {folder}: "
                         + " ".join(absent[:5]))
    x, y, input_stops = [], [], {}
    stems_by_truth = defaultdict(list)  # sha1 of the ground truth's pixels -> stems
    for pair in pairs:
        low = read_image(pair.low).pixels / 255.0
        x.append(features(low))
        input_stops[pair.stem] = np.log2(mean_brightness(low))
        truth = read_image(pair.high).pixels
        y.append(np.log2(mean_brightness(truth)))
        stems_by_truth[hashlib.sha1(truth.tobytes()).hexdigest()].append(pair.stem)
    x, y = np.array(x), np.array(y)
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        w, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
        errors.append(abs(y[i] - x[i] @ w))
    print(f"{len(y)} pairs in {folder}")
    print(f"ground-truth exposure, mean absolute deviation: {np.mean(np.abs(y - y.mean())):.2f} stops")
    print(f"leave-one-out linear fit on the dark input's statistics, mean absolute error: {np.mean(errors):.2f} stops")

    shared = [stems for stems in stems_by_truth.values() if len(stems) > 1]
    line = f"{sum(map(len, shared))} of {len(pairs)} pairs share their ground truth with another pair"
    if shared:  # with none, "each paired with 2-0 dark shots" would be nonsense
        line += f" ({len(shared)} ground truths, each paired with 2-{max(map(len, shared))} dark shots)"
    print(line)
    if val_list:
        has_training_twin = {stem for stems in shared if any(s not in val for s in stems) for stem in stems}
        twins = [stem for stem in val if stem in has_training_twin]
        print(f"{len(twins)} of {len(val)} pairs in {val_list} share their ground truth with a "
              f"training pair{': ' + ' '.join(twins) if twins else ''}")
    truth_stops = dict(zip((pair.stem for pair in pairs), y))
    for report, errors in errors_by_report.items():
        stems = [stem for stem in errors if stem in truth_stops]
        if len(stems) < 3:
            raise SystemExit(f"exposure_spread: {report}: {len(stems)} of its images are pairs in {folder}; "
                             "a correlation needs at least 3")
        error = np.array([errors[stem] for stem in stems])
        r_input = np.corrcoef(error, [input_stops[stem] for stem in stems])[0, 1]
        r_truth = np.corrcoef(error, [truth_stops[stem] for stem in stems])[0, 1]
        print(f"{report}: {len(stems)} images, exposure error's correlation with the input's exposure "
              f"r = {r_input:.2f}, with the ground truth's r = {r_truth:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder with low/ and high/ (LOL layout), e.g. ../shared/datasets/LOL-v1-train")
    parser.add_argument("val_list", nargs="?",
                        help="file of validation stems (one per line), e.g. datasets/lol_v1_val.txt: "
                             "counts those whose ground truth is also a training pair's")
    parser.add_argument("--eval", nargs="+", default=[], metavar="REPORT",
                        help="`enhance eval --report` JSON files: correlate each model's per-image exposure "
                             "error with the input's and the ground truth's exposure")
    args = parser.parse_args()
    main(args.folder, args.val_list, args.eval)

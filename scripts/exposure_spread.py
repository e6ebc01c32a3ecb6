"""How well a dark LOL photo's own brightness statistics predict its ground truth's exposure.

    python scripts/exposure_spread.py ../shared/datasets/LOL-v1-train [datasets/lol_v1_val.txt]

Prints, in stops (log2 of mean gray level), the mean absolute deviation of the ground truths'
exposure from their average, and the mean absolute error of a leave-one-out linear fit on the
dark inputs' statistics. Compare both with the models' `exposure vs GT` error from `enhance eval`.

It also counts the pairs whose ground truth is pixel for pixel the ground truth of another pair
(LOL pairs one normal-light shot with several dark shots of some scenes): for those, the exposure
is fixed by the scene, which a model can learn, not by chance. Given a validation list, it says
how many validation pairs share their ground truth with a training pair.
"""

import hashlib
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from enhance.imageio import read_image
from enhance.metrics import mean_brightness
from enhance.pairs import find_pairs, read_stem_list


def features(low01: np.ndarray) -> list[float]:
    gray = low01.mean(axis=2)
    return [np.log2(gray.mean() + 1e-3), *np.log2(np.percentile(gray, [10, 50, 90, 99]) + 1e-3),
            np.log2(gray.std() + 1e-3), 1.0]


def main(folder: str, val_list: str | None = None) -> None:
    pairs = find_pairs(Path(folder)).pairs
    x, y = [], []
    stems_by_truth = defaultdict(list)  # sha1 of the ground truth's pixels -> stems
    for pair in pairs:
        low = read_image(pair.low).pixels / 255.0
        x.append(features(low))
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
    print(f"{sum(map(len, shared))} of {len(pairs)} pairs share their ground truth with another pair "
          f"({len(shared)} ground truths, each paired with 2-{max(map(len, shared), default=0)} dark shots)")
    if val_list:
        val = read_stem_list(val_list)
        has_training_twin = {stem for stems in shared if any(s not in val for s in stems) for stem in stems}
        twins = [stem for stem in val if stem in has_training_twin]
        print(f"{len(twins)} of {len(val)} pairs in {val_list} share their ground truth with a "
              f"training pair: {' '.join(twins)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/LOL-v1-train",
         sys.argv[2] if len(sys.argv) > 2 else None)

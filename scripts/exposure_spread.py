"""How well a dark LOL photo's own brightness statistics predict its ground truth's exposure.

    python scripts/exposure_spread.py ../shared/datasets/LOL-v1-train

Prints, in stops (log2 of mean gray level), the mean absolute deviation of the ground truths'
exposure from their average, and the mean absolute error of a leave-one-out linear fit on the
dark inputs' statistics. Compare both with the models' `exposure vs GT` error from `enhance eval`.
"""

import sys
from pathlib import Path

import numpy as np

from enhance.imageio import read_image
from enhance.metrics import mean_brightness
from enhance.pairs import find_pairs


def features(low01: np.ndarray) -> list[float]:
    gray = low01.mean(axis=2)
    return [np.log2(gray.mean() + 1e-3), *np.log2(np.percentile(gray, [10, 50, 90, 99]) + 1e-3),
            np.log2(gray.std() + 1e-3), 1.0]


def main(folder: str) -> None:
    pairs = find_pairs(Path(folder)).pairs
    x, y = [], []
    for pair in pairs:
        low = read_image(pair.low).pixels / 255.0
        x.append(features(low))
        y.append(np.log2(mean_brightness(read_image(pair.high).pixels)))
    x, y = np.array(x), np.array(y)
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        w, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
        errors.append(abs(y[i] - x[i] @ w))
    print(f"{len(y)} pairs in {folder}")
    print(f"ground-truth exposure, mean absolute deviation: {np.mean(np.abs(y - y.mean())):.2f} stops")
    print(f"leave-one-out linear fit on the dark input's statistics, mean absolute error: {np.mean(errors):.2f} stops")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/LOL-v1-train")

"""scripts/compare_evals.py: per-image wins, medians and paired differences of two eval reports."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_evals.py"


def report(path: Path, psnrs: list[float], exposures: list[float]) -> Path:
    rows = [{"name": str(i), "psnr": p, "ssim": 0.8, "psnr_gt_mean": p + 5, "ssim_gt_mean": 0.9,
             "exposure_stops": e} for i, (p, e) in enumerate(zip(psnrs, exposures))]
    path.write_text(json.dumps({"images": rows}))
    return path


def compare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_counts_wins_and_the_paired_difference(tmp_path):
    base = report(tmp_path / "a.json", [20.0, 21.0, 22.0, 23.0], [0.2, -0.3, 0.1, 0.4])
    cand = report(tmp_path / "b.json", [21.0, 21.5, 21.0, 24.0], [0.1, -0.1, 0.2, -0.4])
    result = compare(base, cand)
    assert result.returncode == 0, result.stderr
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    psnr = lines["PSNR (dB)"]
    assert "21.5000 ->  21.8750" in psnr and "better on   3 of 4" in psnr and "median +0.7500" in psnr
    assert "mean +0.3750 ± 0.4732" in psnr  # differences 1, 0.5, -1, 1: sd 0.9465 / sqrt(4)
    # Exposure error is |stops|: lower wins (0.2->0.1, 0.3->0.1 better; 0.1->0.2 worse; 0.4->0.4 a tie).
    assert "better on   2 of 4" in lines["exposure error (stops, lower is better)"]


def test_without_leaves_images_out(tmp_path):
    base = report(tmp_path / "a.json", [20.0, 21.0, 22.0], [0.0, 0.0, 0.0])
    cand = report(tmp_path / "b.json", [21.0, 22.0, 20.0], [0.0, 0.0, 0.0])
    result = compare(base, cand, "--without", "2")
    psnr = next(line for line in result.stdout.splitlines() if line.startswith("PSNR"))
    assert "20.5000 ->  21.5000" in psnr and "better on   2 of 2" in psnr


def test_reports_of_different_images_are_refused(tmp_path):
    base = report(tmp_path / "a.json", [20.0, 21.0], [0.0, 0.0])
    cand = report(tmp_path / "b.json", [20.0], [0.0])
    result = compare(base, cand)
    assert result.returncode == 1 and "cover different images" in result.stderr


def test_by_input_level_compares_the_typical_and_the_unusual_inputs_apart(tmp_path):
    import numpy as np
    from PIL import Image

    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    # Inputs 0, 1, 2 lie near log2 level -4; 3 is two stops brighter, +1.96 from the median of the four.
    for name, level in zip("0123", [1 / 16, 1 / 16, 1 / 15, 1 / 4]):
        Image.fromarray(np.full((8, 8, 3), round(level * 255), np.uint8)).save(tmp_path / "low" / f"{name}.png")
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(tmp_path / "high" / f"{name}.png")
    base = report(tmp_path / "a.json", [20.0, 20.0, 20.0, 20.0], [0.0] * 4)
    cand = report(tmp_path / "b.json", [21.0, 20.0, 19.0, 25.0], [0.0] * 4)
    result = compare(base, cand, "--by-input-level", tmp_path)
    assert result.returncode == 0, result.stderr
    near, far = result.stdout.split("\n\n")
    assert near.startswith("2 images whose input is nearest") and "better on   1 of 2" in near
    assert far.startswith("2 images whose input is furthest") and "to +1.96 stops" in far.splitlines()[0]
    assert "20.0000 ->  22.0000" in far  # images 2 (19 dB) and 3 (25 dB): the furthest two


def test_by_input_level_names_an_image_without_an_input(tmp_path):
    import numpy as np
    from PIL import Image

    for folder in ("low", "high"):  # a pair for image 1 only
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((8, 8, 3), 40, np.uint8)).save(tmp_path / folder / "1.png")
    base = report(tmp_path / "a.json", [20.0, 21.0], [0.0, 0.0])
    result = compare(base, base, "--by-input-level", tmp_path)
    assert result.returncode == 1 and "no input for image 0" in result.stderr

"""scripts/anchor_protocols.py: one model's outputs scored as enhance eval, Retinexformer and HVI-CIDNet do."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from enhance.models import create_model
from enhance.weights import save_weights

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "anchor_protocols.py"
spec = importlib.util.spec_from_file_location("anchor_protocols", SCRIPT)
anchor_protocols = importlib.util.module_from_spec(spec)
spec.loader.exec_module(anchor_protocols)


def test_hvi_cidnet_truncates_where_enhance_eval_rounds():
    rng = np.random.default_rng(0)
    target8 = rng.integers(20, 230, size=(24, 24, 3), dtype=np.uint8)
    below_half = (target8 + 0.3) / 255  # rounds and truncates to the target alike
    assert anchor_protocols.hvi_cidnet_scores(below_half, target8)[0] > 100
    assert anchor_protocols.enhance_eval_scores(below_half, target8)[0] == float("inf")
    above_half = (target8 + 0.7) / 255  # rounds up to target + 1, truncates to the target
    assert anchor_protocols.hvi_cidnet_scores(above_half, target8)[0] > 100
    assert anchor_protocols.enhance_eval_scores(above_half, target8)[0] < 50


def test_retinexformer_gt_mean_swaps_red_and_blue_weights():
    target8 = np.full((24, 24, 3), 120, dtype=np.uint8)
    gray = np.full((24, 24, 3), 60 / 255, dtype=np.float32)
    reddish = gray * np.array([1.6, 1.0, 0.6], dtype=np.float32)
    # A neutral output: the weights do not matter and both align it onto the target.
    assert anchor_protocols.retinexformer_scores(gray, target8)[2] > 60
    assert anchor_protocols.enhance_eval_scores(gray, target8)[2] > 60
    # A red cast: red counts 0.114 in Retinexformer's gray level and 0.299 here, so it scales less.
    ours = anchor_protocols.enhance_eval_scores(reddish, target8)
    theirs = anchor_protocols.retinexformer_scores(reddish, target8)
    assert abs(ours[2] - theirs[2]) > 0.5


def test_prints_a_table_of_the_three_protocols(tmp_path):
    rng = np.random.default_rng(1)
    for side in ("low", "high"):
        (tmp_path / "data" / side).mkdir(parents=True)
    for stem in ("1", "2"):
        high = (rng.random((32, 48, 3)) * 200 + 30).astype(np.uint8)
        Image.fromarray(high).save(tmp_path / "data" / "high" / f"{stem}.png")
        Image.fromarray((high * 0.15).astype(np.uint8)).save(tmp_path / "data" / "low" / f"{stem}.png")
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_weights(create_model("saga-s"), weights, name="saga-s")
    result = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path / "data"), "--weights", str(weights)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["| protocol", "| enhance eval", "| Retinexformer", "| HVI-CIDNet"]
    assert "on 2 images" in result.stdout

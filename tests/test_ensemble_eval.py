"""scripts/ensemble_eval.py: the mean of several models' outputs, scored like `enhance eval`."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from enhance.inference import enhance_image
from enhance.metrics import psnr, quantize_8bit
from enhance.models import create_model
from enhance.weights import load_model, save_weights

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ensemble_eval.py"


def test_scores_the_mean_of_the_models_outputs(tmp_path):
    rng = np.random.default_rng(0)
    for side in ("low", "high"):
        (tmp_path / "data" / side).mkdir(parents=True)
    high = (rng.random((32, 48, 3)) * 200 + 30).astype(np.uint8)
    low = (high * 0.15).astype(np.uint8)
    Image.fromarray(high).save(tmp_path / "data" / "high" / "1.png")
    Image.fromarray(low).save(tmp_path / "data" / "low" / "1.png")
    weights = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        weights.append(tmp_path / f"run{seed}.safetensors")
        save_weights(create_model("saga-s"), weights[-1], name="saga-s")

    report_path = tmp_path / "mean.json"
    result = subprocess.run([sys.executable, str(SCRIPT), *map(str, weights), "--data", str(tmp_path / "data"),
                             "--report", str(report_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

    outputs = [enhance_image(load_model(w), low.astype(np.float32) / 255, tile=0, precision="fp32") for w in weights]
    expected = psnr(quantize_8bit(np.mean(outputs, axis=0)), high)
    singles = [psnr(quantize_8bit(out), high) for out in outputs]
    assert min(abs(single - expected) for single in singles) > 0.1  # the mean is neither model alone
    report = json.loads(report_path.read_text())
    assert report["n_images"] == 1
    assert abs(report["images"][0]["psnr"] - expected) < 0.05
    assert report["parameters"] == 2 * sum(p.numel() for p in create_model("saga-s").parameters())

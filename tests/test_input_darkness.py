"""scripts/input_darkness.py: how an output's exposure follows an input made darker or brighter."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from enhance.weights import save_weights

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "input_darkness.py"


def dark_pairs(folder: Path, stems: list[str]) -> None:
    rng = np.random.default_rng(0)
    for sub in ("low", "high"):
        (folder / sub).mkdir(parents=True)
    for stem in stems:
        ramp = np.linspace(5, 60, 48)[None, :, None] + rng.uniform(0, 10, (32, 48, 3))
        Image.fromarray(ramp.astype(np.uint8)).save(folder / "low" / f"{stem}.png")
        Image.fromarray(np.clip(ramp * 3, 0, 255).astype(np.uint8)).save(folder / "high" / f"{stem}.png")


def test_a_network_that_passes_the_input_through_has_slope_one(tmp_path, random_saga_s):
    # The output head adds a residual to the input image: zeroed, the network is the identity,
    # so the output's exposure changes exactly as much as the input's.
    identity = random_saga_s.__class__(random_saga_s.config).eval()
    identity.load_state_dict(random_saga_s.state_dict())
    with torch.no_grad():
        for param in identity.to_rgb.parameters():
            param.zero_()
    weights = tmp_path / "identity.safetensors"
    save_weights(identity, weights, name="saga-s")
    dark_pairs(tmp_path / "data", ["1", "2"])
    (tmp_path / "val.txt").write_text("1\n2\n")

    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "data"), "--model", str(weights),
                             "--list", str(tmp_path / "val.txt"), "--shifts=-1,1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ") and "shift" not in line]
    assert [row[0].strip() for row in rows] == ["-1", "+0", "+1"]
    for row in rows:
        assert row[1] == row[2]  # input's change == output's change
    assert float(rows[0][1]) < 0 < float(rows[2][1])
    assert result.stdout.strip().endswith("1.000")

"""One model's outputs scored three ways: by `enhance eval`, and as Retinexformer's and HVI-CIDNet's scripts would.

    python scripts/anchor_protocols.py --data DIR [--list STEMS] [--model NAME | --weights FILE]

The three agree on the PSNR and SSIM formulas (SSIM: Gaussian 11 taps, sigma 1.5, per RGB
channel, no border crop) but not on what is scored. Read from their code (Retinexformer
`Enhancement/test_from_dataset.py` and `utils.py`; HVI-CIDNet `eval.py` and `measure.py`):

- enhance eval: the float output rounded to 8 bits, as a saved PNG holds it. GT-mean: that
  8-bit output scaled by the ratio of BT.601 gray means (RGB weights), clipped, not rounded again.
- Retinexformer: PSNR on the clamped float output (range 1, no rounding); SSIM on
  `img_as_ubyte` of it (rounded). GT-mean: `cv2.COLOR_BGR2GRAY` on RGB arrays, so the red and
  blue weights are swapped, applied to the float output.
- HVI-CIDNet: the output is saved through torchvision's `ToPILImage`, whose `mul(255).byte()`
  truncates instead of rounding, and the saved PNG is scored (PSNR with 1e-8 added to the MSE).
  GT-mean: `cv2.COLOR_RGB2GRAY` of the 8-bit images (each gray pixel rounded), scale, clip, no
  rounding, as here.

Each output is one fp32 whole-image pass, shared by the three, so only the scoring differs.
"""

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import img_as_ubyte

from enhance.evaluate import to_8bit
from enhance.imageio import convert_pixels, read_image
from enhance.inference import enhance_image
from enhance.metrics import psnr, psnr_gt_mean, quantize_8bit, ssim, ssim_gt_mean
from enhance.pairs import PairError, find_listed_pairs
from enhance.weights import WeightsError, load_model

PROTOCOLS = ("enhance eval", "Retinexformer", "HVI-CIDNet")


def retinexformer_scores(out: np.ndarray, target8: np.ndarray) -> tuple[float, float, float, float]:
    """PSNR, SSIM, GT-mean PSNR and GT-mean SSIM as test_from_dataset.py computes them."""
    target = target8.astype(np.float32) / 255.0

    def scores(restored):
        mse = float(np.mean((restored - target) ** 2))
        return (100.0 if mse == 0 else 10 * math.log10(1 / mse)), ssim(img_as_ubyte(restored), target8)

    gray_mean = lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).mean()  # on RGB arrays, as there
    aligned = np.clip(out * (gray_mean(target) / gray_mean(out)), 0, 1)
    return (*scores(out), *scores(aligned))


def hvi_cidnet_scores(out: np.ndarray, target8: np.ndarray) -> tuple[float, float, float, float]:
    """PSNR, SSIM, GT-mean PSNR and GT-mean SSIM as HVI-CIDNet's eval.py + measure.py compute them."""
    saved = (out * 255).astype(np.uint8)  # ToPILImage: mul(255).byte() truncates

    def scores(restored):
        mse = float(np.mean((restored.astype(np.float32) - target8.astype(np.float32)) ** 2))
        return 10 * math.log10(255.0**2 / (mse + 1e-8)), ssim(restored.astype(np.float64), target8)

    gray_mean = lambda img: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean()
    aligned = np.clip(saved * (gray_mean(target8) / gray_mean(saved)), 0, 255)
    return (*scores(saved), *scores(aligned))


def enhance_eval_scores(out: np.ndarray, target8: np.ndarray) -> tuple[float, float, float, float]:
    out8 = quantize_8bit(out)
    return psnr(out8, target8), ssim(out8, target8), psnr_gt_mean(out8, target8), ssim_gt_mean(out8, target8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of low/high pairs")
    parser.add_argument("--list", type=Path, help="file of image stems to evaluate (one per line)")
    parser.add_argument("--model", default="saga-s", help="registered model (default saga-s)")
    parser.add_argument("--weights", type=Path, help="a .safetensors file instead of --model")
    args = parser.parse_args()
    # Bad input ends in one line, as `enhance eval` reports it, not in a traceback.
    try:
        pair_set = find_listed_pairs(args.data, args.list)  # the means cover every listed stem, or none
        model = load_model(args.weights or args.model).eval()
    except (PairError, WeightsError) as err:
        raise SystemExit(f"anchor_protocols: {err}")
    pairs = pair_set.pairs
    score = {"enhance eval": enhance_eval_scores, "Retinexformer": retinexformer_scores,
             "HVI-CIDNet": hvi_cidnet_scores}
    rows = {name: [] for name in PROTOCOLS}
    for pair in pairs:
        low = convert_pixels(read_image(pair.low).pixels, np.float32)
        target8 = to_8bit(read_image(pair.high).pixels)
        out = enhance_image(model, low, tile=0, precision="fp32")
        for name in PROTOCOLS:
            rows[name].append(score[name](out, target8))
    print(f"`{args.weights or args.model}` on {len(pairs)} images of {args.data}. Means; for the anchors' "
          "protocols also the mean difference from `enhance eval`'s, and its range over images.\n")
    labels = ("PSNR (dB)", "SSIM", "GT-mean PSNR (dB)", "GT-mean SSIM")
    print("| protocol | " + " | ".join(labels) + " |\n|---|---|---|---|---|")
    ours = np.array(rows["enhance eval"])
    for name in PROTOCOLS:
        theirs = np.array(rows[name])
        cells = []
        for i, label in enumerate(labels):
            digits = 2 if "PSNR" in label else 4
            cell = f"{theirs[:, i].mean():.{digits}f}"
            if name != "enhance eval":
                diff, fine = theirs[:, i] - ours[:, i], digits + 1
                cell += f" ({diff.mean():+.{fine}f}; {diff.min():+.{fine}f} to {diff.max():+.{fine}f})"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does the enhanced photo's brightness depend on how dark the input was?

    python scripts/input_darkness.py ../shared/datasets/LOL-v1-train [--model saga-s] [--shifts -2,-1,0,1,2]

Each validation pair's dark input is made darker or brighter by a whole number of stops with
`enhance.adjust_exposure` (in linear light, as a shorter or longer exposure would, then saved as
8 bits), enhanced whole in fp32, and compared with the untouched ground truth. A model that
reads the scene, not the input's level, gives the same output exposure at every shift: a slope
of 0 output stops per input stop. A model that only multiplied the input would give 1. Users'
dark photos are rarely as dark as LOL's, so this is how far the models' behaviour carries.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from enhance.exposure import adjust_exposure
from enhance.imageio import read_image
from enhance.inference import enhance_tensor, to_tensor
from enhance.metrics import exposure_stops, psnr, quantize_8bit
from enhance.pairs import find_pairs, read_stem_list
from enhance.weights import REPO_ROOT, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with low/ and high/ (LOL layout)")
    parser.add_argument("--model", default="saga-s", help="registered model name or .safetensors file")
    parser.add_argument("--list", type=Path, default=REPO_ROOT / "datasets" / "lol_v1_val.txt")
    parser.add_argument("--shifts", default="-2,-1,0,1,2", help="input exposure shifts in stops (within -3..3)")
    args = parser.parse_args()
    shifts = sorted({float(s) for s in args.shifts.split(",")} | {0.0})

    model = load_model(args.model)
    stems = set(read_stem_list(args.list))
    pairs = [pair for pair in find_pairs(args.data).pairs if pair.stem in stems]
    stops = np.zeros((len(pairs), len(shifts)))  # output exposure against the ground truth
    psnrs = np.zeros_like(stops)
    for i, pair in enumerate(pairs):
        low, high = read_image(pair.low).pixels, read_image(pair.high).pixels
        for j, shift in enumerate(shifts):
            with torch.no_grad():
                out = enhance_tensor(model, to_tensor(adjust_exposure(low, shift)), tile=0, precision="fp32")
            out8 = quantize_8bit(out[0].permute(1, 2, 0).numpy())
            stops[i, j] = exposure_stops(out8, high)
            psnrs[i, j] = psnr(out8, high)

    print(f"{args.model} on {len(pairs)} pairs of {args.list.name}, fp32, whole images")
    print("| input shift (stops) | output exposure vs GT: mean | mean abs | output vs unshifted output | PSNR (dB) |")
    print("|---|---|---|---|---|")
    unshifted = stops[:, shifts.index(0.0)]
    for j, shift in enumerate(shifts):
        print(f"| {shift:+g} | {stops[:, j].mean():+.3f} | {np.abs(stops[:, j]).mean():.3f} | "
              f"{(stops[:, j] - unshifted).mean():+.3f} | {psnrs[:, j].mean():.2f} |")
    slope = np.polyfit(np.tile(shifts, len(pairs)), (stops - unshifted[:, None]).ravel(), 1)[0]
    print(f"output stops per input stop (least squares over all pairs and shifts): {slope:.3f}")


if __name__ == "__main__":
    main()

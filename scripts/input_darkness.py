"""Does the enhanced photo's brightness depend on how dark the input was?

    python scripts/input_darkness.py ../shared/datasets/LOL-v1-train [--model saga-s] [--shifts=-2,-1,0,1,2]

Each validation pair's dark input is made darker or brighter by whole stops with
`enhance.adjust_exposure` (in linear light, as a shorter or longer exposure would, then saved as
8 bits), enhanced whole in fp32, and compared with its untouched ground truth. Both the input's
change and the output's are measured as `enhance eval` measures exposure: log2 of the ratio of
mean gray levels (sRGB's curve is steeper than a power law near black, so doubling the light of
LOL's dark photos reads as 0.7-0.8 of these "stops"; the table prints the input's change too).
The slope of the output's change against the input's is 1 for a model that passes the input's
level through and 0 for one that sets the exposure from the scene alone. Users' dark photos are
rarely exactly as dark as LOL's, so this is how far the models' behaviour carries.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from enhance.exposure import adjust_exposure, check_stops
from enhance.imageio import read_image
from enhance.inference import enhance_tensor, to_tensor
from enhance.metrics import exposure_stops, psnr, quantize_8bit
from enhance.pairs import PairError, find_listed_pairs
from enhance.weights import REPO_ROOT, WeightsError, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with low/ and high/ (LOL layout)")
    parser.add_argument("--model", default="saga-s", help="registered model name or .safetensors file")
    parser.add_argument("--list", type=Path, default=REPO_ROOT / "datasets" / "lol_v1_val.txt",
                        help="file of image stems to use (one per line; default: datasets/lol_v1_val.txt)")
    parser.add_argument("--shifts", default="-2,-1,0,1,2",
                        help="input exposure shifts in stops (within -3..3); write --shifts=-2,-1 with '=', "
                             "or the leading minus reads as an option")
    args = parser.parse_args()
    try:
        shifts = sorted({check_stops(s, "--shifts") for s in args.shifts.split(",")} | {0.0})
    except (TypeError, ValueError) as err:
        parser.error(str(err))

    # Bad input ends in one line, not in a traceback (or, for a folder holding none of the listed
    # stems, in one from the line fit of no pairs at all).
    try:
        pair_set = find_listed_pairs(args.data, args.list)  # the table covers every listed stem, or none
        model = load_model(args.model)
    except (PairError, WeightsError) as err:
        raise SystemExit(f"input_darkness: {err}")
    pairs = pair_set.pairs
    input_change = np.zeros((len(pairs), len(shifts)))  # the shifted input against the original
    stops = np.zeros_like(input_change)  # the output against the ground truth
    psnrs = np.zeros_like(input_change)
    for i, pair in enumerate(pairs):
        low, high = read_image(pair.low).pixels, read_image(pair.high).pixels
        for j, shift in enumerate(shifts):
            shifted = adjust_exposure(low, shift)
            with torch.no_grad():
                out = enhance_tensor(model, to_tensor(shifted), tile=0, precision="fp32")
            out8 = quantize_8bit(out[0].permute(1, 2, 0).numpy())
            input_change[i, j] = exposure_stops(shifted, low)
            stops[i, j] = exposure_stops(out8, high)
            psnrs[i, j] = psnr(out8, high)

    output_change = stops - stops[:, [shifts.index(0.0)]]
    print(f"{args.model} on {len(pairs)} pairs of {args.list.name}, fp32, whole images")
    print("| input shift (linear stops) | input's gray-level change | output's gray-level change "
          "| output exposure vs GT: mean | mean abs | PSNR (dB) |")
    print("|---|---|---|---|---|---|")
    for j, shift in enumerate(shifts):
        print(f"| {shift:+g} | {input_change[:, j].mean():+.3f} | {output_change[:, j].mean():+.3f} | "
              f"{stops[:, j].mean():+.3f} | {np.abs(stops[:, j]).mean():.3f} | {psnrs[:, j].mean():.2f} |")
    slope = np.polyfit(input_change.ravel(), output_change.ravel(), 1)[0]
    print(f"output change per unit of input change (least squares over all pairs and shifts): {slope:.3f}")


if __name__ == "__main__":
    main()

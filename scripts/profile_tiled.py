"""Where does the time of a tiled CPU pass go? torch.profiler's table of the busiest ops.

    python scripts/profile_tiled.py [--model saga-s] [--size 1200x1600] [--tile 256] [--precision bf16]

Enhances a synthetic dark photo (uniform noise at a tenth of full scale: the network's cost
does not depend on the content) once to warm up on a 512x512 crop, times one whole tiled pass,
then profiles a second one and prints the ops sorted by their own CPU time. This is how the
strided-slice slowdown (README, "Channel slices copied to dense memory") was found.
"""

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from enhance.inference import enhance_tensor
from enhance.weights import WeightsError, load_model


def size(text: str) -> tuple[int, int]:
    """HEIGHTxWIDTH, e.g. 1200x1600, as (height, width); argparse turns a ValueError into a usage error."""
    height, width = (int(v) for v in text.lower().split("x"))
    if height < 1 or width < 1:
        raise ValueError(text)
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="saga-s", help="registered model name or .safetensors file")
    parser.add_argument("--size", default=(1200, 1600), type=size, help="HEIGHTxWIDTH of the synthetic photo")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels (0: the whole photo in one pass)")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--rows", type=int, default=15, help="ops to list")
    args = parser.parse_args()
    height, width = args.size
    if args.tile < 0:  # enhance_tensor would refuse it only after the model is loaded, in a traceback
        parser.error(f"--tile {args.tile}: use a tile side in pixels (or 0, the whole photo in one pass)")

    torch.manual_seed(0)
    try:
        model = load_model(args.model)
    except WeightsError as err:
        raise SystemExit(f"profile_tiled: {err}")
    photo = torch.rand(1, 3, height, width) * 0.1
    options = dict(tile=args.tile, precision=args.precision)
    enhance_tensor(model, photo[..., :512, :512], **options)
    start = time.perf_counter()
    enhance_tensor(model, photo, **options)
    print(f"{args.model}, {height}x{width}, {args.tile}-px tiles, {args.precision}: "
          f"{time.perf_counter() - start:.2f} s unprofiled")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        enhance_tensor(model, photo, **options)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()

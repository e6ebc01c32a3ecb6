"""`enhance bench --photo 1,4,12,24`: end-to-end speed and peak memory of `enhance run` on big photos.

Each size is a synthetic dark JPEG of that many megapixels (4:3), enhanced by a fresh
`enhance run` process under `/usr/bin/time -v`, which reports the wall time and the peak resident
memory of the whole process (decode, network, encode). The report also compares the network's
FLOPs per megapixel with this machine's measured matmul throughput: how far the run is from what
the hardware allows.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from .bench import _device_name, check_output, write_json, write_text
from .models import create_model
from .imageio import DEFAULT_MAX_PIXELS, read_image
from .inference import CPU_TILE, precision_name, resolve_device, to_tensor
from .metrics import psnr
from .tiling import run_tiled
from .weights import REPO_ROOT, UntrainedModelError, load_model, save_weights


def add_arguments(parser) -> None:
    group = parser.add_argument_group("photo pipeline (enhance/photobench.py)")
    group.add_argument("--photo", metavar="MP", help="comma-separated photo sizes in megapixels, e.g. 1,4,12,24")
    group.add_argument("--photo-args", default="", help="extra `enhance run` options, e.g. \"--tile 512\" (default none)")


def synthetic_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """A dark 4:3 scene (gradients, shapes, sensor-like noise) saved as a JPEG."""
    height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    width = int(round(height * 4 / 3))
    rng = np.random.default_rng(0)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    base = np.stack([0.10 + 0.10 * x + 0 * y, 0.06 + 0.08 * y + 0 * x, 0.05 + 0.06 * x * y], axis=-1)
    base[(x - 0.3) ** 2 + (y - 0.5) ** 2 < 0.02] *= 2.5  # a "lamp"
    noisy = base + rng.normal(0, 0.015, base.shape).astype(np.float32)
    Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(path, quality=92)
    return width, height


def matmul_tflops(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


def flops_per_megapixel(model_name: str, tile: int) -> float:
    """FLOPs per megapixel of one whole-image pass (tile 0) or of the tiled schedule."""
    model = create_model(model_name).eval()
    image = torch.rand(1, 3, 1024, 1024)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if tile == 0:
            model(image)
        else:
            run_tiled(model, image, tile)
    return counter.get_total_flops() / (1024 * 1024 / 1e6)


def _option(extra: list[str], name: str, default: Optional[str]) -> Optional[str]:
    """The value `enhance run` will read for option `name` in --photo-args: the last one given, either form."""
    value = default
    for i, arg in enumerate(extra):
        if arg == name:
            if i + 1 == len(extra):
                raise SystemExit(f"--photo-args: {name} needs a value")
            value = extra[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def compare_tiled_with_whole(extra: list[str], megapixels: float = 2.0) -> str:
    """How far the tiled result lands from the whole-image pass on a dark 2-MP photo."""
    model = load_model(_option(extra, "--weights", None) or _option(extra, "--model", None))
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_photo(Path(tmp) / "p.jpg", megapixels)
        x = to_tensor(read_image(Path(tmp) / "p.jpg").pixels)
    with torch.no_grad():
        whole = model(x)
    tiled = run_tiled(model, x, CPU_TILE)
    max_abs = float((tiled - whole).abs().max())
    similarity = psnr(tiled[0].permute(1, 2, 0).numpy(), whole[0].permute(1, 2, 0).numpy(), data_range=1.0)
    return (f"On a {megapixels:g}-MP photo (fp32), {CPU_TILE}-px tiles vs the whole-image pass: "
            f"max-abs {max_abs * 255:.4f}/255, PSNR {similarity:.1f} dB.")


GNU_TIME = "/usr/bin/time"  # GNU time: its -v prints the peak RSS of the whole process


def gnu_time_missing() -> str | None:
    """Why run_one cannot measure here, or None. macOS's /usr/bin/time has no -v; Windows has none."""
    if not sys.platform.startswith("linux") or not os.access(GNU_TIME, os.X_OK):
        return f"--photo measures with GNU time ({GNU_TIME} -v), which this system lacks (on Debian/Ubuntu: apt install time)"
    return None


def run_one(photo: Path, out_dir: Path, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `enhance run` on one photo, measured by GNU time -v."""
    command = [GNU_TIME, "-v", sys.executable, "-m", "enhance", "run", str(photo), "-o", str(out_dir),
               "--overwrite", *extra]
    # This checkout's `enhance`, as bench.measure_cell's cells: not another copy installed in the
    # environment, and found from any working folder.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"enhance run failed on {photo.name}:\n{result.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return hours * 3600 + minutes * 60 + seconds, rss_kb / 1024


def main(args) -> int:
    try:
        sizes = list(dict.fromkeys(float(s) for s in args.photo.split(",") if s.strip()))  # each size once
    except ValueError:
        raise SystemExit(f"--photo: expected comma-separated megapixels, got {args.photo!r}") from None
    if not sizes or not all(math.isfinite(mp) and mp > 0 for mp in sizes):  # nan and inf parse as floats
        raise SystemExit(f"--photo {args.photo}: each size must be above 0 megapixels")
    extra = args.photo_args.split()
    if _option(extra, "--model", None) is not None:
        raise SystemExit("--photo-args: give the model as bench's own --model, which also sets the FLOP count")
    max_pixels = _option(extra, "--max-pixels", str(DEFAULT_MAX_PIXELS))
    if max_pixels.isdigit() and max(sizes) * 1e6 > int(max_pixels):
        raise SystemExit(f"--photo {args.photo}: enhance run refuses photos over {int(max_pixels) / 1e6:g} MP "
                         "(raise its --max-pixels in --photo-args)")
    if args.plot:
        raise SystemExit("--plot: --photo writes no plot; its report is a table (--markdown, --json)")
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        check_output(path, flag)
    if missing := gnu_time_missing():
        raise SystemExit(missing)
    tile = _option(extra, "--tile", "auto")
    tile = int(tile) if tile.isdigit() else CPU_TILE
    try:
        device = resolve_device(_option(extra, "--device", "auto"))
        precision = _option(extra, "--precision", "auto")
        measured_in = precision_name(precision, device)
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"--photo-args: {err}") from None
    # What the figures were measured on: they differ several-fold between machines and precisions.
    machine = (f"Machine: {_device_name(torch.device('cpu'))}, {os.cpu_count()} CPU cores, torch {torch.__version__}; "
               f"`enhance run` on {device.type}"
               + (f" ({_device_name(device)})" if device.type == "cuda" else "")
               + f", precision {precision} ({measured_in}).")
    rows = []
    with tempfile.TemporaryDirectory(prefix="saga-photobench-") as tmp:
        if "--weights" not in extra:
            try:
                load_model(args.model)
                extra += ["--model", args.model]
            except UntrainedModelError:
                # Speed does not depend on the weights' values: time the architecture anyway.
                print(f"note: {args.model} has no trained weights; timing seeded random weights", flush=True)
                torch.manual_seed(0)
                extra += ["--weights", str(Path(tmp) / "random.safetensors")]
                save_weights(create_model(args.model), extra[-1], name=args.model)
        for mp in sizes:
            photo = Path(tmp) / f"dark_{mp:g}mp.jpg"
            width, height = synthetic_photo(photo, mp)
            wall, rss = run_one(photo, Path(tmp) / "out", extra)
            rows.append((mp, width, height, wall, rss))
            print(f"{mp:g} MP ({width}x{height}): {wall:.1f} s, {width * height / 1e6 / wall:.3f} MP/s, "
                  f"peak RSS {rss:.0f} MB", flush=True)
    tiled_vs_whole = compare_tiled_with_whole(extra)
    flops = flops_per_megapixel(args.model, tile)
    whole = flops_per_megapixel(args.model, 0)
    peak = matmul_tflops(torch.bfloat16)
    lines = [f"`enhance bench --photo {args.photo}"
             + (f" --photo-args \"{args.photo_args}\"" if args.photo_args else "") + "`", "", machine, "",
             "| photo | size | wall (s) | s/MP | MP/s | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    lines += [f"| {mp:g} MP | {w}x{h} | {wall:.1f} | {wall * 1e6 / (w * h):.2f} | {w * h / 1e6 / wall:.3f} | {rss:.0f} |"
              for mp, w, h, wall, rss in rows]
    best_rate = max(w * h / 1e6 / wall for _, w, h, wall, _ in rows)
    ideal_rate = peak * 1e12 / flops
    lines += ["", f"Network FLOPs: {whole / 1e9:.1f} GFLOP/MP for one whole-image pass; {flops / 1e9:.1f} GFLOP/MP "
              f"tiled ({tile}-px tiles). Measured bf16 matmul throughput: {peak:.2f} TFLOP/s, "
              f"so the FLOP bound is {ideal_rate:.2f} MP/s; the best measured rate, {best_rate:.3f} MP/s, "
              f"is {ideal_rate / best_rate:.1f}x below it.", "", tiled_vs_whole]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        write_text(args.markdown, "--markdown", "# Photo pipeline\n\n" + report + "\n")
    if args.json:
        write_json({"command": lines[0].strip("`"), "machine": machine,
                    "photos": [{"megapixels": mp, "width": w, "height": h, "wall_s": round(wall, 2),
                                "peak_rss_mb": round(rss, 1)} for mp, w, h, wall, rss in rows],
                    "gflop_per_mp_whole": round(whole / 1e9, 2), "gflop_per_mp_tiled": round(flops / 1e9, 2),
                    "tile": tile, "bf16_matmul_tflops": round(peak, 3), "tiled_vs_whole": tiled_vs_whole}, args.json)
    return 0

"""`enhance eval`: PSNR / SSIM of a model on a paired benchmark (LOL-v1, LOL-v2, ...).

    enhance eval --data LOLdataset/eval15 --model saga-s
    enhance eval --data LOL-v2/Real_captured/Test --weights run/best.safetensors --gt-mean --report r.json
    enhance eval --low my/low --high my/high --weights w.safetensors --save-dir outputs/
    enhance eval --data my_dark_photos/ --no-reference --save-dir outputs/

The protocol, so that a figure always means the same thing (see enhance/metrics.py):

- The model's float output is quantised to 8 bits exactly as if it had been saved to a PNG
  (`quantize_8bit`), then PSNR (data range 255) and SSIM are computed against the 8-bit ground
  truth. A 16-bit ground truth is first rounded to 8 bits (round(v * 255 / 65535)), since that
  is what the benchmarks' 8-bit files hold. The means are plain averages over images.
- `--gt-mean` also reports the "GT-mean" figures (output brightness rescaled to the ground
  truth's before scoring, on the quantised output, which is not rounded again once scaled, as
  in HVI-CIDNet's measure.py). They are printed and stored in their own columns / keys, never
  mixed with the plain figures.
- Default precision is fp32 (not "auto"), so a figure does not depend on whether the machine
  happens to have bf16 instructions; default tile is 0 (whole image: LOL images are 600x400).
- `--tta` is the 8-way flip/rotate self-ensemble (4 rotations x optional horizontal flip); the
  8 outputs are transformed back and averaged in float before quantisation. Every output says
  "TTA x8", because such figures are not comparable with single-pass ones.
- FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` for one forward pass on a
  1x3x256x256 input. It counts a multiply-add as 2 FLOPs and only counts convolutions and
  matrix products (element-wise operations are not counted). Papers that report "FLOPs"
  measured with thop/fvcore usually count multiply-adds once, i.e. half of our number.
- Seconds per image time the network alone (with TTA: all 8 passes), not reading or scoring,
  after one untimed warm-up pass on the first image.

Photos without ground truth: `--no-reference` evaluates every image directly in `--data` and
reports no-reference statistics (mean brightness, RMS contrast, colourfulness of input and
output), labelled "no-reference statistics — not a benchmark figure". It is an explicit flag,
not a fallback: pointing a benchmark run at the wrong folder should fail, not quietly produce
a different kind of number.

`evaluate()` does the work and returns the report dict (for the web app and training);
`main()` only parses, prints and writes files.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from .imageio import ImageReadError, ImageWriteError, Photo, convert_pixels, read_image, write_image
from .inference import DEVICES, PRECISIONS, enhance_tensor, precision_name, resolve_device, to_tensor
from .metrics import (
    SSIM_MIN_SIDE,
    colourfulness,
    exposure_stops,
    mean_brightness,
    psnr,
    psnr_gt_mean,
    quantize_8bit,
    rms_contrast,
    ssim,
    ssim_gt_mean,
)
from .models import DEFAULT_MODEL, MODELS, get_entry
from .pairs import IMAGE_EXTENSIONS, PairError, PairSet, find_pairs, find_unpaired, natural_key, read_stem_list
from .weights import WEIGHTS_DIR, WeightsError, load_model, sha256_of

NO_REFERENCE_LABEL = "no-reference statistics — not a benchmark figure"
TTA_LABEL = "TTA x8 (flip/rotate self-ensemble)"
FLOPS_INPUT = (1, 3, 256, 256)


# --- the work ----------------------------------------------------------------------------------


def tta_enhance(model, x: torch.Tensor, **options) -> torch.Tensor:
    """The 8-way self-ensemble: average of the model on every flip/rotation of `x`, undone.

    Each of the 4 rotations, with and without a horizontal flip, goes through the model; the
    output is rotated back and un-flipped, and the 8 results are averaged in float.
    """
    total = None
    for flip in (False, True):
        flipped = torch.flip(x, dims=[-1]) if flip else x
        for k in range(4):
            out = enhance_tensor(model, torch.rot90(flipped, k, dims=[-2, -1]), **options)
            out = torch.rot90(out, -k, dims=[-2, -1])  # undo in reverse order: rotation, then flip
            if flip:
                out = torch.flip(out, dims=[-1])
            total = out if total is None else total + out
    return total / 8


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model) -> int:
    """FLOPs of one forward pass on a 1x3x256x256 input (multiply-add = 2; convs and matmuls only)."""
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(FLOPS_INPUT, device=device))
    return int(counter.get_total_flops())


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """Ground truth as 8 bits: uint8 unchanged, uint16 and float rounded to the nearest 8-bit level
    (v * 255 / 65535, v * 255)."""
    return convert_pixels(pixels, np.uint8)


def _sync(device: torch.device) -> None:
    # GPU work is asynchronous: without this the timer would stop before the work is done.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mean(values: list) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _protocol(gt_mean: bool, tta: bool, precision: str, tile: int, no_reference: bool) -> str:
    if no_reference:
        parts = [NO_REFERENCE_LABEL, "output quantised to 8 bits as if saved as PNG",
                 "mean BT.601 brightness, RMS contrast, Hasler-Suesstrunk colourfulness"]
    else:
        parts = ["output quantised to 8 bits as if saved as PNG",
                 "PSNR (data range 255) and SSIM (Gaussian 11x11, sigma 1.5, per channel) "
                 "vs 8-bit ground truth (16-bit rounded to 8)",
                 "mean over images"]
        if gt_mean:
            parts.append("GT-mean figures separately: the 8-bit output scaled to the ground truth's mean gray "
                         "level, not rounded again (HVI-CIDNet's measure.py)")
    parts.append(precision)
    parts.append("whole images" if tile == 0 else f"tiles of {tile} px (an image within one tile: whole)")
    if tta:
        parts.append(TTA_LABEL)
    return "; ".join(parts)


def evaluate(model, pairset: PairSet, *, gt_mean: bool = False, tta: bool = False,
             save_dir: Path | str | None = None, precision: str = "fp32", tile: int = 0,
             progress: bool = True, model_name: str | None = None,
             weights_sha256: str | None = None, overwrite: bool = False) -> dict:
    """Run `model` over every pair of `pairset` and return the report dict.

    Pairs whose ground truth is None (from `find_unpaired`) give no-reference statistics
    instead of PSNR/SSIM. Pairs that cannot be scored (unreadable file, low and ground truth
    of different sizes) are not silently dropped: they are listed in report["skipped"], and
    the means are over report["n_images"] images. `save_dir` receives each output as the exact
    8-bit PNG that was scored, `<stem>.png`; files already there are refused up front unless
    `overwrite` (e.g. an earlier run's outputs).
    """
    device = next(model.parameters()).device
    precision = precision_name(precision, device)  # fails on a bad precision before any work is done
    no_reference = all(pair.high is None for pair in pairset.pairs)
    if save_dir is not None:
        save_dir = Path(save_dir)
        # "<stem>.png" in a folder of inputs could replace an input image: refuse.
        input_folders = {p.low.parent.resolve() for p in pairset.pairs}
        input_folders |= {p.high.parent.resolve() for p in pairset.pairs if p.high is not None}
        if save_dir.resolve() in input_folders or any(_same_folder(save_dir, folder) for folder in input_folders):
            raise ValueError(f"--save-dir {save_dir}: that folder holds input images; choose another")
        taken = [f"{p.stem}.png" for p in pairset.pairs if (save_dir / f"{p.stem}.png").exists()]
        if taken and not overwrite:
            raise ValueError(f"--save-dir {save_dir}: already holds {', '.join(taken[:3])}"
                             f"{f' and {len(taken) - 3} more' if len(taken) > 3 else ''}; "
                             "pass --overwrite to replace them, or choose another folder")
        if save_dir.exists() and not save_dir.is_dir():
            raise ValueError(f"--save-dir {save_dir}: is a file, not a folder")
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"--save-dir {save_dir}: cannot create the folder ({err.strerror or err})") from None

    options = {"tile": tile, "precision": precision}
    parameters, flops = count_parameters(model), count_flops(model)
    if pairset.pairs:
        # One untimed pass first: the first call of a shape pays for kernel selection and memory
        # allocation, which would otherwise inflate the first image's seconds.
        try:
            enhance_tensor(model, to_tensor(read_image(pairset.pairs[0].low).pixels), **options)
        except ImageReadError:
            pass  # reported as skipped in the loop below
    records, skipped = [], []
    title = NO_REFERENCE_LABEL if no_reference else f"PSNR/SSIM on {pairset.layout}"
    bar = tqdm(pairset.pairs, desc="TTA x8" if tta else "eval", unit="image", disable=not progress,
               file=sys.stderr)
    for pair in bar:
        try:
            low = read_image(pair.low).pixels
            high = None if pair.high is None else to_8bit(read_image(pair.high).pixels)
        except ImageReadError as err:
            skipped.append({"name": pair.stem, "reason": str(err)})
            continue
        if high is not None and high.shape != low.shape:
            skipped.append({"name": pair.stem, "reason": f"low {low.shape[1]}x{low.shape[0]} ({pair.low}) vs "
                                                         f"ground truth {high.shape[1]}x{high.shape[0]} ({pair.high})"})
            continue
        if high is not None and min(low.shape[:2]) < SSIM_MIN_SIDE:
            # Checked before the network runs: SSIM would refuse it only after the pass.
            skipped.append({"name": pair.stem, "reason": f"{pair.low}: {low.shape[1]}x{low.shape[0]} is smaller "
                                                         f"than the {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} window of SSIM"})
            continue

        x = to_tensor(low)
        _sync(device)
        start = time.perf_counter()
        try:  # enhance_tensor refuses a NaN output, which would score as black, silently
            out = tta_enhance(model, x, **options) if tta else enhance_tensor(model, x, **options)
        except ValueError as err:
            raise ValueError(f"{pair.stem}: {err}") from None
        out = out[0].permute(1, 2, 0).cpu().numpy()  # .cpu() waits for the GPU, so the time is complete
        seconds = time.perf_counter() - start
        out8 = quantize_8bit(out)  # what a saved PNG holds: every figure is computed from this

        if save_dir is not None:
            photo = Photo(pixels=out8, alpha=None, grayscale=False, bit_depth=8, format="PNG",
                          icc_profile=None, exif=None)
            write_image(save_dir / f"{pair.stem}.png", photo, overwrite=overwrite)

        if no_reference:
            record = {"name": pair.stem}
            for prefix, image in (("input", low), ("output", out8)):
                image01 = convert_pixels(image, np.float32)
                record[f"{prefix}_brightness"] = mean_brightness(image01)
                record[f"{prefix}_contrast"] = rms_contrast(image01)
                record[f"{prefix}_colourfulness"] = colourfulness(image01)
        else:
            record = {
                "name": pair.stem,
                "psnr": psnr(out8, high, data_range=255.0),
                "ssim": ssim(out8, high, data_range=255.0),
                "psnr_gt_mean": psnr_gt_mean(out8, high) if gt_mean else None,
                "ssim_gt_mean": ssim_gt_mean(out8, high) if gt_mean else None,
                # Most of the gap between plain and GT-mean figures is global exposure: in stops,
                # + means the output is brighter than the ground truth.
                "exposure_stops": exposure_stops(out8, high),
            }
        record["seconds"] = seconds
        records.append(record)

    def mean_of(key):
        return _mean([r[key] for r in records if r.get(key) is not None])

    report = {
        "title": title + (f", {TTA_LABEL}" if tta else ""),
        "psnr": mean_of("psnr"),
        "ssim": mean_of("ssim"),
        "psnr_gt_mean": mean_of("psnr_gt_mean"),
        "ssim_gt_mean": mean_of("ssim_gt_mean"),
        "exposure_stops": mean_of("exposure_stops"),
        "exposure_error_stops": _mean([abs(r["exposure_stops"]) for r in records if "exposure_stops" in r]),
        "n_images": len(records),
        "model": model_name,
        "weights_sha256": weights_sha256,
        "tta": tta,
        "protocol": _protocol(gt_mean, tta, precision, tile, no_reference),
        "dataset_layout": pairset.layout,
        "no_reference": no_reference,
        "parameters": parameters,
        "flops_256x256": flops,
        "mean_seconds": mean_of("seconds"),
        "device": str(device),
        "precision": precision,
        "tile": tile,
        "problems": pairset.problems(),
        "skipped": skipped,
        "images": records,
    }
    if no_reference:
        report["no_reference_statistics"] = {
            side: {stat: mean_of(f"{side}_{stat}") for stat in ("brightness", "contrast", "colourfulness")}
            for side in ("input", "output")
        }
    return report


# --- report files --------------------------------------------------------------------------------


_CSV_LABELS = ("model", "weights_sha256", "tta", "precision", "device", "protocol")


def write_report(report: dict, path: Path) -> None:
    """`.json`: the whole report; `.csv`: one row per image under a header row. Atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name in the same folder, renamed when complete: a reader never sees half a file.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "w", encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".json":
                # An identical output has PSNR inf, written as Infinity (Python's json reads it).
                json.dump(report, f, indent=2, ensure_ascii=False)
                f.write("\n")
            else:
                # Each row carries what the figures mean, so that a row read on its own, or rows of
                # several reports concatenated, are still labelled (TTA x8, model, device, protocol).
                labels = {key: report[key] for key in _CSV_LABELS}
                labels["tta"] = TTA_LABEL if report["tta"] else ""
                fields = list(report["images"][0]) if report["images"] else ["name"]
                writer = csv.DictWriter(f, fieldnames=fields + list(labels))
                writer.writeheader()
                writer.writerows({**row, **labels} for row in report["images"])
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# --- command line --------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, metavar="DIR", help="benchmark folder (LOL-v1 low/+high/, LOL-v2 Low/+Normal/, ...; "
                                                "a folder with train and test splits uses the test split)")
    data.add_argument("--low", type=Path, metavar="DIR", help="explicit low-light folder (with --high, instead of --data)")
    data.add_argument("--high", type=Path, metavar="DIR", help="explicit ground-truth folder (with --low)")
    data.add_argument("--list", type=Path, metavar="FILE",
                      help="evaluate only these stems (one per line, # comments), e.g. datasets/lol_v1_val.txt")
    data.add_argument("--no-reference", action="store_true",
                      help="photos without ground truth: every image directly in --data; prints "
                           "no-reference statistics, which are not a benchmark figure")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", help=f"registered model ({', '.join(MODELS)}); default: the default model")
    model.add_argument("--weights", type=Path, metavar="FILE", help="a .safetensors weights file")
    parser.add_argument("--gt-mean", action="store_true",
                        help="also report GT-mean PSNR/SSIM (brightness aligned to the ground truth), separately")
    parser.add_argument("--tta", action="store_true", help="8-way flip/rotate self-ensemble (labelled TTA x8)")
    parser.add_argument("--save-dir", type=Path, metavar="DIR",
                        help="write each output as the exact 8-bit PNG that was scored, <stem>.png")
    parser.add_argument("--overwrite", action="store_true", help="let --save-dir replace files of the same names")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write a .json report or a .csv of per-image rows")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="default: auto")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="default fp32 so that figures are reproducible across machines")
    parser.add_argument("--tile", type=int, default=0,
                        help="tile side in pixels; default 0 = whole image (LOL images are 600x400)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(message: str) -> int:
    print(f"enhance eval: error: {message}", file=sys.stderr)
    return 2


def _holds_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def _load(args, device) -> tuple:
    """(model, name for the report, sha256 of the file actually loaded or None)."""
    if args.weights is not None:
        model = load_model(args.weights, device)
        return model, str(args.weights), sha256_of(args.weights)
    model = load_model(args.model, device)  # None -> the default model
    name = args.model or DEFAULT_MODEL
    entry = get_entry(name) if name in MODELS else None  # a path given to --model is a file, not an entry
    if entry is None:
        return model, name, sha256_of(name)
    sha = sha256_of(WEIGHTS_DIR / entry.weights) if entry.weights else None
    return model, name, sha


def _find(args) -> PairSet:
    if args.no_reference:
        if args.data is None or args.low or args.high or args.list:
            raise PairError("--no-reference takes only --data (a folder of photos), not --low/--high/--list")
        return find_unpaired(args.data)
    stems = read_stem_list(args.list, allow_empty=False) if args.list else None
    try:
        return find_pairs(args.data, low_dir=args.low, high_dir=args.high, stems=stems)
    except PairError as err:
        if args.data is not None and _holds_images(args.data):
            raise PairError(f"{err}; for photos without ground truth pass --no-reference") from None
        raise


def _same_folder(a: Path, b: Path) -> bool:
    """One folder under two spellings: data/LOW is data/low on a file system that ignores case
    (macOS, Windows), which resolve() does not see."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _say_left_out(folder: Path, pairset: PairSet) -> None:
    """Name, in one line on stderr, what --no-reference does not read in `folder`: files that are
    not images (sidecars, notes) and subfolders, which it does not enter. Hidden names (.DS_Store)
    are not counted, as `enhance run` does not count them."""
    read = {pair.low for pair in pairset.pairs}
    left_out = sorted((p for p in folder.iterdir() if p not in read and not p.name.startswith(".")),
                      key=lambda p: natural_key(p.name))
    if not left_out:
        return
    folders = [p for p in left_out if p.is_dir()]
    files = [p for p in left_out if not p.is_dir()]
    parts = []
    if files:
        parts.append(f"{len(files)} file{'s' * (len(files) != 1)} whose names are not those of images "
                     f"({', '.join(IMAGE_EXTENSIONS)})")
    if folders:
        parts.append(f"{len(folders)} subfolder{'s' * (len(folders) != 1)} (only images directly in --data are read)")
    names = ", ".join(f"{p}/" if p.is_dir() else str(p) for p in left_out[:3]) + (", ..." if len(left_out) > 3 else "")
    print(f"enhance eval: left out {' and '.join(parts)}: {names}", file=sys.stderr)


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: dict) -> None:
    """The per-image table, then the means; GT-mean figures in their own labelled columns."""
    images = report["images"]
    width = max([len("image"), len("mean")] + [len(r["name"]) for r in images])
    print()
    print(report["title"])
    if report["no_reference"]:
        columns = [("in bright", "input_brightness", 3), ("in contr", "input_contrast", 3),
                   ("in colour", "input_colourfulness", 1), ("out bright", "output_brightness", 3),
                   ("out contr", "output_contrast", 3), ("out colour", "output_colourfulness", 1)]
    else:
        columns = [("PSNR dB", "psnr", 2), ("SSIM", "ssim", 4)]
        if report["psnr_gt_mean"] is not None:
            columns += [("GT-mean PSNR dB", "psnr_gt_mean", 2), ("GT-mean SSIM", "ssim_gt_mean", 4)]
        columns.append(("exposure vs GT", "exposure_stops", 2))
    columns.append(("seconds", "seconds", 3))

    def row(name: str, values: dict) -> str:
        cells = [f"{_fmt(values[key], digits):>{max(len(label), 8)}}" for label, key, digits in columns]
        return f"{name:<{width}}  " + "  ".join(cells)

    print(f"{'image':<{width}}  " + "  ".join(f"{label:>{max(len(label), 8)}}" for label, _, _ in columns))
    for record in images:
        print(row(record["name"], record))
    if report["no_reference"]:
        stats = report["no_reference_statistics"]
        means = {f"{side}_{stat}": stats[side][stat] for side in stats for stat in stats[side]}
    else:
        means = report
    print(row("mean", {**means, "seconds": report["mean_seconds"]}))
    print()
    n = report["n_images"]
    if report["no_reference"]:
        print(f"{NO_REFERENCE_LABEL} ({n} image{'s' * (n != 1)})")
    else:
        line = f"PSNR {_fmt(report['psnr'], 2)} dB, SSIM {_fmt(report['ssim'], 4)}"
        if report["psnr_gt_mean"] is not None:
            line += (f"   |   GT-mean: PSNR {_fmt(report['psnr_gt_mean'], 2)} dB, "
                     f"SSIM {_fmt(report['ssim_gt_mean'], 4)}")
        print(f"{line}   ({n} image{'s' * (n != 1)}{', TTA x8' if report['tta'] else ''})")
        print(f"exposure vs GT: mean {_fmt(report['exposure_stops'], 2)} stops, "
              f"mean absolute {_fmt(report['exposure_error_stops'], 2)} stops")
    print(f"parameters {report['parameters'] / 1e6:.3f} M, FLOPs {report['flops_256x256'] / 1e9:.2f} G at 256x256 "
          f"(one pass{'; TTA runs 8' if report['tta'] else ''}), "
          f"{_fmt(report['mean_seconds'], 3)} s per image on {report['device']}")
    print(f"protocol: {report['protocol']}")


def main(args) -> int:
    if args.data is None and (args.low is None or args.high is None):
        return _error("give --data DIR, or --low DIR and --high DIR")
    if args.report is not None and args.report.suffix.lower() not in (".json", ".csv"):
        return _error(f"--report {args.report}: use a .json or .csv file name")
    if args.tile < 0:
        return _error(f"--tile {args.tile}: use 0 (whole image) or a tile side in pixels")
    if args.no_reference and args.gt_mean:
        return _error("--gt-mean needs ground truth; it cannot be used with --no-reference")
    if args.save_dir is not None and args.data is not None and (args.save_dir.resolve() == args.data.resolve()
                                                                 or _same_folder(args.save_dir, args.data)):
        return _error(f"--save-dir {args.save_dir}: will not write into the --data folder itself")
    if args.report is not None:  # checked before the run, not after it: a long evaluation is not lost
        if args.report.is_dir():
            return _error(f"--report {args.report}: is a folder; give a file name ending in .json or .csv")
        try:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=args.report.parent).close()  # can a file be written there?
        except OSError as err:
            return _error(f"--report {args.report}: cannot write in its folder ({err.strerror or err})")
    try:
        pairset = _find(args)
    except PairError as err:
        return _error(str(err))
    except OSError as err:  # an unreadable --list file, or a folder that cannot be listed
        return _error(f"{err.filename}: {err.strerror}" if err.filename else str(err))

    print(f"dataset layout: {pairset.layout} ({len(pairset.pairs)} image{'s' * (len(pairset.pairs) != 1)})")
    if args.no_reference:
        _say_left_out(args.data, pairset)
    problems = pairset.problems()
    if problems:
        print(f"{len(problems)} problem(s) found; the images concerned are not evaluated:")
        for line in problems:
            print(f"  {line}")

    try:
        device = resolve_device(args.device)
        precision = precision_name(args.precision, device)
        model, name, sha = _load(args, device)
    except (WeightsError, ValueError) as err:
        return _error(str(err))
    print(f"model: {name} (weights sha256 {sha or 'none'}), {precision} on {device}"
          + (f", {TTA_LABEL}" if args.tta else ""))

    try:
        report = evaluate(model, pairset, gt_mean=args.gt_mean, tta=args.tta, save_dir=args.save_dir,
                          precision=args.precision, tile=args.tile, progress=not args.no_progress,
                          model_name=name, weights_sha256=sha, overwrite=args.overwrite)
    except (ValueError, ImageWriteError) as err:
        return _error(str(err))

    for item in report["skipped"]:
        print(f"skipped {item['name']}: {item['reason']}")
    if report["n_images"] == 0:
        return _error("no image could be evaluated")
    # Each image asked for counts once. A pair of different sizes is both one of the problems and
    # skipped by evaluate(); a --list stem without ground truth is both a missing stem and a
    # missing partner. So: pairs found but not scored, plus what was asked for but not paired.
    unpaired = (len(pairset.missing_stems) if args.list
                else len(pairset.missing_high) + len(pairset.missing_low))
    left_out = unpaired + len(pairset.pairs) - report["n_images"]
    print_report(report)
    if args.save_dir is not None:
        print(f"outputs: {args.save_dir}/<stem>.png (the exact 8-bit images scored)")
    if args.report is not None:
        try:
            write_report(report, args.report)
        except OSError as err:
            return _error(f"--report {args.report}: {err}")
        print(f"report: {args.report}")
    if left_out:  # the means cover fewer images than were asked for: a script should notice
        print(f"enhance eval: {left_out} of the images asked for were not evaluated (listed above); "
              f"the means are over {report['n_images']}", file=sys.stderr)
        return 1
    return 0

"""`enhance run`: batch-enhance photos from the terminal.

    enhance run photo.jpg folder/ "shots/*.png" -o enhanced/ [--recursive] [--ext png] [--tile 512]
                [--exposure 0.5] [--strength 0.8]

Files are processed one at a time with seamless tiling, so memory is bounded by the tile size.
A bad file is reported in one line and the batch goes on; the exit status is 1 if any file
failed. Outputs are written to a temporary name and renamed, so an interrupted run leaves no
half-written file; existing files are never replaced without --overwrite. Under
`torchrun --nproc-per-node K`, each process takes every K-th file of the sorted list.
"""

from __future__ import annotations

import glob
import itertools
import os
import signal
import sys
import threading
import time
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from tqdm import tqdm

from .exposure import EXPOSURE_RANGE, check_stops
from .imageio import (DEFAULT_MAX_PIXELS, RAW_EXTENSIONS, SUPPORTED_EXTENSIONS, ImageIOWarning, ImageReadError,
                      ImageWriteError, is_image_path, output_extension, read_image, remove_leftover_temps,
                      side_limit_problem, write_image)
from .inference import DEVICES, PRECISIONS, resolve_device, resolve_precision
from .models import DEFAULT_MODEL, list_models
from .pipeline import ANY_EXPOSURE_MODEL, check_strength, enhance_photo, input_level_note
from .weights import WeightsError, load_model


@dataclass(frozen=True)
class Job:
    source: Path
    destination: Path


class UsageError(Exception):
    """A problem with the command line itself (not with one photo)."""


# Written into an output folder that `enhance run` creates. A walk of the input folders leaves
# out only an output folder that bears it: one that held photos of its own before (a photo
# folder chosen as -o) is walked like any other, so its photos stay input photos, protected.
OUTPUT_MARK = ".saga-enhance-output"


def collect_inputs(inputs: list[str], recursive: bool, not_images: Optional[list[Path]] = None,
                   output_folder: Optional[Path] = None,
                   unreadable: Optional[list[str]] = None) -> list[tuple[Path, Path]]:
    """(file, path relative to its input root) for every image named by files, folders or globs.

    Files that folders and globs hold but whose names are not images' (sidecars, notes) are left
    out, and appended to `not_images` when it is given, so that the caller can say so. Subfolders
    that cannot be read are named in `unreadable`. A file named twice is taken once.
    A folder or glob whose walk reaches into `output_folder`, made by an earlier run (OUTPUT_MARK),
    leaves that folder out: what the earlier run wrote there is output, not input, so
    `-r shots/ -o shots/enhanced` and `"shots/**/*.jpg" -r -o shots/enhanced` can be rerun.
    With -r, a glob's files keep their path below the glob's first wildcard, as a folder's do, and
    the folders it matches are entered.
    """
    found: list[tuple[Path, Path]] = []
    for spec in inputs:
        path = Path(spec)
        try:
            is_dir, is_file = path.is_dir(), path.is_file()
        except OSError as err:  # e.g. inside a folder we may not enter
            raise UsageError(f"{spec}: cannot access it ({err.strerror or err})") from None
        if is_dir:
            files = [(f, f.relative_to(path)) for f in _folder_files(path, recursive, unreadable)]
            root = path
        elif is_file:
            found.append((path, Path(path.name)))  # named explicitly: tried even with an odd suffix
            continue
        elif path.is_symlink():
            raise UsageError(f"{spec}: a symbolic link to nothing (broken, or a loop)")
        else:
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=recursive))
            if not matches:
                raise UsageError(f"{spec}: no such file, folder or matching glob")
            root = _glob_root(spec)
            files = [(m, _below(m, root) if recursive else Path(m.name)) for m in matches if _file_or_broken_link(m)]
            if recursive:  # a folder the glob matches is entered, as the shell's expansion of it would be
                files += [(f, _below(f, root)) for m in matches if m.is_dir()
                          for f in _folder_files(m, recursive, unreadable)]
        if output_folder is not None and (output_folder / OUTPUT_MARK).is_file() and _inside(root)(output_folder):
            in_output = _inside(output_folder)
            files = [(f, relative) for f, relative in files if not in_output(f)]
        found += [(f, relative) for f, relative in files if is_image_path(f)]
        if not_images is not None:
            not_images += [f for f, _ in files if not is_image_path(f) and not f.name.startswith(".")]
    unique: dict[str, tuple[Path, Path]] = {}
    ranks: dict[str, tuple[int, int]] = {}
    for source, relative in found:
        key = _file_key(source)
        # A file named twice: keep the shortest way to it (a glob's ** also goes round symlink loops:
        # links/loop/loop/a.jpg), and of one way, the place that mirrors its subfolder (shots/day1/a.jpg
        # named alone and again by shots/ with -r), else it lands beside shots/a.jpg and collides.
        rank = (len(Path(os.path.abspath(source)).parts), -len(relative.parts))
        if key not in unique or rank < ranks[key]:
            unique[key], ranks[key] = (source, relative), rank
    return list(unique.values())


def _folder_files(folder: Path, recursive: bool, unreadable: Optional[list[str]]) -> list[Path]:
    """The files (and links to nothing) in `folder` (and, recursive, its subfolders, not following
    links), sorted."""
    def note_unreadable(err: OSError) -> None:
        if Path(err.filename) == folder:
            raise UsageError(f"{folder}: cannot read the folder ({err.strerror or err})")
        if unreadable is not None:
            unreadable.append(f"{err.filename}: cannot read the folder ({err.strerror or err}); "
                              "its photos were left out")

    files = []
    for parent, subfolders, names in os.walk(folder, onerror=note_unreadable):
        files += [Path(parent, name) for name in names if _file_or_broken_link(Path(parent, name))]
        if not recursive:
            break
    return sorted(files)


def _file_or_broken_link(path: Path) -> bool:
    """A file, or a link to nothing (broken, or a loop): kept, such a link fails by name when it is
    read, instead of vanishing from the batch unsaid. Links to folders are not files."""
    return path.is_file() or (path.is_symlink() and not path.is_dir())


def _glob_root(pattern: str) -> Path:
    """The folder a glob starts from: its leading components that hold no wildcard."""
    parts = Path(pattern).parts
    literal = list(itertools.takewhile(lambda part: not any(c in part for c in "*?["), parts))
    return Path(*literal) if literal else Path(".")


def _below(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:  # a pattern with ".." after its wildcard
        return Path(path.name)


def _file_key(path: Path) -> str:
    """One spelling per file: absolute, links resolved, case folded where the file system ignores case."""
    try:
        resolved = str(path.resolve())
    except (OSError, RuntimeError):  # a symlink loop: reading it fails later, by name
        # Its folder resolved, so that a glob's ** reaching it round another loop finds one file.
        resolved = os.path.join(os.path.realpath(path.parent), path.name)
    if sys.platform == "darwin":
        # normcase folds nothing there, but APFS and HFS+ ignore case (and Unicode normalisation) by
        # default: IMG.JPG and img.jpg are one file. On a case-sensitive volume this only refuses more.
        return unicodedata.normalize("NFC", resolved).casefold()
    return os.path.normcase(resolved)


def _inside(folder: Path) -> Callable[[Path], bool]:
    """A test of whether a path lies inside `folder`, at any depth (`folder` itself is not inside)."""
    prefix = _file_key(folder).rstrip(os.sep) + os.sep  # once, not once per file tested
    return lambda path: _file_key(path).startswith(prefix)


def plan_jobs(inputs: list[tuple[Path, Path]], out_dir: Path, suffix: str, ext: str,
              recursive: bool) -> tuple[list[Job], list[str]]:
    """Output paths for every input; two inputs that would write the same file are an error."""
    jobs, errors, claimed = [], [], {}
    for source, relative in inputs:
        parent = relative.parent if recursive else Path()
        name = f"{relative.stem}{suffix}{output_extension(source, ext)}"
        destination = out_dir / parent / name
        key = _file_key(destination)
        if key in claimed:
            other = claimed[key]
            # --suffix and --ext change both names alike; only another place parts them.
            advice = "give them separate -o folders"
            if other.name == source.name and not recursive:
                advice += ", or use -r from a folder above both to mirror its subfolders"
            elif other.name == source.name and (above := _folder_above(source.parent, other.parent)):
                # -r was given, but each was named on its own: there was no subfolder to mirror.
                advice += (f", or name one folder above both, such as {above}, instead of each: -r mirrors "
                           "only the subfolders below a folder or glob that is named")
            errors.append(f"{source}: would write {destination}, which {other} also writes ({advice})")
            continue
        claimed[key] = source
        jobs.append(Job(source, destination))
    return jobs, errors


def _folder_above(a: Path, b: Path) -> Optional[str]:
    """The nearest folder holding both, or None when that is only a file system's root (or they
    are on different Windows drives): running -r over a whole disk is no advice."""
    try:
        above = os.path.commonpath([os.path.abspath(a), os.path.abspath(b)])
    except ValueError:  # different drives
        return None
    return None if Path(above) == Path(above).parent else above


def _refuse_outputs_onto_themselves(jobs: list[Job], output: Path) -> tuple[list[Job], list[str]]:
    """The jobs whose output is not their own photo, and an error for each that is.

    Into the input folder with no --suffix and the same format, a photo's output is the photo
    itself. It is not an earlier output (--skip-existing would count it as done) and may not be
    replaced (--overwrite); when that is so of every photo, the command line is the mistake.
    """
    kept, errors = [], []
    for job in jobs:
        if _file_key(job.destination) == _file_key(job.source) or _same_file(job.destination, job.source):
            errors.append(f"{job.source}: its output would be the photo itself (use --suffix, --ext or another -o)")
        else:
            kept.append(job)
    if errors and not kept:
        raise UsageError(f"{output}: every output would be its own input photo (same folder, name and format); "
                         "add --suffix, e.g. --suffix _enhanced, or choose another --ext or -o")
    return kept, errors


def _same_file(a: Path, b: Path) -> bool:
    """Two names of one file: on a file system that ignores case, IMG_1.JPG is also IMG_1.jpg (--ext jpg)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there (yet)
        return False


def spare_input_photos(jobs: list[Job], inputs: list[tuple[Path, Path]]) -> tuple[list[Job], list[str]]:
    """The jobs whose output is not one of the input photos, and an error for each that is:
    replacing a photo with its enhanced self, or with another's, is data loss even under --overwrite.
    (Only --overwrite writes over an existing file, so the caller asks only then.)"""
    sources = {_file_key(source) for source, _ in inputs}
    kept, errors = [], []
    for job in jobs:
        if _file_key(job.destination) in sources:
            errors.append(f"{job.source}: would write {job.destination}, which is an input photo "
                          "(use --suffix, --ext or another -o)")
        else:
            kept.append(job)
    return kept, errors


def add_arguments(parser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("-r", "--recursive", action="store_true", help="enter subfolders; mirror them in the output")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list_models(), help="registered model")
    parser.add_argument("--weights", type=Path, help="a .safetensors weights file (overrides --model)")
    parser.add_argument("--suffix", default="", help="added to each output name, e.g. _enhanced")
    parser.add_argument("--ext", default="same", choices=["same", "png", "jpg", "webp", "tif"],
                        help="output format (same: the input's, or png where it cannot be written)")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG/WebP quality, 1-100")
    parser.add_argument("--exposure", type=float, default=0.0, metavar="STOPS",
                        help="brighten (+) or darken (-) the result by this many stops of light, "
                             f"{EXPOSURE_RANGE[0]:g} to {EXPOSURE_RANGE[1]:g}, like a camera's exposure compensation")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="mix of the result with the original photo, 0 to 1 (1: the result alone, as the "
                             "web app's slider)")
    parser.add_argument("--tile", default="auto",
                        help="tile side in px, 0 for whole image, or auto (256 on a CPU; from free memory on a GPU)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bf16 on CPUs with bf16 instructions and on GPUs, else fp32")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists (resume)")
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--allow-input-folder", action="store_true",
                        help="allow writing into a folder that holds input photos")


def _distributed_rank() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1). Sharding needs no process group."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _parse_tile(value: str):
    if value == "auto":
        return "auto"
    try:
        tile = int(value)
    except ValueError:
        raise UsageError(f"--tile {value!r}: expected a number of pixels, 0, or auto") from None
    if tile < 0:
        raise UsageError(f"--tile {value}: must be 0 (whole image) or positive")
    return tile


def _parse_exposure(stops: float) -> float:
    try:
        return check_stops(stops, "--exposure")
    except ValueError as err:
        raise UsageError(str(err)) from None


def _parse_strength(strength: float) -> float:
    try:
        return check_strength(strength, "--strength")
    except ValueError as err:
        raise UsageError(str(err)) from None


def _parse_jpeg_quality(quality: int) -> int:
    if not 1 <= quality <= 100:
        raise UsageError(f"--jpeg-quality {quality}: must be between 1 and 100")
    return quality


def _parse_suffix(suffix: str) -> str:
    if any(sep in suffix for sep in ("/", os.sep, os.altsep) if sep):
        raise UsageError(f"--suffix {suffix!r}: a suffix is part of a file name and cannot hold a path separator")
    return suffix


def _parse_max_pixels(limit: int) -> int:
    if limit < 1:
        raise UsageError(f"--max-pixels {limit}: must be at least 1")
    return limit


def _make_output_folder(folder: Path) -> list[Path]:
    """Create -o before any photo is enhanced, so that a bad -o fails once, not once per photo.

    A folder made here gets OUTPUT_MARK (see collect_inputs), and so does an existing empty one
    (made for this run, say, inside the input folder); one that holds anything does not.
    Returns the folders made, -o first, then the missing parents that mkdir made for it.
    """
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        if not folder.is_dir():
            raise UsageError(f"{folder}: -o takes an output folder, and this is an existing file") from None
        mark = not any(folder.iterdir())
    except OSError as err:
        raise UsageError(f"{folder}: cannot create the output folder ({err.strerror or err})") from None
    else:  # made here (under torchrun, by one process only: mkdir is atomic)
        mark = True
    if mark:
        try:
            (folder / OUTPUT_MARK).write_text("Made by `enhance run` for its outputs; a rerun does not read "
                                              "this folder as input.\n")
        except OSError as err:
            raise UsageError(f"{folder}: cannot write in the output folder ({err.strerror or err})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{folder}: cannot write in the output folder (permission denied)")
    return made


def _remove_if_unused(folder: Path, made: Optional[list[Path]]) -> None:
    """Leave -o as it was if no photo was written into it: its mark removed, and the folders
    _make_output_folder made removed too.

    A batch whose every photo failed (or that was stopped before the first) leaves nothing
    behind, rather than an empty folder that looks like a result.
    """
    if made is None:  # -o was not prepared: nothing of ours to undo
        return
    try:
        if [p.name for p in folder.iterdir()] == [OUTPUT_MARK]:
            (folder / OUTPUT_MARK).unlink()
        for made_folder in made:
            made_folder.rmdir()  # refuses a folder that holds anything
    except OSError:
        pass  # a folder in use or not empty stays


def main(args) -> int:
    # kill, timeout, Slurm and torchrun stop a process with SIGTERM (a closed terminal: SIGHUP):
    # end like Ctrl-C, from the start (a model still loading too), so that write_image removes its
    # temporary file and an -o folder with nothing in it is removed.
    stop_signals = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s]
    if threading.current_thread() is not threading.main_thread():
        stop_signals = []  # only the main thread may set handlers (and receives the signals)
    previous = {s: signal.signal(s, signal.default_int_handler) for s in stop_signals}
    try:
        return _main(args)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _main(args) -> int:
    rank, world = _distributed_rank()
    made_folders: Optional[list[Path]] = None  # set once -o is prepared: what to undo if nothing is written
    try:
        tile = _parse_tile(args.tile)
        exposure = _parse_exposure(args.exposure)
        strength = _parse_strength(args.strength)
        jpeg_quality = _parse_jpeg_quality(args.jpeg_quality)
        suffix = _parse_suffix(args.suffix)
        max_pixels = _parse_max_pixels(args.max_pixels)
        not_images: list[Path] = []
        unreadable: list[str] = []
        inputs = collect_inputs(args.inputs, args.recursive, not_images, output_folder=args.output,
                                unreadable=unreadable)
        out_dir = Path(os.path.abspath(args.output))
        jobs, plan_errors = plan_jobs(inputs, out_dir, suffix, args.ext, args.recursive)
        # An input that another input's output would be is that output, from an earlier run into
        # the input folder: not a photo to enhance again (no a_enhanced_enhanced.jpg).
        source_keys = {source: _file_key(source) for source, _ in inputs}
        others_outputs = {key for job in jobs if (key := _file_key(job.destination)) != source_keys[job.source]}
        earlier_outputs = [source for source, _ in inputs if source_keys[source] in others_outputs]
        if earlier_outputs:
            fresh = [(source, relative) for source, relative in inputs if source_keys[source] not in others_outputs]
            jobs, plan_errors = plan_jobs(fresh, out_dir, suffix, args.ext, args.recursive)
        input_dirs = {_file_key(src.parent) for src, _ in inputs}
        if not args.allow_input_folder and any(_file_key(job.destination.parent) in input_dirs for job in jobs):
            raise UsageError(f"{args.output}: outputs would land in a folder holding input photos; choose another "
                             "output folder or pass --allow-input-folder")
        jobs, own_errors = _refuse_outputs_onto_themselves(jobs, args.output)
        plan_errors += own_errors
        if args.overwrite:
            jobs, overwrite_errors = spare_input_photos(jobs, inputs)
            plan_errors += overwrite_errors
        if jobs:
            made_folders = _make_output_folder(args.output)
        device = resolve_device(args.device)
        if device.type == "cuda" and world > 1:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        if device.type == "cpu" and world > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # share the cores between processes
        resolve_precision(args.precision, device)  # e.g. fp16 on a CPU: one usage error, not one per photo
        model = load_model(args.weights or args.model, device=device)
    except (UsageError, WeightsError, ValueError) as err:
        print(f"enhance run: {err}", file=sys.stderr)
        _remove_if_unused(args.output, made_folders)
        return 2
    except KeyboardInterrupt:  # e.g. Ctrl-C while the model loads: -o was made, and nothing written
        _remove_if_unused(args.output, made_folders)
        raise  # the command says "interrupted" and exits with 130
    if rank == 0:
        raw = [f for f in not_images if f.suffix.lower() in RAW_EXTENSIONS]
        _say_left_out(raw, "in a camera RAW format, which needs a RAW converter (export as 16-bit TIFF or JPEG)")
        _say_left_out([f for f in not_images if f not in raw],
                      f"whose names are not those of photos ({', '.join(SUPPORTED_EXTENSIONS)})")
        _say_left_out(earlier_outputs, "that are this run's own outputs, written by an earlier run")
    if not jobs and not plan_errors and not unreadable:
        print("enhance run: no image files found in the inputs", file=sys.stderr)
        return 2
    together = world > 1 and _join_the_others()
    already_done = 0
    if together and args.skip_existing and not args.overwrite:
        # Shard what is left to do, not every photo: else a resume can leave one process all the
        # work. Every process looks before any writes (the barrier), so all see the same outputs.
        left = [job for job in jobs if job.destination.is_dir() or not _output_exists(job.destination)]
        already_done = len(jobs) - len(left) if rank == 0 else 0
        jobs = left
        _barrier()
    jobs = jobs[rank::world]
    plan_errors = (plan_errors + unreadable)[rank::world]
    if not jobs and not plan_errors and not already_done:
        status = 0  # under torchrun, more processes than photos: the others have them all
    else:
        try:
            status = _run_jobs(args, jobs, plan_errors, model, tile, exposure, strength, jpeg_quality, max_pixels,
                               label=f"[rank {rank}/{world}] " if world > 1 else "", already_done=already_done)
        finally:
            if world == 1:  # under torchrun another process may still write into the folder
                _remove_if_unused(args.output, made_folders)
    return _finish_with_the_others(status, rank, world) if together else status


def _output_exists(destination: Path) -> bool:
    """An output there already: a file, or a link to nothing (the user's too: a moved or annexed file)."""
    return destination.exists() or destination.is_symlink()


# Under torchrun: a gloo process group over all processes, on any device (it carries a few integers).
# Days, not the default 30 minutes: the shares of a big batch may end hours apart.
def _join_the_others() -> bool:
    """Join torchrun's other processes; False where there is no rendezvous (RANK set by hand)."""
    if "MASTER_ADDR" not in os.environ:
        return False
    import datetime

    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
    return True


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def _finish_with_the_others(status: int, rank: int, world: int) -> int:
    """The exit status of this process, once every process of a torchrun has done its share.

    torchrun stops all its processes as soon as one exits with a non-zero status. A share with a
    bad photo (status 1) ended quickly would stop the others' work, and so would every resume:
    the batch could never finish. So each process waits for the others, and rank 0 alone
    reports the failures of all (each process has named its own). An interrupt (130) ends at
    once, as it should.
    """
    import torch.distributed as dist

    if status not in (0, 1):
        return status
    try:
        failing = torch.tensor([status])
        dist.all_reduce(failing)  # the number of processes whose share had failures
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return 0
    if failing.item():
        print(f"enhance run: photos failed in {failing.item()} of {world} processes (their 'failed:' lines above)",
              file=sys.stderr)
    return 1 if failing.item() else 0


def _say_left_out(files: list[Path], why: str) -> None:
    if files:
        print(f"enhance run: left out {_count(len(files), 'file')} {why}: {_names(files)}", file=sys.stderr)


def _names(files: list[Path]) -> str:
    return ", ".join(str(f) for f in files[:3]) + (", ..." if len(files) > 3 else "")


def _clean_leftover_temps(folders: set[Path], label: str) -> None:
    """Remove the temporary files that a killed run (kill -9, which leaves no time to clean up) left
    in the folders this run writes into, and name those that may not be removed (remove_leftover_temps)."""
    removed, unsure = [], []
    for folder in sorted(folders):
        gone, kept = remove_leftover_temps(folder)
        removed += gone
        unsure += kept
    if removed:
        print(f"{label}enhance run: removed {_count(len(removed), 'temporary file')} that a killed run of this "
              f"machine left: {_names(removed)}", file=sys.stderr)
    if unsure:
        print(f"{label}enhance run: left alone {_count(len(unsure), 'file')} named like enhance's temporary files, "
              f"whose writer this machine cannot check (another machine's, one from before a restart, an older "
              f"version's, or not enhance's at all); once no run is writing there, remove any that are: "
              f"{_names(unsure)}", file=sys.stderr)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _run_jobs(args, jobs: list[Job], failed: list[str], model, tile, exposure: float, strength: float,
              jpeg_quality: int, max_pixels: int, label: str, already_done: int = 0) -> int:
    """Enhance and write every job; a photo that fails is named, and the batch goes on.
    already_done: outputs found before the jobs were shared out (--skip-existing under torchrun)."""
    failed = list(failed)
    done, skipped = 0, already_done
    megapixels = 0.0
    start = time.perf_counter()
    _clean_leftover_temps({job.destination.parent for job in jobs}, label)
    files_bar = tqdm(jobs, desc=f"{label}photos", unit="photo", disable=None)
    for job in files_bar:
        try:
            if job.destination.is_dir():
                failed.append(f"{job.source}: output {job.destination} is a folder")
                continue
            # A link to nothing is the user's too (a moved file, an annexed one not here): it is
            # treated as an existing output, where the rename would replace the link unsaid.
            dangling = job.destination.is_symlink() and not job.destination.exists()
            if _output_exists(job.destination) and not args.overwrite:
                if args.skip_existing:
                    skipped += 1
                    continue
                what = ("exists as a symbolic link to nothing (use --overwrite to replace the link, or --skip-existing)"
                        if dangling else "exists (use --overwrite or --skip-existing)")
                failed.append(f"{job.source}: output {job.destination} {what}")
                continue
            photo = read_image(job.source, max_pixels=max_pixels)
            too_wide = _unwritable_size(job.destination, photo)  # before the network pass, which may take minutes
            if too_wide:
                failed.append(f"{job.source}: {too_wide}")
                continue
            for note in photo.notes:
                tqdm.write(f"{job.source}: {note}", file=sys.stderr)
            if level := input_level_note(photo):  # remedies the user is not using yet
                remedies = [f"--exposure {level.stops:+g}"] * (exposure == 0)
                remedies += ["--strength 0.5"] * (level.stops < 0 and strength == 1)
                if not args.weights and args.model != ANY_EXPOSURE_MODEL:
                    remedies.append(f"--model {ANY_EXPOSURE_MODEL}")
                tqdm.write(f"{job.source}: {level.with_advice(remedies)}", file=sys.stderr)
            with tqdm(total=1, desc=f"{label}{job.source.name}", unit="tile", leave=False, disable=None) as tiles_bar:
                def on_tile(n_done: int, total: int) -> None:
                    tiles_bar.total = total
                    tiles_bar.n = n_done
                    tiles_bar.refresh()

                result = enhance_photo(model, photo, tile=tile, precision=args.precision, on_tile=on_tile,
                                       exposure=exposure, strength=strength)
            job.destination.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ImageIOWarning)
                write_image(job.destination, result, jpeg_quality=jpeg_quality, webp_quality=jpeg_quality,
                            overwrite=args.overwrite)
            for warning in caught:  # e.g. alpha dropped by JPEG: one line, like the reading notes
                tqdm.write(str(warning.message), file=sys.stderr)
        except (ImageReadError, ImageWriteError) as err:
            failed.append(str(err))
            continue
        except OSError as err:  # the file system refused: a name too long, a folder we may not enter
            where = f" ({err.filename})" if err.filename else ""
            failed.append(f"{job.source}: {err.strerror or err}{where}")
            continue
        except KeyboardInterrupt:
            files_bar.close()
            for line in failed:
                print(f"failed: {line}", file=sys.stderr)
            print(f"\n{label}interrupted after {_count(done, 'photo')} ({skipped} skipped, {len(failed)} failed "
                  "before); no partial file was written", file=sys.stderr)
            return 130
        except Exception as err:  # noqa: BLE001 - one bad photo must not stop the batch
            failed.append(f"{job.source}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            continue
        done += 1
        megapixels += photo.megapixels
    files_bar.close()
    seconds = time.perf_counter() - start
    rate = megapixels / seconds if seconds > 0 else 0.0
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    print(f"{label}done {done}, skipped {skipped}, failed {len(failed)} in {seconds:.1f} s "
          f"({megapixels:.1f} MP, {rate:.2f} MP/s)")
    return 1 if failed else 0


def _unwritable_size(destination: Path, photo) -> Optional[str]:
    """Why the photo cannot be written at destination, with the flags that can, or None: asked before
    the network pass, which may take minutes on such a photo, rather than by write_image after it."""
    too_large = side_limit_problem(destination, *photo.pixels.shape[:2])
    return too_large and f"{too_large}; use --ext png or --ext tif"

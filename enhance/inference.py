"""From a NumPy photo to an enhanced NumPy photo: dtype handling, device, precision, tile size.

    model = enhance.load_model()
    out = enhance.enhance_image(model, photo)   # H x W x 3 uint8 / uint16 / float in [0, 1]
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Union

import numpy as np
import torch

from .attention import autocast_available
from .imageio import convert_pixels
from .network import SAGAUNet
from .tiling import precision_context, run_tiled, to_unit_float

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
# Working memory of one op on a tile, per pixel, per channel of the first level, in bytes: an
# estimate, used where tiles are sized from free memory (GPUs).
BYTES_PER_PIXEL_PER_CHANNEL = 64
# On the CPU the tile is fixed: in `enhance run` of a 12-MP photo (saga-s, bf16, 2-core EPYC),
# alternated, twice each, 256-px tiles took 28.3 and 37.0 s (peak RSS under 1000 MB); 384 px
# 34.1 and 37.4 s (under 1200 MB); 512 px 34.9 and 38.4 s (under 1450 MB). Small tiles keep
# each op's working set in cache; below 256 the halo's share grows.
CPU_TILE = 256
MIN_TILE = 128
# Whole-photo feature maps (enhance/tiling.py) beyond this many bytes go to temporary files on
# the CPU, so that peak memory stops growing with the photo.
CPU_MAP_BUDGET = 1 << 30


def resolve_device(name: str = "auto") -> torch.device:
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: PyTorch sees no CUDA GPU on this machine")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple's Metal backend is not available here")
    return torch.device(name)


def _cpu_has_native_bf16() -> bool:
    """Whether oneDNN reports native bf16 instructions on this CPU.

    A PyTorch built without oneDNN (macOS arm64 builds may be) can lack the query itself, or
    fail when asked: that means no native bf16 here.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for fp32.

    auto: bf16 on CUDA GPUs that support it (else fp16); bf16 on CPUs with native bf16
    instructions (AVX-512-bf16 / AMX), where it measured 1.7x faster than fp32; fp32 otherwise.
    """
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type == "cpu":
        raise ValueError("--precision fp16 is for GPUs; on a CPU use bf16 or fp32")
    if name in ("bf16", "fp16") and not autocast_available(device.type):
        # Else torch.autocast would fail deep inside the run (MPS before PyTorch 2.5).
        newer = ", or PyTorch 2.5 or newer" if device.type == "mps" else ""
        raise ValueError(f"--precision {name}: PyTorch {torch.__version__} has no autocast on {device.type}; "
                         f"use fp32{newer}")
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and _cpu_has_native_bf16():
            return torch.bfloat16
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def precision_name(name: str, device: torch.device) -> str:
    """The precision that runs on `device`: "auto" resolved to fp32, bf16 or fp16. Figures are
    labelled with this, as "auto" means bf16 on one machine and fp32 on another."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[resolve_precision(name, device)]


# Where Linux says how much memory is available; a module constant so tests can point it elsewhere.
_MEMINFO = "/proc/meminfo"


def available_memory(device: torch.device) -> int:
    """Bytes the process can still use on `device`."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        with open(_MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # No /proc (macOS): half the physical memory, as free memory is not known and the system
    # and other programs hold some of it. Windows has no os.sysconf.
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pages = page_size = 0
    if pages > 0 and page_size > 0:
        return pages * page_size // 2
    return 4 << 30  # unknown platform: assume 4 GiB


def auto_tile_size(model: SAGAUNet, height: int, width: int, device: torch.device) -> int:
    """The tile side for `--tile auto`; 0 when the photo fits in one tile.

    CPU: CPU_TILE (measured fastest). GPU: the largest tile whose working memory fits a quarter
    of the free memory, since a GPU is fastest with few, large kernels.
    """
    if device.type == "cpu":
        side = CPU_TILE
    else:
        per_pixel = BYTES_PER_PIXEL_PER_CHANNEL * model.config.widths[0]
        budget = available_memory(device) // 4
        if height * width * per_pixel <= budget:
            return 0
        side = max(MIN_TILE, int((budget / per_pixel) ** 0.5) // 64 * 64)
    return 0 if side >= height and side >= width else side


def feature_map_budget(device: torch.device) -> int:
    """Bytes the tiled pass may keep whole-photo feature maps in before spilling them to disk."""
    budget = available_memory(device) // 4
    return min(budget, CPU_MAP_BUDGET) if device.type == "cpu" else budget


def _is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate memory" in str(err)))


def photo_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 / uint16 / float in [0, 1] -> (1, 3, H, W), integers left as they are.

    uint8 (and uint16, where PyTorch has it) stay integers, so that the tiled pass can convert
    them a window at a time (to_unit_float); other photos become float32 in [0, 1]. A float
    photo holding NaN or infinity is refused, with the count of such pixels: taking them as
    black would hand back wrong pixels without a word, and in a float (HDR, TIFF) pipeline they
    usually mean an upstream bug. Values outside [0, 1] are refused too. (`imageio.read_image`
    instead clips both to [0, 1], NaN to 0, with a note: a file on disk is what it is.)
    """
    if not isinstance(image, np.ndarray):  # a torch tensor, a PIL image, a list: say so, not fail deep inside
        raise TypeError(f"expected an H x W x 3 NumPy array, got {type(image).__module__}.{type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB array, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    if not image.dtype.isnative:  # e.g. a 16-bit PGM read with np.frombuffer(data, ">u2"): same values
        image = image.astype(image.dtype.newbyteorder("="))
    if image.dtype == np.uint8 or (image.dtype == np.uint16 and hasattr(torch, "uint16")):
        pixels = image
    elif image.dtype == np.uint16:
        pixels = convert_pixels(image, np.float32)
    elif np.issubdtype(image.dtype, np.floating):
        # Checked before the conversion to float32, which would turn a float64 1e300 into infinity.
        low, high = image.min(), image.max()  # NaN when any value is NaN; +-inf shows as either
        if not (np.isfinite(low) and np.isfinite(high)):  # only then the slow, per-pixel count
            bad = int(np.count_nonzero(~np.isfinite(image).all(axis=2)))
            raise ValueError(f"image: non-finite pixels (NaN or infinity): {bad} of {image.shape[0] * image.shape[1]}; "
                             "replace them first, e.g. np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)")
        if low < 0 or high > 1:
            raise ValueError(f"float images must hold values in [0, 1]; this one spans {low:g} to {high:g}")
        pixels = image.astype(np.float32)
    else:
        raise ValueError(f"unsupported image dtype {image.dtype}; use uint8, uint16 or float in [0, 1]")
    pixels = np.ascontiguousarray(pixels)
    if not pixels.flags.writeable:
        # PyTorch warns about every read-only array (np.asarray of a PIL image is one). Nothing
        # writes to the photo, but a copy is the only thread-safe way to keep the warning away.
        pixels = pixels.copy()
    # H x W x 3 memory is already the channels_last layout that the CPU's convolutions prefer: a
    # permuted view, not a copy (a 12-MP photo in float32 is 144 MB).
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 / uint16 / float in [0, 1] -> (1, 3, H, W) float32 in [0, 1]."""
    return to_unit_float(photo_tensor(image))


# Rows converted at a time by from_tensor: a whole-photo float32 copy of a 12-MP result is 144 MB.
_ROWS_PER_BAND = 64


def from_tensor(tensor: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> H x W x 3 array of `dtype` (rounded for integers)."""
    out = np.empty((*tensor.shape[-2:], 3), dtype)
    for top in range(0, out.shape[0], _ROWS_PER_BAND):
        band = tensor[0, :, top:top + _ROWS_PER_BAND].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        if dtype in (np.uint8, np.uint16):
            band *= np.iinfo(dtype).max
            np.round(band, out=band)
        out[top:top + _ROWS_PER_BAND] = band
    return out


def check_tile(tile) -> Union[int, str]:
    """`tile` as "auto" or a whole number of pixels (0: whole image), or a one-line ValueError.

    int() alone would truncate 256.5 to 256 and take True as 1 without a word; integral floats
    (256.0, as arithmetic or a config file may give) are taken, as are strings of digits.
    """
    if isinstance(tile, str) and tile == "auto":
        return tile
    side = -1
    if not isinstance(tile, (bool, np.bool_)):
        try:
            side = int(tile)
        except (TypeError, ValueError, OverflowError):  # None, "abc", inf: int()'s message would not name the option
            pass
        else:
            if not isinstance(tile, str) and side != tile:  # a fraction, which int() truncated
                side = -1
    if side < 0:
        raise ValueError(f"tile size must be 0 (whole image), a positive whole number of pixels, or 'auto'; "
                         f"got {tile!r}")
    return side


def check_weights_dtype(model: SAGAUNet) -> None:
    """A one-line ValueError unless the model's weights are float32.

    `precision` chooses the compute precision by autocast, from float32 weights. Weights cast to
    bf16 or fp16 (model.to(torch.bfloat16)) cannot run: the output head works in fp32 on purpose
    (SAGAUNet's OutputHead), and PyTorch would fail deep inside a convolution. Casting the
    caller's model back would change it under them; float32 weights with precision="bf16" run
    the same bf16 compute.
    """
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes - {torch.float32}:
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise ValueError(f"model: its weights are {names}, but enhance needs float32 weights; call model.float() "
                         "and pass precision='bf16' for bf16 compute")


def enhance_tensor(model: SAGAUNet, x: torch.Tensor, *, tile: Union[int, str] = "auto", precision: str = "auto",
                   on_tile: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] -> enhanced (1, 3, H, W) float32, on the model's device.

    x may also hold uint8 or uint16 pixels (photo_tensor): on the CPU the tiled pass converts
    them a window at a time, so no photo-sized float copy of the input is made.

    tile: "auto" (see auto_tile_size), 0 (whole image) or a tile side in whole pixels (256.0 is
    taken, 256.5 and True are refused). On an out-of-memory error the tile side is halved and
    the photo restarted, down to 128 px. A model whose attention cannot tile exactly
    (capabilities["exact_tiling"] false: the channel, sra and softmax research models) runs
    whole-image under "auto", and refuses any tile side, even one the photo fits in, so that a
    batch does not fail only on its larger photos.

    precision: the autocast precision (resolve_precision). The model's weights must be float32
    (check_weights_dtype): a model cast with model.to(torch.bfloat16) is refused with the fix,
    model.float() and precision="bf16".
    """
    tile = check_tile(tile)
    check_weights_dtype(model)
    # A module without SAGAUNet's capabilities (a test's stand-in) is taken at its word: tiling is tried.
    can_tile = getattr(model, "capabilities", {}).get("exact_tiling", True)
    if tile != "auto" and tile > 0 and not can_tile:
        raise ValueError(f"tile={tile}: this model's {model.config.attention!r} attention cannot be tiled "
                         "(its global state is not a sum over pixels); use tile=0 or 'auto' for the whole image")
    device = next(model.parameters()).device
    dtype = resolve_precision(precision, device)
    if device.type == "cpu":
        x = x.to(device).contiguous(memory_format=torch.channels_last)  # the layout mkldnn's convolutions prefer
    else:  # converted before the copy: not every GPU backend converts uint16
        x = to_unit_float(x).to(device)
    height, width = x.shape[-2:]
    if tile == "auto":
        # "auto" chooses for the caller, and for a model that cannot tile the whole image is the only choice.
        side = auto_tile_size(model, height, width, device) if can_tile else 0
    else:
        side = tile
    while True:
        try:
            if side == 0 or (side >= height and side >= width):
                with torch.no_grad(), precision_context(device.type, dtype):
                    out = model(to_unit_float(x)).float()
                if on_tile:
                    on_tile(1, 1)
            else:
                out = run_tiled(model, x, side, on_tile=on_tile, dtype=dtype, map_budget=feature_map_budget(device))
            break
        except Exception as err:  # noqa: BLE001 - only out-of-memory errors are retried
            # A model that cannot tile has no smaller pass to retry with: its out-of-memory error stands.
            if not _is_out_of_memory(err) or (0 < side <= MIN_TILE) or not can_tile:
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            side = max(MIN_TILE, (side or 2048) // 2)  # a whole-image failure starts at 1024
    if not torch.isfinite(out).all():  # broken weights: NaN would be written as black, silently
        raise ValueError("the network's output is not finite (NaN or inf); the weights are broken")
    return out


def enhance_image(model: SAGAUNet, image: np.ndarray, **options) -> np.ndarray:
    """Enhance an H x W x 3 photo (uint8, uint16 or float in [0, 1]); same shape and dtype out.

    Options are those of `enhance_tensor` (tile, precision, on_tile).
    """
    return from_tensor(enhance_tensor(model, photo_tensor(image), **options), image.dtype.newbyteorder("="))

"""From a NumPy photo to an enhanced NumPy photo: dtype handling, device, precision, tile size.

    model = enhance.load_model()
    out = enhance.enhance_image(model, photo)   # H x W x 3 uint8 / uint16 / float in [0, 1]
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch

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


def resolve_precision(name: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype, or None for fp32.

    auto: bf16 on CUDA GPUs that support it (else fp16); bf16 on CPUs with native bf16
    instructions (AVX-512-bf16 / AMX), where it measured 1.7x faster than fp32; fp32 otherwise.
    """
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type == "cpu":
        raise ValueError("--precision fp16 is for GPUs; on a CPU use bf16 or fp32")
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
        return None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def precision_name(name: str, device: torch.device) -> str:
    """The precision that runs on `device`: "auto" resolved to fp32, bf16 or fp16. Figures are
    labelled with this, as "auto" means bf16 on one machine and fp32 on another."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[resolve_precision(name, device)]


def available_memory(device: torch.device) -> int:
    """Bytes the process can still use on `device`."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
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
    them a window at a time (to_unit_float); other photos become float32 in [0, 1]. NaN in a
    float photo is taken as 0 (black), as a raw converter's masked pixels are; infinity and
    values outside [0, 1] are refused (`imageio.read_image` clips them with a note instead).
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
        pixels = image.astype(np.float32)
        low, high = (pixels.min(), pixels.max()) if pixels.size else (0.0, 0.0)
        if np.isnan(low) or np.isnan(high):  # min/max are NaN when any value is: the slow path
            np.nan_to_num(pixels, copy=False)
            low, high = pixels.min(), pixels.max()
        if low < 0 or high > 1:
            raise ValueError("float images must hold values in [0, 1]")
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


def enhance_tensor(model: SAGAUNet, x: torch.Tensor, *, tile: Union[int, str] = "auto", precision: str = "auto",
                   on_tile: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] -> enhanced (1, 3, H, W) float32, on the model's device.

    x may also hold uint8 or uint16 pixels (photo_tensor): on the CPU the tiled pass converts
    them a window at a time, so no photo-sized float copy of the input is made.

    tile: "auto" (see auto_tile_size), 0 (whole image) or a tile side in pixels. On an
    out-of-memory error the tile side is halved and the photo restarted, down to 128 px.
    """
    device = next(model.parameters()).device
    dtype = resolve_precision(precision, device)
    if device.type == "cpu":
        x = x.to(device).contiguous(memory_format=torch.channels_last)  # the layout mkldnn's convolutions prefer
    else:  # converted before the copy: not every GPU backend converts uint16
        x = to_unit_float(x).to(device)
    height, width = x.shape[-2:]
    if tile == "auto":
        side = auto_tile_size(model, height, width, device)
    else:
        try:
            side = int(tile)
        except (TypeError, ValueError):  # None, "abc": int()'s own message would not say which option
            side = -1
    if side < 0:
        raise ValueError(f"tile size must be 0 (whole image), positive, or 'auto'; got {tile!r}")
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
            if not _is_out_of_memory(err) or (0 < side <= MIN_TILE):
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

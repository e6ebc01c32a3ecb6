"""Tiled inference that equals the whole-image pass, with memory bounded by the tile, not the photo.

Tiled restoration tools usually run the whole network on each tile with some overlap, so every
tile sees only itself: tiles can differ in tone, and a global model loses its global view.
Here the photo goes through the network op by op instead (SAGAUNet.forward's `run_op`):

- Every op (a transformer block, a resampling conv, the fuse, the output head) reads windows of
  its inputs, which are whole-photo feature maps, and writes its output's tile cores into a new
  whole-photo map. An op reaches at most OP_RADIUS px at its own resolution, so windows = cores
  plus a halo of OP_RADIUS px at the coarsest level make every core exact.
- Every SAGA layer's global state (S, z) is a sum over pixels. A block with a SAGA layer first
  runs one pass that adds up the tile cores' shares of that state and stops at the layer, then
  the pass that applies the whole photo's state in every tile.

The result equals the whole-image pass up to float rounding (tests/test_tiling.py), at 1.4x the
whole-image FLOPs with 256-px tiles (README): the halo adds (1 + 32 / tile)^2 - 1, 27%, and the
state passes compute each block's projection a second time. Memory: the working set of one op on one tile,
plus the whole-photo feature maps alive at once (three at full resolution at the last decoder
level, in the autocast dtype: 96 MB per megapixel for saga-s in bf16). Above a budget those maps
live in temporary files (DiskMap) instead, and memory stops growing with the photo's size.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

from .attention import GlobalState, SAGAttention, memory_layout
from .network import OP_RADIUS, SAGAUNet


def precision_context(device_type: str, dtype: Optional[torch.dtype]):
    """Autocast to dtype (bf16/fp16), or nothing for fp32."""
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


# The integer pixel types a photo may come as, with the value of white. torch.uint16 exists
# from PyTorch 2.3 on.
_UINT16 = getattr(torch, "uint16", None)
_INTEGER_WHITES = {torch.uint8: 255.0, **({_UINT16: 65535.0} if _UINT16 is not None else {})}


def to_unit_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 pixels as float32 in [0, 1] (white -> 1.0); float pixels as they are.

    Divides like `imageio.convert_pixels`, so both give the same float32 values.
    """
    if pixels.is_floating_point():
        return pixels
    return pixels.float() / _INTEGER_WHITES[pixels.dtype]


def _pad_replicate(image: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """`image` with its last row and column repeated pad_h and pad_w times, in any pixel type."""
    if not (pad_h or pad_w):
        return image
    # PyTorch has no replicate padding for uint16; int16 holds the same bits, and padding copies them.
    same_bits = image.view(torch.int16) if image.dtype == _UINT16 else image
    return F.pad(same_bits, (0, pad_w, 0, pad_h), mode="replicate").view(image.dtype)


@dataclass(frozen=True)
class Tile:
    """A core region [top, bottom) x [left, right) and the window around it that an op sees.

    In full-resolution px; an op at 1/s resolution uses these divided by s.
    """

    top: int
    bottom: int
    left: int
    right: int
    win_top: int
    win_bottom: int
    win_left: int
    win_right: int


def tile_grid(height: int, width: int, tile: int, halo: int, multiple_of: int) -> list[Tile]:
    """Cores of side `tile` covering the (already padded) image, windows = cores + halo, clamped.

    Core sides and halos are rounded to `multiple_of`, so that every window still lands on whole
    pixels at the coarsest level.
    """
    assert height % multiple_of == 0 and width % multiple_of == 0
    tile = max(multiple_of, tile - tile % multiple_of)
    halo = -(-halo // multiple_of) * multiple_of  # round up
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            tiles.append(Tile(top, bottom, left, right, max(0, top - halo), min(height, bottom + halo),
                              max(0, left - halo), min(width, right + halo)))
    return tiles


class _PassComplete(Exception):
    """Raised by the state hook to end a state pass once its layer's share is collected."""


class _SharedStates:
    """The hook installed on every SAGA layer: hands each layer the whole photo's state."""

    def __init__(self, layers: list[SAGAttention]):
        self.index = {id(layer): i for i, layer in enumerate(layers)}
        self.states: list[Optional[GlobalState]] = [None] * len(layers)
        self.collect: Optional[int] = None  # layer whose state the current pass sums up
        self.tile: Optional[Tile] = None  # the tile being run

    def __call__(self, layer: SAGAttention, k_gated: torch.Tensor, v_gated: torch.Tensor) -> GlobalState:
        i = self.index[id(layer)]
        if i == self.collect:
            # Only the core's pixels count: the halo belongs to neighbouring tiles' cores.
            t = self.tile
            scale = (t.win_bottom - t.win_top) // k_gated.shape[-2]
            rows = slice((t.top - t.win_top) // scale, (t.bottom - t.win_top) // scale)
            cols = slice((t.left - t.win_left) // scale, (t.right - t.win_left) // scale)
            part = layer.reduce(k_gated[..., rows, cols], v_gated[..., rows, cols])
            self.states[i] = part if self.states[i] is None else self.states[i] + part
            raise _PassComplete
        if self.states[i] is None:
            raise RuntimeError(f"SAGA layer {i} was reached before its global state was known")
        return self.states[i]


class _ThreadStateHook:
    """The state_hook on every SAGA layer while any thread runs a tiled pass through it.

    A layer has one state_hook, but a model may be shared by threads (a thread pool in a
    notebook, a web server): each thread's tiled pass hands its own _SharedStates to this hook,
    and a thread with no tiled pass running (a whole-image pass) gets the layer's own state, as
    with no hook. The hook stays on a layer until the last tiled pass through it ends.
    """

    def __init__(self):
        self._local = threading.local()  # .shared: this thread's _SharedStates, if it runs a tiled pass
        self._lock = threading.Lock()
        self._passes: dict[int, int] = {}  # id(layer) -> tiled passes through it now

    def __call__(self, layer: SAGAttention, k_gated: torch.Tensor, v_gated: torch.Tensor) -> GlobalState:
        shared = getattr(self._local, "shared", None)
        if shared is None or id(layer) not in shared.index:
            return layer.reduce(k_gated, v_gated)
        return shared(layer, k_gated, v_gated)

    @contextlib.contextmanager
    def installed(self, layers: list[SAGAttention], shared: _SharedStates):
        """Hooks `layers` and hands them `shared` in this thread, until the block ends (or raises)."""
        with self._lock:
            for layer in layers:
                self._passes[id(layer)] = self._passes.get(id(layer), 0) + 1
                layer.state_hook = self
        self._local.shared = shared
        try:
            yield
        finally:
            self._local.shared = None
            with self._lock:
                for layer in layers:
                    self._passes[id(layer)] -= 1
                    if not self._passes[id(layer)]:
                        del self._passes[id(layer)]
                        layer.state_hook = None


_STATE_HOOK = _ThreadStateHook()


def _raw_bytes(t: torch.Tensor) -> memoryview:
    """A byte view of a contiguous tensor, to read or write a file into (bf16 has no NumPy dtype)."""
    return memoryview(t.view(torch.uint8).numpy()).cast("B")


# Bytes per read or write system call. On this project's machine page-cache writes ran at
# 4.2 GB/s in 256-KB calls, 1.2 GB/s in 9-KB calls (one pixel row of a tile) and 0.4-1.7 GB/s
# in single 33-MB calls.
IO_CHUNK = 256 * 1024


def _transfer(file, name: str, data: memoryview, offset: int) -> None:
    """Read (name "preadv") or write ("pwritev") all of `data` at `offset` of `file`, in IO_CHUNK pieces.

    With os.preadv / os.pwritev where they exist. Windows has neither: there the file object
    seeks, then reads or writes. That is safe because each DiskMap is used by one thread, so
    nothing moves the file's position between the seek and the call.
    """
    positioned = getattr(os, name, None)
    while data:
        piece = data[:IO_CHUNK]
        if positioned is not None:
            done = positioned(file.fileno(), [piece], offset)
        else:
            file.seek(offset)
            done = file.readinto(piece) if name == "preadv" else file.write(piece)
        if not done:  # 0: the file ended, or nothing was written
            raise OSError(f"temporary feature-map file: {name} stopped short")
        data, offset = data[done:], offset + done


class DiskMap:
    """A whole-photo feature map kept in a temporary file instead of memory.

    Rows of channels-last pixels. The file lives in the page cache while there is room: the
    kernel, not this process, decides when it goes to disk.

    Tiles run band by band (a row of tiles, top to bottom), so the file is read and written a
    band at a time: a write collects its band's cores in memory and the band goes to the file in
    one call when the next band starts (or on flush); a read fetches the full-width rows of its
    window once and serves every other window of that band from them (until release). One
    system call per pixel row instead took a third of a 12-MP run.
    """

    def __init__(self, shape: tuple[int, int, int, int], dtype: torch.dtype):
        batch, channels, height, width = shape
        assert batch == 1
        self.shape, self.dtype = torch.Size(shape), dtype
        self._row = width * channels * dtype.itemsize
        # In $TMPDIR; deleted when closed. Unbuffered: every read and write goes to the file at
        # once, with os.preadv / os.pwritev or without them (_transfer).
        self._file = tempfile.TemporaryFile(prefix="saga-map-", buffering=0)
        self._file.truncate(height * self._row)
        self._writing: Optional[tuple[int, torch.Tensor, int]] = None  # (top, rows, columns filled)
        self._read: Optional[tuple[int, torch.Tensor]] = None  # (top, rows) last fetched

    def _band(self, rows: int) -> torch.Tensor:
        return torch.empty(rows, self.shape[3], self.shape[1], dtype=self.dtype)

    def read(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        self.flush()
        if self._read is None or not (self._read[0] <= top and bottom <= self._read[0] + len(self._read[1])):
            rows = self._band(bottom - top)
            _transfer(self._file, "preadv", _raw_bytes(rows), top * self._row)
            self._read = (top, rows)
        first, rows = self._read
        return rows[top - first:bottom - first, left:right].permute(2, 0, 1).unsqueeze(0)  # (1, C, h, w)

    def write(self, top: int, left: int, values: torch.Tensor) -> None:
        core = values[0].permute(1, 2, 0)  # (h, w, C)
        if self._writing is None or self._writing[0] != top or len(self._writing[1]) != len(core):
            self.flush()
            self._writing = (top, self._band(len(core)), 0)
        band_top, rows, filled = self._writing
        rows[:, left:left + core.shape[1]] = core  # converts dtype and device as it copies
        self._writing = (band_top, rows, filled + core.shape[1])
        self._read = None

    def flush(self) -> None:
        """Write the band being collected to the file; it must have been filled edge to edge."""
        if self._writing is None:
            return
        top, rows, filled = self._writing
        if filled != self.shape[3]:
            raise RuntimeError(f"feature-map band at row {top} has {filled} of {self.shape[3]} columns")
        _transfer(self._file, "pwritev", _raw_bytes(rows), top * self._row)
        self._writing = None

    def release(self) -> None:
        """Free the band last read, once the op reading this map is done."""
        self._read = None


FeatureMap = Union[torch.Tensor, DiskMap]


class _OpByOp:
    """The run_op for SAGAUNet.forward: applies one op to whole-photo maps, tile by tile.

    With spill=True every map but the network's output is a DiskMap.
    """

    def __init__(self, model: SAGAUNet, tiles: list[Tile], height: int, width: int, shared: _SharedStates,
                 on_tile: Optional[Callable[[int, int], None]], spill: bool):
        self.tiles, self.height, self.width, self.shared = tiles, height, width, shared
        self.output_op, self.spill = model.to_rgb, spill
        self.total = (count_ops(model) + len(model.saga_layers())) * len(tiles)
        self.done, self.on_tile = 0, on_tile

    def _tick(self) -> None:
        self.done += 1
        if self.on_tile:
            self.on_tile(self.done, self.total)

    def _run_on_window(self, op, t: Tile, inputs: tuple[FeatureMap, ...], device: torch.device) -> torch.Tensor:
        self.shared.tile = t
        windows = []
        for x in inputs:
            s = self.height // x.shape[-2]  # this input's downscale factor
            box = (t.win_top // s, t.win_bottom // s, t.win_left // s, t.win_right // s)
            if isinstance(x, DiskMap):
                windows.append(x.read(*box).to(device))
            else:  # the photo itself may still be integers: converted here, a window at a time
                windows.append(to_unit_float(x[..., box[0]:box[1], box[2]:box[3]]))
        return op(*windows)

    def __call__(self, op, *inputs: FeatureMap) -> FeatureMap:
        device = next(op.parameters()).device
        for layer in (m for m in op.modules() if isinstance(m, SAGAttention)):
            self.shared.collect = self.shared.index[id(layer)]
            for t in self.tiles:
                try:
                    self._run_on_window(op, t, inputs, device)
                except _PassComplete:
                    pass
                self._tick()
            self.shared.collect = None
        out = None
        for t in self.tiles:
            window = self._run_on_window(op, t, inputs, device)
            s = (t.win_bottom - t.win_top) // window.shape[-2]  # the output's downscale factor
            if out is None:
                # In the window's layout: a map in another layout than its tiles makes every
                # core's copy a transpose (8x slower in bf16 channels_last on this CPU).
                shape = (window.shape[0], window.shape[1], self.height // s, self.width // s)
                out = (DiskMap(shape, window.dtype) if self.spill and op is not self.output_op
                       else torch.empty(shape, dtype=window.dtype, device=window.device,
                                        memory_format=memory_layout(window)))
            core = window[..., (t.top - t.win_top) // s:(t.bottom - t.win_top) // s,
                          (t.left - t.win_left) // s:(t.right - t.win_left) // s]
            if isinstance(out, DiskMap):
                out.write(t.top // s, t.left // s, core)
            else:
                out[..., t.top // s:t.bottom // s, t.left // s:t.right // s] = core
            self._tick()
        for x in (out, *inputs):
            if isinstance(x, DiskMap):
                x.flush()
                x.release()
        _return_freed_memory()
        return out


try:  # glibc's malloc_trim; absent on macOS, Windows and musl
    _MALLOC_TRIM = ctypes.CDLL(None).malloc_trim
except Exception:  # noqa: BLE001 - any failure means: not available
    _MALLOC_TRIM = None


def _return_freed_memory() -> None:
    """Give the memory freed by the op just run back to the system.

    glibc keeps freed blocks for reuse, and the tiles' many differently sized tensors leave its
    heap fragmented: on a 4-MP photo it held about 200 MB more between ops than the pass needed,
    and trimming after each op (21 calls for saga-s) lowered a 12-MP run's peak by about 75 MB.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def count_ops(model: SAGAUNet) -> int:
    """How many times SAGAUNet.forward calls run_op: embed, blocks, down/up/fuse per level, head."""
    cfg = model.config
    blocks = sum(cfg.encoder_blocks) + cfg.middle_blocks + sum(cfg.decoder_blocks)
    return 2 + 3 * (len(cfg.widths) - 1) + blocks


def feature_map_bytes(model: SAGAUNet, height: int, width: int, dtype: Optional[torch.dtype]) -> int:
    """Peak bytes of the whole-photo feature maps alive at once: three at full resolution."""
    item = (dtype or torch.float32).itemsize
    return 3 * model.config.widths[0] * item * height * width


def run_tiled(model: SAGAUNet, image: torch.Tensor, tile: int, *, on_tile: Optional[Callable[[int, int], None]] = None,
              dtype: Optional[torch.dtype] = None, map_budget: Optional[int] = None) -> torch.Tensor:
    """Enhance a (1, 3, H, W) image in tiles of side `tile`; returns (1, 3, H, W) float32.

    image: float in [0, 1], or uint8 / uint16 pixels, which are converted a window at a time
    (a 12-MP photo is 36 MB in uint8, 144 MB in float32).

    on_tile(done, total) is called after every op on every tile (for progress bars).
    dtype: autocast dtype (bf16/fp16) or None for fp32.
    map_budget: bytes the whole-photo feature maps may take in memory; above it they go to
    temporary files (DiskMap), which keeps the process's memory flat as photos grow.
    None: always in memory.
    """
    if not model.capabilities["exact_tiling"]:
        raise ValueError(f"attention {model.config.attention!r} has no shareable global state; "
                         "seamless tiling needs saga or linear")
    m = model.multiple_of
    h, w = image.shape[-2:]
    padded = _pad_replicate(image, (-h) % m, (-w) % m)
    height, width = padded.shape[-2:]
    tiles = tile_grid(height, width, tile, OP_RADIUS * m, m)
    layers = model.saga_layers()
    shared = _SharedStates(layers)
    spill = map_budget is not None and feature_map_bytes(model, height, width, dtype) > map_budget
    run_op = _OpByOp(model, tiles, height, width, shared, on_tile, spill)
    with _STATE_HOOK.installed(layers, shared), torch.no_grad(), precision_context(image.device.type, dtype):
        return model(padded, run_op=run_op).float()[..., :h, :w]

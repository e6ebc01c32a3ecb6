"""Tiled inference whose peak memory is bounded by the tile, not the photo, and with no seams.

Every SAGA layer's global state (S, z) is a sum over pixels. So instead of letting each tile
attend only to itself (what tiled restoration tools usually do, and why their tiles can differ
in tone), the tiles share the whole photo's state:

  exact mode  For attention layer l = 1..L, run every tile up to layer l (using the already
              known global states of layers < l), add up the tile cores' contributions to
              layer l's state, and stop that pass there. A last pass produces the output. The
              result equals the whole-image pass up to the halo's truncation of the local
              convolutions' receptive field. Cost: the sum of the prefixes (measured: see README).
  fast mode   Take every layer's state from one pass over a downscaled copy of the photo (at
              most `proxy_side` px on the long side); then one tiled pass. Cost: about 1.1
              passes; it trades exactness for speed: the README gives the measured difference.

Tiles are cut on the grid the network needs (multiples of `multiple_of`, so the downsampling
grids of tile and photo coincide); each tile's window adds a halo on each side (inside the
photo) and outputs are blended with linear ramps across tile boundaries.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .attention import GlobalState, SAGAttention
from .network import SAGAUNet

TILE_MODES = ("exact", "fast")


def precision_context(device_type: str, dtype: Optional[torch.dtype]):
    """Autocast to dtype (bf16/fp16), or nothing for fp32."""
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@dataclass(frozen=True)
class Tile:
    """A core region [top, bottom) x [left, right) and the window around it that the network sees."""

    top: int
    bottom: int
    left: int
    right: int
    win_top: int
    win_bottom: int
    win_left: int
    win_right: int


def tile_grid(height: int, width: int, tile: int, halo: int, multiple_of: int) -> list[Tile]:
    """Cores of side `tile` covering the (already padded) image, windows = cores + halo, clamped."""
    assert height % multiple_of == 0 and width % multiple_of == 0
    tile = max(multiple_of, tile - tile % multiple_of)
    halo = -(-halo // multiple_of) * multiple_of  # round up: keep windows on the network's grid
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            tiles.append(Tile(top, bottom, left, right, max(0, top - halo), min(height, bottom + halo),
                              max(0, left - halo), min(width, right + halo)))
    return tiles


class _PassComplete(Exception):
    """Raised by the state hook to end a prefix pass once its layer's state is collected."""


class _SharedStates:
    """The hook installed on every SAGA layer during tiled inference."""

    def __init__(self, layers: list[SAGAttention]):
        self.index = {id(layer): i for i, layer in enumerate(layers)}
        self.states: list[Optional[GlobalState]] = [None] * len(layers)
        self.collect: Optional[int] = None  # layer whose state this pass accumulates
        self.recording = False  # True during the fast mode's proxy pass: layers keep their own state
        self.tile: Optional[Tile] = None
        self.window_height = 0

    def __call__(self, layer: SAGAttention, k_gated: torch.Tensor, v_gated: torch.Tensor) -> GlobalState:
        i = self.index[id(layer)]
        if i == self.collect:
            # Only the core's pixels count: the halo belongs to neighbouring tiles' cores.
            t, scale = self.tile, self.window_height // k_gated.shape[-2]
            rows = slice((t.top - t.win_top) // scale, (t.bottom - t.win_top) // scale)
            cols = slice((t.left - t.win_left) // scale, (t.right - t.win_left) // scale)
            part = layer.reduce(k_gated[..., rows, cols], v_gated[..., rows, cols])
            self.states[i] = part if self.states[i] is None else self.states[i] + part
            raise _PassComplete
        if self.states[i] is None:
            if not self.recording:
                raise RuntimeError(f"SAGA layer {i} was reached before its global state was known")
            self.states[i] = layer.reduce(k_gated, v_gated)  # the fast mode's proxy pass
        return self.states[i]


def _install(model: SAGAUNet, hook: Optional[_SharedStates]) -> None:
    for layer in model.saga_layers():
        layer.state_hook = hook


def _ramp(length: int, start_ramp: Optional[int], end_ramp: Optional[int], blend: int, device) -> torch.Tensor:
    """1-D blending weights over a window: 0 -> 1 across start_ramp, 1 -> 0 across end_ramp.

    Neighbouring windows ramp across the same boundary in opposite directions, so the weights
    of all tiles sum to one at every pixel.
    """
    pos = torch.arange(length, device=device, dtype=torch.float32) + 0.5
    w = torch.ones(length, device=device)
    if start_ramp is not None:
        w = w * ((pos - (start_ramp - blend)) / (2 * blend)).clamp(0, 1)
    if end_ramp is not None:
        w = w * (((end_ramp + blend) - pos) / (2 * blend)).clamp(0, 1)
    return w


BLEND = 8  # px on each side of a tile boundary over which neighbouring tiles' outputs are cross-faded


def run_tiled(model: SAGAUNet, image: torch.Tensor, tile: int, *, halo: Optional[int] = None, mode: str = "exact",
              proxy_side: int = 1024, on_tile: Optional[Callable[[int, int], None]] = None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Enhance a (1, 3, H, W) image in tiles; returns (1, 3, H, W) float32 on the image's device.

    halo: context added around each tile; by default the network's receptive radius plus the
    blend width, so that every output pixel that is used sees all the context it would see in
    the whole-image pass.
    on_tile(done, total) is called after every tile of every pass (for progress bars).
    dtype: autocast dtype (bf16/fp16) or None for fp32.
    """
    if mode not in TILE_MODES:
        raise ValueError(f"unknown tile mode {mode!r}; choose one of {', '.join(TILE_MODES)}")
    if not model.capabilities["exact_tiling"]:
        raise ValueError(f"attention {model.config.attention!r} has no shareable global state; "
                         "seamless tiling needs saga or linear")
    m = model.multiple_of
    h, w = image.shape[-2:]
    pad_h, pad_w = (-h) % m, (-w) % m
    padded = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image
    height, width = padded.shape[-2:]
    blend = BLEND
    if halo is None:
        halo = model.receptive_radius + blend
    tiles = tile_grid(height, width, tile, halo, m)
    layers = model.saga_layers()
    shared = _SharedStates(layers)
    device_type = image.device.type

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), precision_context(device_type, dtype):
            return model(x)

    passes = (len(layers) if mode == "exact" else 0) + 1
    total, done = passes * len(tiles), 0
    _install(model, shared)
    try:
        if mode == "fast":
            scale = min(1.0, proxy_side / max(height, width))
            size = (max(m, round(height * scale / m) * m), max(m, round(width * scale / m) * m))
            proxy = F.interpolate(padded, size=size, mode="area") if scale < 1 else padded
            shared.recording = True
            run(proxy)
            shared.recording = False
        else:
            for layer_index in range(len(layers)):
                shared.collect = layer_index
                for t in tiles:
                    shared.tile, shared.window_height = t, t.win_bottom - t.win_top
                    try:
                        run(padded[..., t.win_top:t.win_bottom, t.win_left:t.win_right])
                    except _PassComplete:
                        pass
                    done += 1
                    if on_tile:
                        on_tile(done, total)
            shared.collect = None

        out = torch.zeros(1, 3, height, width, device=image.device)
        weight_sum = torch.zeros(1, 1, height, width, device=image.device)
        for t in tiles:
            window = run(padded[..., t.win_top:t.win_bottom, t.win_left:t.win_right]).float()
            wy = _ramp(t.win_bottom - t.win_top, t.top - t.win_top if t.top > 0 else None,
                       t.bottom - t.win_top if t.bottom < height else None, blend, image.device)
            wx = _ramp(t.win_right - t.win_left, t.left - t.win_left if t.left > 0 else None,
                       t.right - t.win_left if t.right < width else None, blend, image.device)
            weight = wy[:, None] * wx[None, :]
            out[..., t.win_top:t.win_bottom, t.win_left:t.win_right] += window * weight
            weight_sum[..., t.win_top:t.win_bottom, t.win_left:t.win_right] += weight
            done += 1
            if on_tile:
                on_tile(done, total)
    finally:
        _install(model, None)
    return (out / weight_sum)[..., :h, :w]

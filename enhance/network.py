"""SAGA-UNet: the U-shaped restoration network, self-contained in this file.

Encoder levels at full, 1/2, 1/4 ... resolution with transformer blocks (attention + gated
feed-forward), a middle stage at the coarsest level, and a decoder that mirrors the encoder with
skip connections. The network predicts a residual added to the input image.

Capabilities (what a caller may rely on) are declared once, in `SAGAUNet.capabilities`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import ATTENTION_TYPES, SAGAttention, autocast_off, dense_chunks, make_attention


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of one SAGA-UNet. widths[i] is the channel count at level i (1/2^i scale)."""

    widths: tuple[int, ...] = (16, 32, 64)
    encoder_blocks: tuple[int, ...] = (1, 1)  # one entry per level except the coarsest
    middle_blocks: int = 2  # at the coarsest level
    decoder_blocks: tuple[int, ...] = (1, 1)  # same levels as the encoder, listed fine to coarse
    head_dim: int = 16
    ffn_expansion: float = 2.0
    attention: str = "saga"

    def __post_init__(self):
        # A config may come from a stranger's weights file (enhance.weights.load_model): check the
        # types and signs here, so that a bad value is a ValueError naming it, not a failure deep
        # inside nn.Conv2d (or a string "2" times 16 channels asking for petabytes).
        for name in ("widths", "encoder_blocks", "decoder_blocks"):
            values = getattr(self, name)
            if not isinstance(values, (tuple, list)) or not all(_is_int(v) for v in values):
                raise ValueError(f"{name} must be a list of whole numbers, not {values!r}")
        if not all(w > 0 for w in self.widths) or not all(n >= 0 for n in (*self.encoder_blocks, *self.decoder_blocks)):
            raise ValueError(f"widths must be positive and block counts not negative, not {self.widths}, "
                             f"{self.encoder_blocks}, {self.decoder_blocks}")
        if not _is_int(self.middle_blocks) or self.middle_blocks < 0:
            raise ValueError(f"middle_blocks must be a whole number >= 0, not {self.middle_blocks!r}")
        if not _is_int(self.head_dim) or self.head_dim <= 0:
            raise ValueError(f"head_dim must be a positive whole number, not {self.head_dim!r}")
        number = _is_int(self.ffn_expansion) or isinstance(self.ffn_expansion, float)
        if not number or not 0 < self.ffn_expansion < math.inf:  # also refuses NaN
            raise ValueError(f"ffn_expansion must be a positive number, not {self.ffn_expansion!r}")
        levels = len(self.widths)
        if len(self.encoder_blocks) != levels - 1 or len(self.decoder_blocks) != levels - 1:
            raise ValueError("encoder_blocks and decoder_blocks need one entry per level but the coarsest")
        if any(w % self.head_dim for w in self.widths):
            raise ValueError(f"every width in {self.widths} must be a multiple of head_dim {self.head_dim}")
        if self.attention not in ATTENTION_TYPES:
            raise ValueError(f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTION_TYPES)}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        if not isinstance(d, dict):  # e.g. a weights file whose metadata config is a JSON list or null
            raise ValueError(f"a network config is a JSON object of settings, not {type(d).__name__}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a channel count


class LayerNorm2d(nn.Module):
    """LayerNorm over channels at each pixel (per-pixel, so it never couples tiles)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GatedFeedForward(nn.Module):
    """Restormer's gated feed-forward: a GELU branch gates a linear branch, with a 3x3 depthwise conv."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.expand = nn.Conv2d(dim, hidden * 2, 1)
        self.dw = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2)
        self.shrink = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = dense_chunks(self.dw(self.expand(x)), 2)
        return self.shrink(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, attention: str, level: int):
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(dim), LayerNorm2d(dim)
        self.attn = make_attention(attention, dim, heads, level)
        self.ffn = GatedFeedForward(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _stage(cfg: UNetConfig, level: int, count: int) -> nn.Sequential:
    width = cfg.widths[level]
    return nn.Sequential(*(TransformerBlock(width, width // cfg.head_dim, cfg.ffn_expansion, cfg.attention, level)
                           for _ in range(count)))


class Downsample(nn.Sequential):
    """Halve the resolution, double the channels (conv to c/2, then 2x2 pixel-unshuffle)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__(nn.Conv2d(dim_in, dim_out // 4, 3, padding=1), nn.PixelUnshuffle(2))


class Upsample(nn.Sequential):
    """Double the resolution (conv to 4c', then 2x2 pixel-shuffle)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__(nn.Conv2d(dim_in, dim_out * 4, 3, padding=1), nn.PixelShuffle(2))


class Fuse(nn.Conv2d):
    """Merge the upsampled features with the encoder's skip features (1x1 conv over both)."""

    def forward(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([up, skip], dim=1))


class OutputHead(nn.Conv2d):
    """Features -> RGB residual, added to the input image.

    The conv and the sum run in fp32: in bf16 the output's step near 1.0 is 1/128, coarser than
    the 8-bit step the photo is saved with.
    """

    def forward(self, feat: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        with autocast_off(feat.device.type):
            return image.float() + super().forward(feat.float())


# How far any single op of the network (a block, a resampling conv, the head) reaches, in px of
# its own input's resolution: two 3x3 convs in a block. Tiled inference runs op by op with a
# halo of this many px at the coarsest level (enhance/tiling.py).
OP_RADIUS = 2


def _call(op, *inputs):
    return op(*inputs)


class SAGAUNet(nn.Module):
    """Low-light enhancement network: (B, 3, H, W) in [0, 1] -> (B, 3, H, W).

    In eval mode the output is clamped to [0, 1]; in training it is left unclamped so that the
    loss still has a gradient where the prediction overshoots.
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = cfg = config
        levels = len(cfg.widths)
        self.multiple_of = 2 ** (levels - 1)
        self.embed = nn.Conv2d(3, cfg.widths[0], 3, padding=1)
        self.encoders = nn.ModuleList(_stage(cfg, i, n) for i, n in enumerate(cfg.encoder_blocks))
        self.downs = nn.ModuleList(Downsample(cfg.widths[i], cfg.widths[i + 1]) for i in range(levels - 1))
        self.middle = _stage(cfg, levels - 1, cfg.middle_blocks)
        self.ups = nn.ModuleList(Upsample(cfg.widths[i + 1], cfg.widths[i]) for i in range(levels - 1))
        self.fuses = nn.ModuleList(Fuse(cfg.widths[i] * 2, cfg.widths[i], 1) for i in range(levels - 1))
        self.decoders = nn.ModuleList(_stage(cfg, i, n) for i, n in enumerate(cfg.decoder_blocks))
        self.to_rgb = OutputHead(cfg.widths[0], 3, 3, padding=1)

    @property
    def capabilities(self) -> dict:
        """What callers may rely on: spandrel-style, declared in one place."""
        return {
            "multiple_of": self.multiple_of,  # inputs are padded to this internally
            "exact_tiling": self.config.attention in ("saga", "linear"),  # global state is a sum over pixels
            "precisions": ("fp32", "bf16", "fp16"),  # attention state is kept in fp32 under autocast
            "scale": 1,
        }

    def saga_layers(self) -> list[SAGAttention]:
        """The global-state attention layers, in the order a forward pass reaches them.

        Not self.modules() order: the decoders are registered fine to coarse but run coarse to fine.
        """
        stages = [*self.encoders, self.middle, *reversed(self.decoders)]
        return [m for stage in stages for m in stage.modules() if isinstance(m, SAGAttention)]

    def forward(self, x: torch.Tensor, run_op=_call) -> torch.Tensor:
        """run_op(op, *inputs) applies each op (a block, a resampling, the fuse, the head).

        By default it calls the op on the whole feature map. The tiled runner passes one that
        streams every op over tiles of whole-photo buffers, which is how a photo far larger than
        memory allows gets exactly this forward pass (enhance/tiling.py).
        """
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.multiple_of, (-w) % self.multiple_of
        # Replicate (not reflect) padding: reflect fails on inputs smaller than the pad.
        inp = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        feat = run_op(self.embed, inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            for block in encoder:
                feat = run_op(block, feat)
            skips.append(feat)
            feat = run_op(down, feat)
        for block in self.middle:
            feat = run_op(block, feat)
        for i in reversed(range(len(self.decoders))):
            feat = run_op(self.ups[i], feat)  # rebinding feat at once frees the coarser map early
            feat = run_op(self.fuses[i], feat, skips.pop())
            for block in self.decoders[i]:
                feat = run_op(block, feat)
        out = run_op(self.to_rgb, feat, inp)[..., :h, :w]
        if self.training:
            return out
        # In place when no gradient is wanted: a clamped copy of a 12-MP output is another 144 MB.
        return out.clamp(0.0, 1.0) if torch.is_grad_enabled() else out.clamp_(0.0, 1.0)

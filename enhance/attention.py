"""Attention layers for the restoration network: SAGA and the baselines it is compared with.

SAGA (Selective Adaptive Gating, arXiv 2509.12817) is linear attention whose per-pixel
contribution to the global key-value state is weighted by input-adaptive gates. Per head, with
N pixels of width d:

    q_n = phi(W_q x_n),  k_n = phi(W_k x_n),  v_n = W_v x_n
    a_n = sigmoid(W_a x_n),  b_n = sigmoid(W_b x_n)
    S   = sum_n (a_n b_n^T) ⊙ (k_n v_n^T) = (A ⊙ K)^T (B ⊙ V)      (Hadamard-product decomposition)
    z   = sum_n a_n ⊙ k_n
    o_n = q_n^T S / (q_n^T z + eps)

The decomposition means the gate matrices G_n = a_n b_n^T never exist: gating costs two
element-wise products, and the memory stays O(N d), never O(N d^2) or O(N^2).

S and z are sums over pixels, so they are computed by a separate `reduce` step whose results from
several tiles of a photo can be added (`GlobalState.__add__`) and then applied to every tile:
that is what makes tiled inference of a huge photo equal to the whole-image pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_TYPES = ("saga", "linear", "channel", "sra", "softmax")


def autocast_available(device_type: str) -> bool:
    """Whether this PyTorch has autocast for `device_type`.

    Asked by constructing one, a test that works in every PyTorch version (older ones lack
    torch.amp.is_autocast_available). PyTorch 2.2-2.4 have no MPS autocast and raise
    RuntimeError for it even with enabled=False.
    """
    try:
        torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:
        return False
    return True


def autocast_off(device_type: str):
    """A context that runs its block without autocast on `device_type`, for the steps kept in fp32.

    Where this PyTorch has no autocast for the device (MPS before PyTorch 2.5), nothing there
    can be autocast either, so there is nothing to turn off: a null context.
    """
    try:
        return torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi = ReLU, chosen by measurement over elu(x) + 1.

    Both are non-negative, so q^T z >= 0 and the output is a convex combination of values. On
    this project's CPU (2 cores, bf16) elu's exp made the whole network 1.6x slower (0.99 vs
    1.62 s/MP, 512-px tiles, eager); ReLU is what EfficientViT's linear attention uses too.
    A pixel whose q is all zero gets o = 0 from the global branch; the local branch still acts.
    """
    return F.relu(x)


def memory_layout(t: torch.Tensor) -> torch.memory_format:
    """channels_last if t is stored that way, else the contiguous (NCHW) format."""
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def dense_chunks(x: torch.Tensor, chunks: int) -> list[torch.Tensor]:
    """x split into `chunks` along channels, each copied to dense memory in x's layout.

    In channels_last a channel slice is a strided view, and element-wise ops on strided views
    take PyTorch's slow, unvectorised path: on this project's CPU a bf16 sigmoid took 3.3 ms on
    the view against 0.3 ms on a dense copy, and GELU 7.7 against 0.4. The copy costs less than
    it saves; in the contiguous layout the chunks are dense already and nothing is copied.
    """
    layout = memory_layout(x)
    return [part.contiguous(memory_format=layout) for part in x.chunk(chunks, dim=1)]


@dataclass
class GlobalState:
    """The summed key-value state of one attention layer, in fp32.

    S: (B, heads, d, d)   sum over pixels of (a ⊙ k)(b ⊙ v)^T
    z: (B, heads, d)      sum over pixels of a ⊙ k
    count: number of pixels summed (the apply step divides by it, which leaves o_n unchanged
           but keeps S and z in a range that fp16/bf16 can represent).
    """

    S: torch.Tensor
    z: torch.Tensor
    count: int

    def __add__(self, other: "GlobalState") -> "GlobalState":
        return GlobalState(self.S + other.S, self.z + other.z, self.count + other.count)


# A hook that lets a caller (the tiled runner) decide which state a layer applies:
# hook(layer, k_gated, v_gated) -> GlobalState. See enhance/tiling.py.
StateHook = Callable[["SAGAttention", torch.Tensor, torch.Tensor], GlobalState]


class SAGAttention(nn.Module):
    """SAGA attention over all pixels of a (B, C, H, W) feature map.

    gated=False removes the gates (a = b = 1): plain linear attention, the ablation baseline.
    """

    def __init__(self, dim: int, heads: int, gated: bool = True, eps: float = 1e-6):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.gated, self.eps = heads, gated, eps
        # q, k, v (and the gates a, b) from one 1x1 convolution: one matmul instead of five.
        self.to_qkv = nn.Conv2d(dim, dim * (5 if gated else 3), 1)
        # Local branch: linear attention is smooth over the whole image and weak at fine detail.
        self.local = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.state_hook: Optional[StateHook] = None

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        return t.reshape(b, self.heads, c // self.heads, h * w)  # (B, heads, d, N)

    def project(self, x: torch.Tensor):
        """Per-pixel q, gated k (a ⊙ k), gated v (b ⊙ v), and v for the local branch."""
        parts = dense_chunks(self.to_qkv(x), 5 if self.gated else 3)
        q, k, v = feature_map(parts[0]), feature_map(parts[1]), parts[2]
        if self.gated:
            k_gated, v_gated = k * torch.sigmoid(parts[3]), v * torch.sigmoid(parts[4])
        else:
            k_gated, v_gated = k, v
        return q, k_gated, v_gated, v

    def reduce(self, k_gated: torch.Tensor, v_gated: torch.Tensor) -> GlobalState:
        """Sum the gated key-value products over pixels, in fp32 even under autocast.

        fp16 overflows on sums over megapixels and bf16 keeps 3 significant digits, so the state
        is accumulated in fp32: its matmul is d x N x d per head, a small share of the FLOPs.
        """
        with autocast_off(k_gated.device.type):
            k = self._split_heads(k_gated).float()
            v = self._split_heads(v_gated).float()
            S = k @ v.transpose(-1, -2)
            z = k.sum(dim=-1)
        return GlobalState(S, z, k.shape[-1])

    def apply(self, q: torch.Tensor, state: GlobalState) -> torch.Tensor:
        """o_n = q_n^T S / (q_n^T z + eps), with S and z taken per pixel (divided by count)."""
        b, c, h, w = q.shape
        qh = self._split_heads(q)
        S = (state.S / state.count).to(qh.dtype)
        z = (state.z / state.count).to(qh.dtype)
        numerator = S.transpose(-1, -2) @ qh  # (B, heads, d, N)
        denominator = torch.einsum("bhd,bhdn->bhn", z, qh).unsqueeze(2)
        return (numerator / (denominator + self.eps)).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k_gated, v_gated, v = self.project(x)
        if self.state_hook is None:
            state = self.reduce(k_gated, v_gated)
        else:
            state = self.state_hook(self, k_gated, v_gated)
        return self.proj(self.apply(q, state) + self.local(v))


class ChannelAttention(nn.Module):
    """Restormer/Retinexformer-style transposed attention: softmax over a d x d channel map."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.qkv_dw = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w)
                   for t in self.qkv_dw(self.to_qkv(x)).chunk(3, dim=1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-1, -2)) * self.temperature).softmax(dim=-1)
        return self.proj((attn @ v).reshape(b, c, h, w))


class SoftmaxAttention(nn.Module):
    """Softmax attention over pixels; with reduction > 1, PVT's spatial-reduction attention (SRA).

    reduction=1 is global softmax attention, O(N^2) in memory and time. reduction=R computes
    keys and values from an R x R strided convolution, so each query attends to N / R^2 tokens.
    """

    def __init__(self, dim: int, heads: int, reduction: int = 1):
        super().__init__()
        self.heads, self.reduction = heads, reduction
        self.to_q = nn.Conv2d(dim, dim, 1)
        self.to_kv = nn.Conv2d(dim, dim * 2, 1)
        self.reduce = (nn.Sequential(nn.Conv2d(dim, dim, reduction, stride=reduction), nn.GroupNorm(1, dim))
                       if reduction > 1 else nn.Identity())
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        d = c // self.heads
        q = self.to_q(x).reshape(b, self.heads, d, h * w).transpose(-1, -2)
        kv_in = x
        if self.reduction > 1:
            # Pad so that the strided convolution covers every pixel of odd-sized maps.
            pad_h, pad_w = (-h) % self.reduction, (-w) % self.reduction
            kv_in = self.reduce(F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"))
        k, v = (t.flatten(2).reshape(b, self.heads, d, -1).transpose(-1, -2)
                for t in self.to_kv(kv_in).chunk(2, dim=1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


def make_attention(kind: str, dim: int, heads: int, level: int) -> nn.Module:
    """The attention layer of one transformer block. level 0 is full resolution.

    sra's reduction follows PVT-T's per-stage ratios (8, 4, 2, 1) from the finest level down.
    """
    if kind == "saga":
        return SAGAttention(dim, heads, gated=True)
    if kind == "linear":
        return SAGAttention(dim, heads, gated=False)
    if kind == "channel":
        return ChannelAttention(dim, heads)
    if kind == "sra":
        return SoftmaxAttention(dim, heads, reduction=max(1, 8 >> level))
    if kind == "softmax":
        return SoftmaxAttention(dim, heads, reduction=1)
    raise ValueError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTION_TYPES)}")


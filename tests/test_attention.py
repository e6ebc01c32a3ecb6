"""SAGA attention: agreement with an explicit-gate reference, tiled state sums, memory, gradients."""

import pytest
import torch

from enhance.attention import ATTENTION_TYPES, GlobalState, SAGAttention, dense_chunks, make_attention


def reference_saga(layer: SAGAttention, x: torch.Tensor) -> torch.Tensor:
    """SAGA the slow way: every per-pixel gate matrix G_n = a_n b_n^T exists as an N x d x d tensor."""
    b, c, h, w = x.shape
    heads, d = layer.heads, c // layer.heads
    q_raw, k_raw, v, a_raw, b_raw = layer.to_qkv(x).chunk(5, dim=1)

    def tokens(t):  # (B, C, H, W) -> (B, heads, N, d)
        return t.reshape(b, heads, d, h * w).transpose(-1, -2)

    q, k = tokens(torch.relu(q_raw)), tokens(torch.relu(k_raw))
    a, g_b, vt = tokens(torch.sigmoid(a_raw)), tokens(torch.sigmoid(b_raw)), tokens(v)
    gates = a.unsqueeze(-1) * g_b.unsqueeze(-2)  # G_n: (B, heads, N, d, d)
    kv = k.unsqueeze(-1) * vt.unsqueeze(-2)  # k_n v_n^T
    n = h * w
    S = (gates * kv).sum(dim=2) / n  # sum_n G_n ⊙ (k_n v_n^T), per pixel
    z = (a * k).sum(dim=2) / n
    out = (q @ S) / ((q * z.unsqueeze(2)).sum(-1, keepdim=True) + layer.eps)  # (B, heads, N, d)
    out = out.transpose(-1, -2).reshape(b, c, h, w)
    return layer.proj(out + layer.local(v))


def test_matches_explicit_gate_reference_forward_and_backward():
    torch.manual_seed(0)
    layer = SAGAttention(dim=16, heads=2).double()
    x = torch.randn(2, 16, 9, 7, dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    # reduce() runs in fp32 by design; compare in fp32 round-off terms.
    layer32 = layer.float()
    out = layer32(x1.float())
    ref = reference_saga(layer32, x2.float())
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    g_mod = torch.autograd.grad(out, [x1, *layer32.parameters()], grad)
    g_ref = torch.autograd.grad(ref, [x2, *layer32.parameters()], grad)
    for a, b in zip(g_mod, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_sum_of_tile_states_equals_whole_image_state():
    torch.manual_seed(1)
    layer = SAGAttention(dim=32, heads=2)
    x = torch.randn(1, 32, 24, 40)
    _, k, v, _ = layer.project(x)
    whole = layer.reduce(k, v)
    tiles = [layer.reduce(k[..., r, c], v[..., r, c])
             for r in (slice(0, 10), slice(10, 24)) for c in (slice(0, 16), slice(16, 40))]
    summed = tiles[0] + tiles[1] + tiles[2] + tiles[3]
    assert summed.count == whole.count == 24 * 40
    torch.testing.assert_close(summed.S, whole.S, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(summed.z, whole.z, rtol=1e-5, atol=1e-4)
    # And applying the summed state reproduces the whole-image output.
    q = layer.project(x)[0]
    torch.testing.assert_close(layer.apply(q, summed), layer.apply(q, whole), rtol=1e-5, atol=1e-5)


def test_state_is_fp32_under_bf16_autocast():
    layer = SAGAttention(dim=16, heads=1)
    x = torch.randn(1, 16, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v, _ = layer.project(x)
        state = layer.reduce(k, v)
        out = layer(x)
    assert k.dtype == torch.bfloat16  # the projections do run in bf16 ...
    assert state.S.dtype == torch.float32 and state.z.dtype == torch.float32  # ... the state does not
    assert torch.isfinite(out).all()


def test_one_megapixel_forward_never_allocates_a_per_pixel_d_by_d_tensor():
    """The largest single allocation stays within 5x the input (the fused q,k,v,a,b projection).

    An N x d x d tensor here would be d = 16 times the input, and N x N would be 10^6 times.
    """
    torch.manual_seed(0)
    layer = SAGAttention(dim=16, heads=1)  # head width d = 16
    x = torch.randn(1, 16, 1024, 1024)
    input_bytes = x.numel() * x.element_size()
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                                 profile_memory=True) as prof:
        layer(x)
    largest = max(event.cpu_memory_usage for event in prof.events())
    assert largest <= 5 * input_bytes, f"largest allocation {largest / input_bytes:.1f}x the input"


def test_gradients_reach_the_gates():
    torch.manual_seed(0)
    layer = SAGAttention(dim=16, heads=2)
    layer(torch.randn(1, 16, 8, 8)).square().mean().backward()
    gate_rows = layer.to_qkv.weight.grad[3 * 16:]  # the a and b projections
    assert gate_rows.abs().sum() > 0
    assert gate_rows[:16].abs().sum() > 0 and gate_rows[16:].abs().sum() > 0


def test_linear_is_saga_without_gates():
    torch.manual_seed(0)
    gated, plain = SAGAttention(16, 2, gated=True), SAGAttention(16, 2, gated=False)
    assert plain.to_qkv.out_channels == 3 * 16
    with torch.no_grad():
        # Copy q,k,v weights and push the gates to sigmoid(+inf) = 1: then saga == linear.
        gated.to_qkv.weight[: 48].copy_(plain.to_qkv.weight)
        gated.to_qkv.bias[:48].copy_(plain.to_qkv.bias)
        gated.to_qkv.weight[48:].zero_()
        gated.to_qkv.bias[48:].fill_(50.0)
        gated.local.load_state_dict(plain.local.state_dict())
        gated.proj.load_state_dict(plain.proj.state_dict())
    x = torch.randn(1, 16, 6, 10)
    torch.testing.assert_close(gated(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ATTENTION_TYPES)
def test_every_attention_type_runs_forward_and_backward(kind):
    torch.manual_seed(0)
    layer = make_attention(kind, dim=32, heads=2, level=1)
    x = torch.randn(2, 32, 13, 18, requires_grad=True)
    out = layer(x)
    assert out.shape == x.shape
    out.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_global_state_addition_keeps_count():
    a = GlobalState(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2), 3)
    b = GlobalState(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2), 5)
    assert (a + b).count == 8 and float((a + b).S.sum()) == 8.0


def test_dense_chunks_are_the_chunks_stored_densely_in_the_input_layout():
    x = torch.randn(2, 10, 6, 7)
    for layout in (torch.contiguous_format, torch.channels_last):
        parts = dense_chunks(x.contiguous(memory_format=layout), 5)
        assert all(torch.equal(p, c) for p, c in zip(parts, x.chunk(5, dim=1)))
        assert all(p.is_contiguous(memory_format=layout) for p in parts)

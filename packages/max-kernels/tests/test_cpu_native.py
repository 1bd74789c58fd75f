"""The native CPU decode step (decode.c) against a float64 PyTorch decoder over the same blocks."""

import platform
import shutil

import pytest
import torch
from max_kernels import rope_cos_sin_cache
from max_kernels.cpu import DecoderLayerWeights, DecoderShape, NativeDecodeStep, PackedMatrix, library
from max_kernels.cpu.native import build
from max_kernels.gguf import GGMLType, dequantize
from max_kernels.gguf.encode import quantize_q8_0
from max_kernels.gguf.synthetic import random_blocks

H, HQ, HK, I, V, PAGE, LAYERS = 64, 4, 2, 96, 160, 4, 2
# this CPU's best code; on x86 also the AVX2-only and the baseline (scalar) variants
MARCHES = ["native", "x86-64-v3", "x86-64"] if platform.machine() == "x86_64" else ["native"]


def test_the_library_builds_where_there_is_a_compiler():
    if shutil.which("cc") or shutil.which("gcc"):
        assert library() is not None


def _matrix(qtype, rows, cols, seed, bias=False):
    data = random_blocks(qtype, (rows, cols), seed=seed)
    b = torch.randn(rows, generator=torch.Generator().manual_seed(seed)) * 0.1 if bias else None
    return PackedMatrix([(qtype, data)], cols, b), dequantize(data.reshape(-1), qtype, (rows, cols)).double(), b


def _rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _rope(x, cos, sin):  # x [Hx, D] at one position; rotate-half over the full head
    d = x.shape[-1]
    x1, x2 = x[:, : d // 2], x[:, d // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


@pytest.mark.parametrize("march", MARCHES)
@pytest.mark.parametrize(
    ("qtypes", "D", "qk_norm", "window", "gemma", "kv_dtype"),  # heads with and without whole 32-blocks
    [
        ((GGMLType.Q4_1,) * 4, 32, False, None, False, torch.float32),
        ((GGMLType.Q4_0, GGMLType.Q8_0, GGMLType.Q4_1, GGMLType.Q4_0), 16, True, 5, False, torch.bfloat16),
        ((GGMLType.Q8_0,) * 4, 32, True, 4, True, torch.float32),  # Gemma 3: sub-block output norms, GELU
    ],
)
def test_decode_step_matches_float64(qtypes, D, qk_norm, window, gemma, kv_dtype, march):
    lib = build(march)
    if lib is None:
        pytest.skip("no C compiler")
    g = torch.Generator().manual_seed(0)
    lens = [7, 13, 3, 9, 20]  # the new token included; 5 requests: a tile of 4 and one alone
    needed = [-(-n // PAGE) for n in lens]
    num_blocks = sum(needed) + 3
    order = torch.randperm(num_blocks, generator=g).tolist()
    block_tables = torch.zeros(len(lens), max(needed), dtype=torch.int32)
    for b, n in enumerate(needed):
        block_tables[b, :n] = torch.tensor(order[:n], dtype=torch.int32)
        order = order[n:]
    slots = torch.tensor([int(block_tables[b, (n - 1) // PAGE]) * PAGE + (n - 1) % PAGE for b, n in enumerate(lens)])
    cos_sin = rope_cos_sin_cache(D, 64, 10000.0, None, "cpu")
    layers, ref = [], []
    for i in range(LAYERS):
        mats = [
            _matrix(qtypes[0], (HQ + 2 * HK) * D, H, 10 * i + 1, bias=True),
            _matrix(qtypes[1], H, HQ * D, 10 * i + 2),
            _matrix(qtypes[2], 2 * I, H, 10 * i + 3),
            _matrix(qtypes[3], H, I, 10 * i + 4),
        ]
        k_cache = torch.randn(num_blocks, PAGE, HK, D, generator=g).to(kv_dtype)
        v_cache = torch.randn(num_blocks, PAGE, HK, D, generator=g).to(kv_dtype)
        norms = 1 + 0.1 * torch.randn(2, H, generator=g)
        qk = 1 + 0.1 * torch.randn(2, D, generator=g) if qk_norm else None
        outs = 1 + 0.1 * torch.randn(2, H, generator=g) if gemma else None
        layers.append(
            DecoderLayerWeights(
                norms[0], norms[1], *(m[0] for m in mats), k_cache, v_cache, cos_sin,
                q_norm=None if qk is None else qk[0], k_norm=None if qk is None else qk[1],
                norm_attn_out=None if outs is None else outs[0], norm_mlp_out=None if outs is None else outs[1],
                sliding_window=window, gelu=gemma,
            )
        )
        ref.append(
            (norms.double(), qk, outs, [(m[1], m[2]) for m in mats], k_cache.clone().double(), v_cache.clone().double())
        )
    final_norm = 1 + 0.1 * torch.randn(H, generator=g)
    table = torch.randn(V, H, generator=g) * 0.05
    head = PackedMatrix([(GGMLType.Q8_0, quantize_q8_0(table))], H)
    shape = DecoderShape(H, HQ, HK, D, I, V, PAGE, D, 1e-5, D**-0.5)
    step = NativeDecodeStep(lib, shape, layers, final_norm, head, max_batch=8, max_len=64)
    emb = torch.randn(len(lens), H, generator=g)

    hidden = step.layers(emb, torch.tensor(lens, dtype=torch.int32), slots, block_tables)
    logits = step.logits(hidden)

    x, res, out_norm = emb.double(), None, None
    for (norms, qk, outs, mats, kc, vc), layer in zip(ref, layers):
        res = x if res is None else res + (x if out_norm is None else _rms(x, out_norm, 1e-5))
        out_norm = None if outs is None else outs[1].double()
        h = _rms(res, norms[0], 1e-5)
        (wqkv, bqkv), (wo, _), (wgu, _), (wd, _) = mats
        qkv = h @ wqkv.T + bqkv.double()
        attn = torch.zeros(len(lens), HQ * D, dtype=torch.float64)
        for b, n in enumerate(lens):
            cos, sin = cos_sin[n - 1].double().chunk(2)
            heads = qkv[b, : (HQ + HK) * D].view(HQ + HK, D)
            if qk is not None:
                heads = torch.cat([_rms(heads[:HQ], qk[0].double(), 1e-5), _rms(heads[HQ:], qk[1].double(), 1e-5)])
            heads = _rope(heads, cos, sin)
            q, k, v = heads[:HQ], heads[HQ:], qkv[b, (HQ + HK) * D :].view(HK, D)
            k, v = k.to(kv_dtype).double(), v.to(kv_dtype).double()  # as the cache holds them
            flat_k, flat_v = kc.view(-1, HK, D), vc.view(-1, HK, D)
            flat_k[slots[b]], flat_v[slots[b]] = k, v
            # the layer's cache now holds the rotated key and the value at the token's slot
            tol = 2e-3 if kv_dtype == torch.float32 else 1.6e-2  # bfloat16: one rounding step either way
            torch.testing.assert_close(layer.k_cache.view(-1, HK, D)[slots[b]].double(), k, rtol=tol, atol=tol)
            torch.testing.assert_close(layer.v_cache.view(-1, HK, D)[slots[b]].double(), v, rtol=tol, atol=tol)
            pos = torch.arange(0 if window is None else max(n - window, 0), n)
            rows = block_tables[b, pos // PAGE].long() * PAGE + pos % PAGE
            for hq in range(HQ):
                keys, values = flat_k[rows, hq // (HQ // HK)], flat_v[rows, hq // (HQ // HK)]
                p = torch.softmax(keys @ q[hq] * D**-0.5, dim=0)
                attn[b, hq * D : (hq + 1) * D] = p @ values
        o = attn @ wo.T
        res = res + (o if outs is None else _rms(o, outs[0].double(), 1e-5))
        gu = _rms(res, norms[1], 1e-5) @ wgu.T
        act = torch.nn.functional.gelu(gu[:, :I], approximate="tanh") if gemma else torch.nn.functional.silu(gu[:, :I])
        x = (act * gu[:, I:]) @ wd.T
    want_hidden = _rms(res + (x if out_norm is None else _rms(x, out_norm, 1e-5)), final_norm.double(), 1e-5)
    want_logits = want_hidden @ dequantize(quantize_q8_0(table).reshape(-1), GGMLType.Q8_0, (V, H)).double().T
    scale = want_hidden.abs().max()
    assert (hidden.double() - want_hidden).abs().max() / scale < 2e-3
    assert (logits.double() - want_logits).abs().max() / want_logits.abs().max() < 2e-3


@pytest.mark.parametrize("march", MARCHES)
@pytest.mark.parametrize(
    "parts",  # (type, rows) stacked by rows, as fused projections of Q4_K_M files mix them
    [
        [(GGMLType.Q4_K, 32), (GGMLType.Q6_K, 16), (GGMLType.Q4_1, 16)],
        [(GGMLType.Q8_0, 48)],
        [(GGMLType.Q6_K, 16), (GGMLType.Q4_0, 32)],
        [(GGMLType.Q5_K, 32), (GGMLType.Q6_K, 16)],  # as Q5_K_M files mix them
        [(GGMLType.Q3_K, 16), (GGMLType.Q5_K, 16), (GGMLType.Q4_K, 16)],  # as Q3_K_M files mix them
        [(GGMLType.Q5_0, 16), (GGMLType.Q5_1, 32)],
        [(GGMLType.IQ4_XS, 32), (GGMLType.IQ4_NL, 16), (GGMLType.Q6_K, 16)],  # as IQ4_XS files mix them
        [(GGMLType.Q2_K, 32), (GGMLType.Q3_K, 16), (GGMLType.Q4_1, 16)],  # per-16 and per-32 mins side by side
    ],
)
def test_every_block_type_multiplies_as_its_dequantized_weight(parts, march):
    lib = build(march)
    if lib is None:
        pytest.skip("no C compiler")
    cols = 256
    blocks = [(q, random_blocks(q, (rows, cols), seed=i)) for i, (q, rows) in enumerate(parts)]
    weight = torch.cat([dequantize(b.reshape(-1), q, (b.shape[0], cols)) for q, b in blocks]).double()
    rows = weight.shape[0]
    shape = DecoderShape(cols, 1, 1, 32, 32, rows, PAGE, 32, 1e-5, 1.0)
    step = NativeDecodeStep(lib, shape, [], torch.ones(cols), PackedMatrix(blocks, cols), 8, 8)
    x = torch.randn(5, cols, generator=torch.Generator().manual_seed(1))  # a tile of 4 requests and one alone
    want = x.double() @ weight.T
    torch.testing.assert_close(step.logits(x).double(), want, rtol=0, atol=1e-4 * want.abs().max().item())


def test_unsupported_block_types_are_refused():
    with pytest.raises(ValueError, match="native decode step takes"):
        PackedMatrix([(GGMLType.F16, torch.zeros(16, 512, dtype=torch.uint8))], 256)
    with pytest.raises(ValueError, match="native decode step takes"):
        PackedMatrix([(GGMLType.BF16, torch.zeros(16, 512, dtype=torch.uint8))], 256)


def test_sizes_the_library_would_trust_are_checked():
    lib = library()
    if lib is None:
        pytest.skip("no C compiler")
    D = 16
    mats = [_matrix(GGMLType.Q8_0, rows, cols, i)[0] for i, (rows, cols) in enumerate(
        [((HQ + 2 * HK) * D, H), (H, HQ * D), (2 * I, H), (H, I)]
    )]
    cache = torch.zeros(4, PAGE, HK, D)
    cos_sin = rope_cos_sin_cache(D, 64, 10000.0, None, "cpu")
    shape = DecoderShape(H, HQ, HK, D, I, V, PAGE, D, 1e-5, D**-0.5)
    head = PackedMatrix([(GGMLType.Q8_0, quantize_q8_0(torch.randn(V, H)))], H)
    good = DecoderLayerWeights(torch.ones(H), torch.ones(H), *mats, cache, cache.clone(), cos_sin)
    NativeDecodeStep(lib, shape, [good], torch.ones(H), head, max_batch=2, max_len=64)
    swapped = DecoderLayerWeights(torch.ones(H), torch.ones(H), mats[0], mats[2], mats[1], mats[3], cache, cache, cos_sin)
    with pytest.raises(ValueError, match="expected"):
        NativeDecodeStep(lib, shape, [swapped], torch.ones(H), head, max_batch=2, max_len=64)
    with pytest.raises(ValueError, match="RoPE table"):
        NativeDecodeStep(lib, shape, [good], torch.ones(H), head, max_batch=2, max_len=128)

import math

import pytest
import torch
from max_kernels.rotary import apply_rope, apply_rope_ref, apply_rope_triton, rope_cos_sin_cache, rotate
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS


def _hf_cache(config, seq_len, positions):
    rope_type = config.rope_parameters["rope_type"]
    inv_freq, factor = ROPE_INIT_FUNCTIONS[rope_type](config, "cpu", seq_len=seq_len)
    freqs = positions.float()[:, None] * inv_freq[None, :]
    return torch.cat([freqs.cos() * factor, freqs.sin() * factor], dim=-1)


def _config(rope_parameters, head_dim=32, max_position_embeddings=64):
    params = {"rope_theta": 10000.0, **rope_parameters}
    return LlamaConfig(
        hidden_size=64,
        num_attention_heads=2,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        rope_parameters=params,
    )


SCALINGS = [
    {"rope_type": "linear", "factor": 4.0},
    {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    },
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
    {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
    {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32, "truncate": False},
    {
        "rope_type": "yarn",
        "factor": 8.0,
        "original_max_position_embeddings": 16,
        "mscale": 0.7,
        "mscale_all_dim": 1.0,
        "beta_fast": 16,
        "beta_slow": 2,
    },
]


@pytest.mark.parametrize("scaling", SCALINGS, ids=lambda s: s["rope_type"])
def test_cache_matches_transformers(scaling):
    config = _config(dict(scaling))
    ours = rope_cos_sin_cache(32, 64, 10000.0, scaling, "cpu")
    torch.testing.assert_close(ours, _hf_cache(config, None, torch.arange(64)), rtol=1e-6, atol=1e-6)


def test_default_cache_is_plain_rope():
    cache = rope_cos_sin_cache(8, 10, 500.0, None, "cpu").double()
    inv = 1.0 / 500.0 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    angles = torch.arange(10, dtype=torch.float64)[:, None] * inv
    torch.testing.assert_close(cache, torch.cat([angles.cos(), angles.sin()], -1), rtol=1e-5, atol=1e-5)


def test_dynamic_cache_matches_transformers_at_full_length():
    scaling = {"rope_type": "dynamic", "factor": 2.0}
    config = _config(dict(scaling), max_position_embeddings=16)
    ours = rope_cos_sin_cache(32, 48, 10000.0, {**scaling, "max_position_embeddings": 16}, "cpu")
    torch.testing.assert_close(ours, _hf_cache(config, 48, torch.arange(48)), rtol=1e-6, atol=1e-6)


def test_longrope_cache_uses_short_then_long_factors():
    short, long = [1.0 + 0.1 * i for i in range(12)], [2.0 + 0.5 * i for i in range(12)]
    scaling = {
        "rope_type": "longrope",
        "short_factor": short,
        "long_factor": long,
        "original_max_position_embeddings": 16,
    }
    config = _config(dict(scaling), head_dim=24, max_position_embeddings=64)
    ours = rope_cos_sin_cache(24, 64, 10000.0, {**scaling, "max_position_embeddings": 64}, "cpu")
    torch.testing.assert_close(ours[:16], _hf_cache(config, None, torch.arange(16)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[16:64], _hf_cache(config, 64, torch.arange(16, 64)), rtol=1e-6, atol=1e-6)
    # rows 64..79: the long factors at positions 0..15, for the tokens of sequences longer than 16
    torch.testing.assert_close(ours[64:], _hf_cache(config, 64, torch.arange(16)), rtol=1e-6, atol=1e-6)
    assert math.isclose(float(ours[0, 0]), math.sqrt(1 + math.log(4) / math.log(16)), rel_tol=1e-6)


def test_longrope_positions_send_long_requests_to_the_long_rows():
    from max_kernels import longrope_positions

    # request 0: 3 prompt tokens of a 20-token sequence; request 1: one decode token at 9; request 2: at 30
    positions = torch.tensor([14, 15, 16, 9, 30])
    cu = torch.tensor([0, 3, 4, 5], dtype=torch.int32)
    seq_lens = torch.tensor([17, 10, 31], dtype=torch.int32)
    rows = longrope_positions(positions, cu, seq_lens, original=16, max_positions=64)
    assert rows.tolist() == [64 + 14, 64 + 15, 16, 9, 30]


def _rope_f64(x, positions, base, rotary_dim, neox):
    x = x.double().clone()
    inv = 1.0 / base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float64) / rotary_dim)
    ang = positions.double()[:, None, None] * inv
    cos, sin = ang.cos(), ang.sin()
    if neox:
        i1, i2 = torch.arange(rotary_dim // 2), torch.arange(rotary_dim // 2, rotary_dim)
    else:
        i1, i2 = torch.arange(0, rotary_dim, 2), torch.arange(1, rotary_dim, 2)
    a, b = x[..., i1].clone(), x[..., i2].clone()
    x[..., i1], x[..., i2] = a * cos - b * sin, b * cos + a * sin
    return x


@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize("rotary_dim", [16, 8])
def test_apply_rope_matches_float64(neox, rotary_dim):
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 4, 16, generator=g), torch.randn(5, 2, 16, generator=g)
    positions = torch.tensor([0, 3, 7, 2, 19])
    cache = rope_cos_sin_cache(rotary_dim, 20, 10000.0, None, "cpu")
    q_out, k_out = apply_rope(q, k, positions, cache, neox)
    torch.testing.assert_close(q_out.double(), _rope_f64(q, positions, 10000.0, rotary_dim, neox), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_out.double(), _rope_f64(k, positions, 10000.0, rotary_dim, neox), rtol=1e-5, atol=1e-5)


def test_neox_rope_matches_transformers_llama():
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = _config({"rope_type": "default"})
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(6, 2, 32, generator=g), torch.randn(6, 1, 32, generator=g)
    positions = torch.tensor([5, 0, 1, 63, 17, 4])
    cos, sin = LlamaRotaryEmbedding(config)(q, positions[None])
    q_hf, k_hf = apply_rotary_pos_emb(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
    q_out, k_out = apply_rope(q, k, positions, rope_cos_sin_cache(32, 64, 10000.0, None, "cpu"), neox=True)
    torch.testing.assert_close(q_out, q_hf[0].transpose(0, 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k_out, k_hf[0].transpose(0, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize(
    "t,hq,hk,d,rotary_dim", [(3, 4, 2, 16, 16), (5, 3, 1, 24, 12), (1, 2, 2, 32, 8), (0, 2, 1, 16, 16)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_matches_twin(neox, t, hq, hk, d, rotary_dim, dtype):
    g = torch.Generator().manual_seed(t + d)
    q, k = torch.randn(t, hq, d, generator=g).to(dtype), torch.randn(t, hk, d, generator=g).to(dtype)
    positions = torch.randint(0, 30, (t,), generator=g)
    cache = rope_cos_sin_cache(rotary_dim, 30, 10000.0, None, "cpu")
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    for got, want in zip(apply_rope_triton(q, k, positions, cache, neox), apply_rope_ref(q, k, positions, cache, neox)):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("rotary_dim", [16, 8])
def test_rotate_q_and_k_side_by_side(rotary_dim):
    """One `rotate` over q and k concatenated along the heads equals rotating each."""
    g = torch.Generator().manual_seed(1)
    qkv = torch.randn(5, 4 + 2 + 2, 16, generator=g)
    positions = torch.tensor([0, 3, 7, 2, 19])
    cache = rope_cos_sin_cache(rotary_dim, 20, 10000.0, None, "cpu")
    qk = rotate(qkv[:, :6], positions, cache, True)
    torch.testing.assert_close(qk[:, :4].double(), _rope_f64(qkv[:, :4], positions, 10000.0, rotary_dim, True), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(qk[:, 4:].double(), _rope_f64(qkv[:, 4:6], positions, 10000.0, rotary_dim, True), rtol=1e-5, atol=1e-5)

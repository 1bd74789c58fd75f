"""Memory planning against hand calculations."""

import pytest
import torch

from max_config import ConfigError, ModelConfig, PipelineConfig, compute_plan, kv_bytes_per_block, plan_memory
from max_config import QuantizationEncoding as QE
from max_config import default_kv_dtype, resolve_model_files
from max_config.memory import activation_reserve

GIB = 2**30
MIB = 2**20


def smollm_like(**overrides):
    args = dict(
        bytes_per_block=2 * 30 * 3 * 64 * 128 * 4,
        page_size=128,
        kv_dtype="float32",
        total_memory=10 * GIB,
        utilization=0.5,
        weights_bytes=GIB,
        reserve_bytes=100 * MIB,
        context_length=8192,
        max_length=None,
        max_batch_size=None,
        max_batch_input_tokens=8192,
        batch_cap=256,
    )
    args.update(overrides)
    return compute_plan(**args)


def test_bytes_per_block_is_two_layers_heads_dim_page_dtype():
    assert kv_bytes_per_block(30, 3, 64, 128, "float32") == 5_898_240
    assert kv_bytes_per_block(2, 2, 16, 16, "bfloat16") == 4096
    assert kv_bytes_per_block(1, 1, 1, 1, "float8_e4m3fn") == 2


def test_plan_by_hand():
    # budget = 5 GiB - 1 GiB - 100 MiB = 4_190_109_696 bytes -> 710 blocks of 5_898_240, one is the null block.
    plan = smollm_like()
    assert plan.kv_budget_bytes == 4_190_109_696
    assert plan.max_length == 8192  # the context length fits (709 x 128 = 90752 tokens)
    assert plan.max_batch_size == 11  # 709 // (8192 / 128)
    assert plan.num_blocks == 1 + 11 * 64
    assert plan.bytes_per_block == 5_898_240


def test_default_max_length_is_clamped_to_memory():
    # int(0.12 x 10 GiB) - 1 GiB - 100 MiB = 109_890_764 bytes -> 18 blocks, 17 usable -> 2176 tokens.
    plan = smollm_like(utilization=0.12)
    assert plan.kv_budget_bytes == 109_890_764
    assert plan.max_length == 17 * 128
    assert plan.max_batch_size == 1
    assert plan.num_blocks == 18


def test_batch_size_caps():
    assert smollm_like(utilization=0.9, batch_cap=8).max_batch_size == 8
    assert smollm_like(utilization=0.9, max_batch_input_tokens=5).max_batch_size == 5
    user = smollm_like(max_batch_size=3)
    assert user.max_batch_size == 3 and user.num_blocks == 1 + 3 * 64


def test_user_max_length_that_does_not_fit_names_the_flags_and_the_value_that_fits():
    with pytest.raises(ConfigError) as caught:
        smollm_like(utilization=0.12, max_length=4096)
    message = str(caught.value)
    assert "--max-length 4096 needs 32 KV blocks" in message
    assert "use --max-length 2176 or less" in message
    # (1 GiB + 100 MiB + 33 blocks) / 10 GiB = 0.1293 -> 0.13
    assert "raise --device-memory-utilization to 0.13" in message


def test_no_room_at_all_and_too_long_for_the_model():
    with pytest.raises(ConfigError, match="--device-memory-utilization 0.1: no room for even one KV block"):
        smollm_like(utilization=0.1)
    with pytest.raises(ConfigError, match="above the model's context length 8192"):
        smollm_like(max_length=9000)


def test_default_kv_dtype_by_encoding():
    assert default_kv_dtype(QE.float32, "cpu") == "float32"
    assert default_kv_dtype(QE.bfloat16, "cuda") == "bfloat16"
    assert default_kv_dtype(QE.float16, "cuda") == "float16"
    for encoding in (QE.q4_0, QE.q4_1, QE.q8_0, QE.q4_k, QE.q6_k):
        assert default_kv_dtype(encoding, "cpu") == "float32"
        assert default_kv_dtype(encoding, "cuda") == "bfloat16"
    assert default_kv_dtype(QE.float8_e4m3fn, "cuda") == "bfloat16"


def test_plan_memory_from_model_files(tmp_path, make_gguf):
    path = make_gguf(tmp_path / "m.gguf", hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=96)
    files = resolve_model_files(ModelConfig(model_path=str(path)))
    config = PipelineConfig.from_flat(kv_cache_page_size=16, max_batch_input_tokens=64)
    plan = plan_memory(config, files, torch.device("cpu"), total_memory=GIB)
    per_block = 2 * 2 * 2 * 16 * 16 * 4  # K and V, 2 layers, 2 KV heads, head dim 64/4, page 16, float32
    reserve = 4 * (64 * (4 * 64 + 3 * 128) + 8 * 96) + 64 * MIB
    assert activation_reserve(64, 128, 96, 64, 8) == reserve
    budget = int(GIB * 0.9) - path.stat().st_size - reserve
    assert plan.bytes_per_block == per_block
    assert plan.kv_budget_bytes == budget
    assert plan.max_length == 512  # the GGUF's context length
    assert plan.max_batch_size == 8  # the CPU cap
    assert plan.num_blocks == 1 + 8 * 512 // 16
    assert plan.kv_dtype == "float32"
    with_format = PipelineConfig.from_flat(kv_cache_format="bfloat16", kv_cache_page_size=16)
    assert plan_memory(with_format, files, torch.device("cpu"), total_memory=GIB).bytes_per_block == per_block // 2

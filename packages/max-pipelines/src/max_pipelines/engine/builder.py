"""Builds the engine's parts from a `PipelineConfig`: model, tokenizer, KV cache, scheduler, runner."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from max_config import PipelineConfig, plan_memory, resolve_devices, resolve_model_files
from max_kvcache import KVCacheManager, KVCacheSpec, PagedKVCache
from max_pipelines.engine.model_runner import ModelRunner
from max_pipelines.engine.scheduler import Scheduler, SchedulerConfig
from max_pipelines.weights.model_loader import load_model


@dataclass
class EngineParts:
    tokenizer: object
    scheduler: Scheduler
    runner: ModelRunner
    kv_manager: KVCacheManager
    max_length: int
    eos_token_ids: frozenset[int]
    enable_echo: bool


def eos_token_ids(generation_config: dict, tokenizer) -> frozenset[int]:
    """EOS ids from the model's generation config (an id or a list) and the tokenizer."""
    ids = generation_config.get("eos_token_id")
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.append(tokenizer.eos_token_id)
    return frozenset(ids)


def kv_cache_spec(hf_config: dict, page_size: int, dtype: torch.dtype, device: torch.device) -> KVCacheSpec:
    heads = hf_config["num_attention_heads"]
    return KVCacheSpec(
        num_layers=hf_config["num_hidden_layers"],
        num_kv_heads=hf_config.get("num_key_value_heads") or heads,
        head_dim=hf_config.get("head_dim") or hf_config["hidden_size"] // heads,
        page_size=page_size,
        dtype=dtype,
        device=device,
    )


def build_engine(config: PipelineConfig, num_blocks: int | None = None) -> EngineParts:
    device = resolve_devices(config.model.devices)[0]
    if device.type == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    files = resolve_model_files(config.model)
    model = load_model(files, device, dtype)
    tokenizer = load_tokenizer(files)
    if files.chat_template:
        tokenizer.chat_template = files.chat_template
    kv_format = config.kv_cache.kv_cache_format
    kv_dtype = kv_format.value if kv_format is not None else dtype
    spec = kv_cache_spec(files.config, config.kv_cache.kv_cache_page_size, kv_dtype, device)
    plan = plan_memory(config, files, spec.bytes_per_block, device)
    kv_cache = PagedKVCache(spec, min(plan.num_blocks, num_blocks or plan.num_blocks))
    kv_manager = KVCacheManager(
        kv_cache,
        enable_prefix_caching=config.kv_cache.enable_prefix_caching,
        watermark=config.runtime.kvcache_ce_watermark,
    )
    runtime = config.runtime
    scheduler = Scheduler(
        kv_manager,
        SchedulerConfig(
            max_batch_size=plan.max_batch_size,
            max_batch_input_tokens=runtime.max_batch_input_tokens,
            max_batch_total_tokens=runtime.max_batch_total_tokens,
            enable_chunked_prefill=runtime.enable_chunked_prefill,
            enable_in_flight_batching=runtime.enable_in_flight_batching,
            page_size=spec.page_size,
        ),
    )
    runner = ModelRunner(model, kv_cache, kv_manager, spec.page_size, device)
    return EngineParts(
        tokenizer=tokenizer,
        scheduler=scheduler,
        runner=runner,
        kv_manager=kv_manager,
        max_length=plan.max_length,
        eos_token_ids=eos_token_ids(files.generation_config, tokenizer),
        enable_echo=config.model.enable_echo,
    )

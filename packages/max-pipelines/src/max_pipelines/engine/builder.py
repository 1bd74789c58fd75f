"""Builds the engine's parts from a `PipelineConfig`: model, tokenizer, KV cache, scheduler, runner."""

from __future__ import annotations

from dataclasses import dataclass

from max_config import ConfigError, PipelineConfig, resolve_pipeline
from max_kernels import set_kernel_preferences
from max_kernels.cpu import start_build
from max_kvcache import KVCacheManager, KVCacheSpec, KVConnector, PagedKVCache, create_connector
from max_pipelines.engine.cpu_threads import StepThreads
from max_pipelines.engine.device_graphs import DecodeGraphs
from max_pipelines.engine.execution import plan_execution
from max_pipelines.engine.fingerprint import model_fingerprint
from max_pipelines.engine.model_runner import ModelRunner
from max_pipelines.engine.native_decode import native_decoder
from max_pipelines.engine.scheduler import Scheduler, SchedulerConfig
from max_pipelines.tokenization.tokenizer import load_tokenizer
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
    max_num_steps: int = 1
    overlap: bool = False


def eos_token_ids(generation_config: dict, tokenizer) -> frozenset[int]:
    """EOS ids from the model's generation config (an id or a list) and the tokenizer."""
    ids = generation_config.get("eos_token_id")
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.append(tokenizer.eos_token_id)
    return frozenset(ids)


def build_connector(config: PipelineConfig, files, spec: KVCacheSpec) -> KVConnector | None:
    """The `--kv-connector` tier keyed by the model's fingerprint; None for `null`."""
    kv = config.kv_cache
    name = kv.kv_connector.value
    if name == "null":
        return None
    if not kv.enable_prefix_caching:
        raise ConfigError(
            f"--kv-connector {name} needs --enable-prefix-caching (its blocks are keyed by prefix hashes)",
            key="kv_connector",
        )
    return create_connector(name, kv.kv_connector_config, spec, model_fingerprint(files))


def build_engine(config: PipelineConfig, num_blocks: int | None = None) -> EngineParts:
    resolved = resolve_pipeline(config)
    files, device, plan = resolved.files, resolved.devices[0], resolved.plan
    runtime = config.runtime
    set_kernel_preferences(experimental=runtime.use_experimental_kernels, vendor_blas=runtime.use_vendor_blas)
    execution = plan_execution(runtime, device, files.architecture, files.encoding)
    threads = StepThreads.for_this_process() if device.type == "cpu" else None
    spec = KVCacheSpec(
        num_layers=files.num_layers,
        num_kv_heads=files.num_kv_heads,
        head_dim=files.head_dim,
        page_size=plan.page_size,
        dtype=plan.kv_dtype,
        device=device,
    )
    connector = build_connector(config, files, spec)  # before the weights: a bad setting fails fast
    try:
        # Packed GGUF weights take the fastest CPU path (bfloat16 matmul inputs, float32 activations,
        # greedy tokens checked against transformers); `load_model`'s default is the exact one.
        if device.type == "cpu":
            start_build()  # the native decode step compiles (first run on this machine) while weights load
        model = load_model(files, device, custom_architectures=resolved.custom_architectures, cpu_path="auto")
        tokenizer = load_tokenizer(files)
    except BaseException:
        if connector is not None:
            connector.close()
        raise
    kv_cache = PagedKVCache(spec, min(plan.num_blocks, num_blocks or plan.num_blocks))
    kv_manager = KVCacheManager(
        kv_cache,
        enable_prefix_caching=config.kv_cache.enable_prefix_caching,
        watermark=config.runtime.kvcache_ce_watermark,
        connector=connector,
    )
    scheduler = Scheduler(
        kv_manager,
        SchedulerConfig(
            max_batch_size=plan.max_batch_size,
            max_batch_input_tokens=runtime.max_batch_input_tokens,
            max_batch_total_tokens=runtime.max_batch_total_tokens,
            enable_chunked_prefill=runtime.enable_chunked_prefill,
            enable_in_flight_batching=runtime.enable_in_flight_batching,
            page_size=plan.page_size,
        ),
    )
    runner = ModelRunner(model, kv_cache, kv_manager, plan.page_size, device, threads)
    if device.type == "cpu":
        runner.native = native_decoder(model, kv_cache, plan.max_length, plan.max_batch_size)
    if execution.device_graphs:
        runner.graphs = DecodeGraphs(
            model, kv_cache, plan.max_batch_size, plan.max_length, plan.page_size, device, runtime.debug_verify_replay
        )
        try:
            runner.graphs.capture_all()
        except RuntimeError as e:
            raise ConfigError(
                f"--device-graph-capture: capturing the decode step failed ({str(e).splitlines()[0]}); "
                "run with --no-device-graph-capture",
                key="device_graph_capture",
            ) from e
    return EngineParts(
        tokenizer=tokenizer,
        scheduler=scheduler,
        runner=runner,
        kv_manager=kv_manager,
        max_length=plan.max_length,
        eos_token_ids=eos_token_ids(files.generation_config, tokenizer),
        enable_echo=config.model.enable_echo,
        max_num_steps=execution.max_num_steps,
        overlap=execution.overlap,
    )

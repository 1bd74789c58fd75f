"""Scheduling and execution settings (`--max-batch-size`, `--enable-chunked-prefill`, ...)."""

from pydantic import BaseModel, ConfigDict, model_validator

from .enums import PipelineRole
from .fields import setting


class RuntimeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_batch_size: int | None = setting(
        None,
        "Maximum batch size to execute with the model. When not specified, it is derived from the KV cache "
        "budget (at most 256 on GPU, 8 on CPU, and at most --max-batch-input-tokens).",
        default_text="derived from the KV cache budget",
        ge=1,
    )
    max_batch_input_tokens: int = setting(
        8192,
        "The target number of un-encoded tokens to include in each batch. This value is used for chunked "
        "prefill and memory estimation.",
        ge=1,
    )
    max_batch_total_tokens: int | None = setting(
        None,
        "Ensures the sum of page-aligned context lengths in a batch does not exceed max_batch_total_tokens. "
        "Alignment uses the KV cache page size. If None, the sum is not limited.",
        ge=1,
    )
    enable_chunked_prefill: bool = setting(
        True,
        "Enable chunked prefill to split context encoding requests into multiple chunks based on "
        "max_batch_input_tokens.",
    )
    enable_in_flight_batching: bool = setting(
        False, "When enabled, prioritizes token generation by batching it with context encoding requests."
    )
    max_num_steps: int = setting(
        -1,
        "The number of steps to run for multi-step scheduling. -1 specifies a default value based on "
        "configuration and platform.",
        ge=-1,
    )
    kvcache_ce_watermark: float = setting(
        0.95,
        "Projected cache usage threshold for scheduling CE requests, considering current and incoming "
        "requests. CE is scheduled if either projected usage stays below this threshold or no active "
        "requests exist. Higher values can cause more preemptions.",
        gt=0.0,
        le=1.0,
    )
    force: bool = setting(
        False,
        "Skip validation of user provided flags against the architecture's required arguments. Here: also "
        "keeps the overlap scheduler and device graph capture off unless asked for.",
    )
    custom_architectures: list[str] = setting(
        help="Custom architecture implementations to register. Each input can either be a raw module name or "
        "an import path followed by a colon and the module name. Each module must expose an ARCHITECTURES "
        "list of architectures to register. Repeatable.",
        default_factory=list,
    )
    use_experimental_kernels: bool = setting(
        False, "Enables using experimental kernels. The kernels could be unstable or incorrect.", value_flag=True
    )
    use_vendor_blas: bool = setting(
        False, "Enables using vendor BLAS libraries (cublas, hipblas, etc.) for matmul calls.", value_flag=True
    )
    use_vendor_ccl: bool = setting(
        False,
        "Enables using vendor CCL libraries (NCCL/RCCL) for collective operations such as allreduce in "
        "multi-GPU inference.",
        value_flag=True,
    )
    enable_overlap_scheduler: bool | None = setting(
        None,
        "Whether to enable the overlap scheduler, which prepares the next batch on the host while the device "
        "runs the current one. Here: the decode steps of a multi-step round are pipelined (--max-num-steps).",
        default_text="on on a GPU for Llama models with float weights, unless --force or --max-num-steps 1",
    )
    device_graph_capture: bool | None = setting(
        None,
        "Enable device graph capture and replay for graph execution (CUDA graphs of decode steps; GPU only).",
        default_text="on on a GPU for Llama models with float weights, unless --force",
    )
    debug_verify_replay: bool = setting(
        False,
        "When device_graph_capture is enabled, execute eager launch-trace verification before replay. "
        "Intended for debugging only. Here: the first replay of each batch size is compared with the eager step.",
    )
    pipeline_role: PipelineRole = setting(
        PipelineRole.prefill_and_decode,
        "Whether the pipeline should serve both a prefill or decode role or both.",
    )
    execute_empty_batches: bool = setting(False, "Whether the scheduler should execute empty batches.")
    max_queue_size_tg: int | None = setting(
        None,
        "Maximum number of requests in decode queue. By default, this is max_batch_size.",
        default_text="max_batch_size",
        ge=1,
    )
    min_batch_size_tg: int | None = setting(
        None,
        "Soft floor on the decode batch size. Experimental for the TTS scheduler.",
        default_text="max_queue_size_tg",
        ge=1,
    )
    ce_delay_ms: float = setting(
        0.0,
        "Duration of scheduler sleep prior to starting a prefill batch. Experimental for the TTS scheduler.",
        ge=0.0,
    )
    enable_prioritize_first_decode: bool = setting(
        False,
        "When enabled, the scheduler always runs a TG batch immediately after a CE batch with the same "
        "requests. Experimental for the TTS scheduler.",
    )
    reasoning_parser: str | None = setting(
        None,
        "Name of the reasoning output parser. The parser extracts thinking blocks to populate the reasoning "
        "field in chat completion responses.",
    )
    prefer_module_v3: bool = setting(
        False,
        "Whether to prefer the eager API architecture over the graph API architecture when both exist.",
    )
    max_vision_cache_entries: int = setting(
        256,
        "Maximum number of images cached in the vision encoder cache. Set to 0 to disable caching. Only "
        "used by VLMs.",
        ge=0,
    )
    zmq_endpoint_base: str | None = setting(
        None, "Prefix for ZMQ endpoints used for IPC, unique per process on the same host."
    )
    decode_stall_timeout_s: float | None = setting(
        None,
        "Seconds of no-batch-activity after which the decode worker exits. None (the default) disables the "
        "watchdog.",
        gt=0.0,
    )
    ep_size: int = setting(
        1,
        "The expert parallelism size. Needs to be 1 (no expert parallelism) or the total number of GPUs "
        "across nodes.",
        ge=1,
    )
    ep_use_allreduce: bool = setting(
        False, "Whether to use allreduce for the cross-device communication in expert parallelism."
    )

    @model_validator(mode="after")
    def _batch_fits_input_tokens(self) -> "RuntimeConfig":
        if self.max_num_steps == 0:
            raise ValueError("--max-num-steps must be -1 (auto) or at least 1, got 0")
        if self.debug_verify_replay and self.device_graph_capture is False:
            raise ValueError("--debug-verify-replay checks device graphs; drop --no-device-graph-capture")
        if self.enable_overlap_scheduler and self.max_num_steps == 1:
            raise ValueError(
                "--enable-overlap-scheduler pipelines the steps of a multi-step round; "
                "give --max-num-steps above 1 or -1 (auto)"
            )
        if self.max_batch_size is not None and self.max_batch_size > self.max_batch_input_tokens:
            raise ValueError(
                f"--max-batch-size {self.max_batch_size} is above --max-batch-input-tokens "
                f"{self.max_batch_input_tokens}; lower --max-batch-size or raise --max-batch-input-tokens"
            )
        return self

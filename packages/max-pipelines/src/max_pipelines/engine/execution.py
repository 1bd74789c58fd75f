"""How decode steps run on the device: device graphs, the overlap scheduler, steps per round.

`--device-graph-capture` and `--enable-overlap-scheduler` left unset turn on together on a GPU for
the architectures and weights measured with them (AUTO_ARCHITECTURES with float weights; a
Llama-8B-shaped model in bfloat16 decodes about 3x faster at batch 1 that way than eagerly; packed
GGUF and float8 weights have not been measured so). `--force` keeps both off unless asked for, and
`--max-num-steps 1` keeps the overlap scheduler off (it pipelines the steps of a round). Graphs asked
for off a GPU, and `--debug-verify-replay` without graphs, are refused here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from max_config import ConfigError, QuantizationEncoding, RuntimeConfig

from max_pipelines.engine.multistep import resolve_num_steps

AUTO_ARCHITECTURES = frozenset({"LlamaForCausalLM"})


@dataclass(frozen=True)
class ExecutionPlan:
    device_graphs: bool
    overlap: bool
    max_num_steps: int


def plan_execution(
    runtime: RuntimeConfig, device: torch.device, architecture: str, encoding: QuantizationEncoding | str
) -> ExecutionPlan:
    auto = (
        device.type == "cuda"
        and architecture in AUTO_ARCHITECTURES
        and QuantizationEncoding(encoding).is_float
        and not runtime.force
    )
    graphs = auto if runtime.device_graph_capture is None else runtime.device_graph_capture
    if graphs and device.type != "cuda":
        raise ConfigError(
            "--device-graph-capture: device graphs need a GPU (--devices gpu); drop the flag on the CPU",
            key="device_graph_capture",
        )
    if runtime.debug_verify_replay and not graphs:
        raise ConfigError(
            "--debug-verify-replay checks device graphs, which are off for this model and device; "
            "add --device-graph-capture (GPU only)",
            key="debug_verify_replay",
        )
    overlap = runtime.enable_overlap_scheduler
    if overlap is None:
        overlap = auto and runtime.max_num_steps != 1
    return ExecutionPlan(graphs, overlap, resolve_num_steps(runtime.max_num_steps, device, overlap))

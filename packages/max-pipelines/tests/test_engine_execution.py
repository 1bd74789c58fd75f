"""Device graphs and the overlap scheduler left unset: on for Llama on a GPU, off elsewhere."""

import pytest
import torch
from max_config import PipelineConfig

from max_pipelines.engine.execution import plan_execution

GPU, CPU = torch.device("cuda"), torch.device("cpu")


def plan(device, arch="LlamaForCausalLM", encoding="bfloat16", **flags):
    return plan_execution(PipelineConfig.from_flat(model_path="x", **flags).runtime, device, arch, encoding)


def test_llama_on_a_gpu_gets_graphs_overlap_and_ten_steps():
    p = plan(GPU)
    assert (p.device_graphs, p.overlap, p.max_num_steps) == (True, True, 10)


@pytest.mark.parametrize(
    "device,arch,flags",
    [
        (CPU, "LlamaForCausalLM", {}),
        (GPU, "Qwen2ForCausalLM", {}),
        (GPU, "LlamaForCausalLM", {"force": True}),
        (GPU, "LlamaForCausalLM", {"encoding": "q4_k"}),  # packed weights: not measured so
        (GPU, "LlamaForCausalLM", {"encoding": "float8_e4m3fn"}),
    ],
)
def test_auto_stays_off_elsewhere(device, arch, flags):
    p = plan(device, arch, **flags)
    assert not p.device_graphs and not p.overlap


def test_flags_win_over_auto():
    assert plan(GPU, device_graph_capture=False).device_graphs is False
    assert plan(GPU, enable_overlap_scheduler=False).overlap is False
    assert plan(GPU, "Qwen2ForCausalLM", device_graph_capture=True).device_graphs is True
    assert plan(CPU, enable_overlap_scheduler=True).overlap is True
    p = plan(GPU, max_num_steps=1)  # single steps: nothing to pipeline, graphs still on
    assert (p.device_graphs, p.overlap, p.max_num_steps) == (True, False, 1)
    assert plan(GPU, force=True, device_graph_capture=True).device_graphs is True

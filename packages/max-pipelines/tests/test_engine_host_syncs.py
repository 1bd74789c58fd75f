"""On the GPU code path a step reads nothing back from the device until its tokens are wanted:
no `.item()`, `.tolist()`, truth values or data-dependent shapes in prefill, decode (eager or
through device graphs) or sampling. Run by test_engine_triton_path, which puts the Triton kernels
on the CPU; the CPU's own PyTorch twins do read sizes back, so this module skips there."""

import os
import sys

import gguf
import pytest
from fixtures.eager_graphs import eager_capture
from fixtures.tiny_gguf import write_llama_gguf
from fixtures.tiny_llm import PROMPTS, make_llm, save_tiny
from fixtures.tiny_models import VARIANTS, make_tiny_model
from torch.overrides import TorchFunctionMode
from transformers import LlamaConfig, LlamaForCausalLM

from max_config import SamplingParams
from max_pipelines import LLM
from max_pipelines.engine.device_graphs import DecodeGraphs
from max_pipelines.engine.multistep import burst_length

Q = gguf.GGMLQuantizationType
pytestmark = pytest.mark.skipif(
    os.environ.get("MAX_TRITON_ON_CPU") != "1", reason="the GPU code path only (test_engine_triton_path runs it)"
)

SYNCS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "masked_select", "unique", "cpu", "numpy"}
HOST_DATA = {"tensor", "as_tensor", "from_numpy"}  # a copy from host memory: not allowed inside a device graph
ENGINE = ("/max_pipelines/", "/max_kernels/", "/max_kvcache/")


class HostReads(TorchFunctionMode):
    """Records each call in `names` (default: the device-to-host reads) that the engine's own code
    makes (not Triton's interpreter)."""

    def __init__(self, names: set[str] = SYNCS):
        super().__init__()
        self.names = names
        self.reads: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in self.names:
            frame = sys._getframe(1)
            while frame is not None and "/torch/" in frame.f_code.co_filename:
                frame = frame.f_back
            if frame is not None and any(part in frame.f_code.co_filename for part in ENGINE):
                self.reads.add(f"{name} at {frame.f_code.co_filename.rsplit('src/', 1)[-1]}:{frame.f_lineno}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_steps_queue_without_reading_the_device(tmp_path, graphs, temperature):
    save_tiny(tmp_path, "llama")
    llm = make_llm(tmp_path, kv_cache_page_size=4)
    runner = llm.runner
    if graphs:
        runner.graphs = DecodeGraphs(runner.model, runner.kv_cache, 4, llm.max_length, 4, runner.device, False, eager_capture)
        runner.graphs.capture_all()
    params = SamplingParams(temperature=temperature, top_k=20, top_p=0.9, seed=1, max_new_tokens=8, ignore_eos=True)
    for prompt in PROMPTS:
        llm.add_request(prompt, params)
    prefill = llm.scheduler.schedule()
    probe = HostReads()
    with probe:
        _, tokens = runner._step(prefill)
    llm._apply(prefill, dict(zip(prefill.seqs, tokens.tolist())))
    decode = llm.scheduler.schedule()
    assert burst_length(llm.scheduler, decode, 3) == 3
    with probe:
        first = runner.launch_decode(decode.seqs, None, lag=0)
        runner.launch_decode(decode.seqs, first.tokens, lag=1)
    assert probe.reads == set()


@pytest.mark.parametrize("weights", ["gguf", *sorted(VARIANTS)])
def test_the_captured_decode_step_touches_no_host_memory(tmp_path, weights):
    """What a device graph records: the forward pass and LM head over the static inputs, with no read
    back and no tensor made from host data (neither can be captured), for each architecture's float
    model. GGUF: Q4_K, Q6_K and Q8_0 blocks through the quantized matmul kernels, a Q8_0 embedding table."""
    if weights in VARIANTS:
        make_tiny_model(weights, tmp_path, tokenizer=True)
        llm = make_llm(tmp_path, kv_cache_page_size=4)
    else:
        config = LlamaConfig(vocab_size=258, hidden_size=256, intermediate_size=512, num_hidden_layers=1,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
        overrides = {"attn_v": Q.Q6_K, "ffn_down": Q.Q6_K, "token_embd": Q.Q8_0, "output": Q.Q8_0}
        path = write_llama_gguf(LlamaForCausalLM(config), tmp_path / "m.gguf", Q.Q4_K, overrides=overrides, tokenizer=True)
        llm = LLM(model=str(path), devices="cpu", max_length=64, kv_cache_page_size=4)
    r = llm.runner
    graphs = DecodeGraphs(r.model, r.kv_cache, 4, llm.max_length, 4, r.device, False, eager_capture)
    probe = HostReads(SYNCS | HOST_DATA)
    with probe:
        for n in graphs.sizes:
            graphs._step_fn(n)()
    assert probe.reads == set()

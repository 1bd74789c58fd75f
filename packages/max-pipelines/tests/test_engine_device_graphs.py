"""--device-graph-capture: decode steps through static, padded graph inputs. No GPU here, so the
graphs are replayed by calling the captured step again; what is checked is what the engine feeds
them (padding rows, static block tables, sizes) against transformers' greedy tokens."""

import pytest
import torch
from fixtures.eager_graphs import EagerReplay, eager_capture
from fixtures.tiny_gguf import write_llama_gguf
from fixtures.tiny_llm import PROMPTS, hf_greedy, make_llm, save_tiny
from fixtures.tiny_models import VARIANTS, make_tiny_model

from max_config import ConfigError, PipelineConfig, SamplingParams
from max_pipelines import LLM
from max_pipelines.engine.device_graphs import DecodeGraphs, capture_sizes

NEW = 10
LIMITS = (NEW, 4, NEW, 7)  # requests leave the batch at different steps, so smaller graphs run padded


class StaleReplay(EagerReplay):
    """A broken graph: replays leave the output of capture time."""

    def replay(self):
        self.replays += 1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama_graphs")
    model = save_tiny(path, "llama")
    prompts = PROMPTS + [[3, 1, 4, 1, 5, 9, 2, 6]]
    return path, prompts, [hf_greedy(model, p, n) for p, n in zip(prompts, LIMITS)]


def with_graphs(path, capture=eager_capture, verify=False, max_batch=8):
    llm = make_llm(path, kv_cache_page_size=4)
    runner = llm.runner
    runner.graphs = DecodeGraphs(
        runner.model, runner.kv_cache, max_batch, llm.max_length, runner.page_size, runner.device, verify, capture
    )
    runner.graphs.capture_all()
    return llm


def test_capture_sizes():
    assert capture_sizes(1) == [1]
    assert capture_sizes(6) == [1, 2, 4, 6]
    assert capture_sizes(40) == [1, 2, 4, 8, 16, 32, 40]
    assert capture_sizes(1000)[-3:] == [224, 240, 256]


def test_replayed_decode_steps_match_transformers(tiny):
    path, prompts, ref = tiny
    llm = with_graphs(path, verify=True)
    params = [SamplingParams(temperature=0.0, max_new_tokens=n, ignore_eos=True) for n in LIMITS]
    outs = llm.generate(prompts, params)
    assert [o.token_ids for o in outs] == ref
    replays = {n: g.replays for n, (g, _) in llm.runner.graphs._graphs.items()}
    assert replays[4] > 0 and replays[2] > 0  # 4 requests, then 3 (padded to 4), then 2
    assert sum(replays.values()) >= NEW - 2


def test_padding_rows_write_no_kv(tiny):
    """Four requests fill the graph of 4; one finishes; the next step pads row 3, which held its slot."""
    path, prompts, _ = tiny
    llm = with_graphs(path)
    graphs, cache = llm.runner.graphs, llm.runner.kv_cache
    seqs = [
        llm.add_request(p, SamplingParams(temperature=0.0, max_new_tokens=n, ignore_eos=True))
        for p, n in zip(prompts, (4, 4, 4, 2))
    ]
    llm.step()  # prefill (eager)
    llm.step()  # 4 decode requests; the last one finishes
    assert seqs[3].is_finished and not seqs[0].is_finished
    before = [t.clone() for t in cache.layer_kv(0)]
    llm.step()  # 3 decode requests on the graph of 4
    changed = {int(i) for t0, t1 in zip(before, cache.layer_kv(0)) for i in (t0 != t1).flatten(1).any(1).nonzero()}
    owned = {b for s in seqs[:3] for b in llm.kv_manager.block_ids(s)}
    assert changed and changed <= owned
    assert graphs.slot_mapping[3].item() == -1


def test_graphs_are_captured_as_graph_steps(tiny):
    """Kernels kept for replayed steps (the batch-1 matrix-vector one) see the capture, and only it."""
    from max_kernels.dispatch import in_graph_step

    seen = []

    def capture(step):
        seen.append(in_graph_step())
        return eager_capture(step)

    llm = with_graphs(tiny[0], capture=capture, max_batch=2)
    assert seen == [True, True] and not in_graph_step()
    llm.generate(tiny[1][:1], SamplingParams(temperature=0.0, max_new_tokens=3, ignore_eos=True))
    assert seen == [True, True]


def test_verify_replay_catches_a_broken_graph(tiny):
    path, prompts, _ = tiny
    llm = with_graphs(path, capture=lambda step: (StaleReplay(step, step()), step()), verify=True)
    with pytest.raises(RuntimeError, match="--debug-verify-replay: the device graph for batch size 2"):
        llm.generate(prompts[:2], SamplingParams(temperature=0.0, max_new_tokens=4, ignore_eos=True))


def test_flags(tiny):
    path, _, _ = tiny
    with pytest.raises(ConfigError, match="--debug-verify-replay checks device graphs; drop --no-device-graph-capture"):
        PipelineConfig.from_flat(model_path=str(path), debug_verify_replay=True, device_graph_capture=False)
    with pytest.raises(ConfigError, match="^--debug-verify-replay checks device graphs, which are off for this model"):
        make_llm(path, debug_verify_replay=True)  # on the CPU graphs stay off
    with pytest.raises(ConfigError, match="^--device-graph-capture: device graphs need a GPU"):
        make_llm(path, device_graph_capture=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize(
    "extra",
    [
        {"max_num_steps": 1},
        {"enable_overlap_scheduler": True},
        {"enable_overlap_scheduler": False, "max_num_steps": 4},
        {"enable_overlap_scheduler": True, "pdl": False},
        {"enable_overlap_scheduler": True, "fused_products": False},
    ],
)
def test_cuda_graphs_match_eager(tiny, extra):
    """Also with the batch-1 products launched as ordinary kernels, and with the norms unfused."""
    from max_kernels import kernel_preferences, set_kernel_preferences

    path, prompts, _ = tiny
    params = [SamplingParams(temperature=0.0, max_new_tokens=n, ignore_eos=True) for n in LIMITS]
    eager = LLM(model=str(path), devices="gpu", max_length=256, max_num_steps=1, device_graph_capture=False)
    assert eager.runner.graphs is None
    want = [o.token_ids for o in eager.generate(prompts, params)]
    extra, before = dict(extra), kernel_preferences()
    saved = (before.experimental, before.vendor_blas, before.fused_products, before.pdl)
    set_kernel_preferences(fused_products=extra.pop("fused_products", True), pdl=extra.pop("pdl", True))
    try:
        graphed = LLM(model=str(path), devices="gpu", max_length=256, device_graph_capture=True,
                      debug_verify_replay=True, **extra)
        assert graphed.runner.graphs is not None
        assert [o.token_ids for o in graphed.generate(prompts, params)] == want
    finally:
        set_kernel_preferences(*saved)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_llama_on_a_gpu_gets_graphs_and_overlap_by_default(tiny):
    path, prompts, _ = tiny
    params = [SamplingParams(temperature=0.0, max_new_tokens=n, ignore_eos=True) for n in LIMITS]
    eager = LLM(model=str(path), devices="gpu", max_length=256, max_num_steps=1, device_graph_capture=False)
    auto = LLM(model=str(path), devices="gpu", max_length=256)
    assert auto.runner.graphs is not None and auto.overlap
    assert [o.token_ids for o in auto.generate(prompts, params)] == [o.token_ids for o in eager.generate(prompts, params)]


def test_a_failed_capture_names_the_flag_that_turns_graphs_off(tiny, monkeypatch):
    from max_pipelines.engine import builder
    from max_pipelines.engine.execution import ExecutionPlan

    def broken_capture(self):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    monkeypatch.setattr(builder, "plan_execution", lambda *_: ExecutionPlan(True, False, 1))
    monkeypatch.setattr(builder, "DecodeGraphs", lambda *a: type("G", (), {"capture_all": broken_capture})())
    with pytest.raises(ConfigError, match=r"^--device-graph-capture: capturing the decode step failed "
                       r"\(operation not permitted when stream is capturing\); run with --no-device-graph-capture$"):
        make_llm(tiny[0])


def _architecture_folder(variant: str, path, gguf_type=None):
    """The variant's tiny HF model with the byte tokenizer (ids below the model's vocabulary only
    are used); with `gguf_type`, a Llama GGUF file of that block type instead."""
    hf = make_tiny_model(variant, path / "hf", tokenizer=True)
    if gguf_type is None:
        return path / "hf"
    return write_llama_gguf(hf, path / "tiny.gguf", gguf_type, tokenizer=True)


ARCH_CASES = [(v, None) for v in sorted(VARIANTS)] + [("llama", "Q8_0"), ("llama", "Q4_0")]


ARCH_PROMPTS = [[5, 17, 33, 9, 100, 7], [3, 1, 4, 1, 5, 9, 2, 6, 53, 58], [77]]
ARCH_PARAMS = [SamplingParams(temperature=0.0, max_new_tokens=n, ignore_eos=True) for n in (12, 5, 9)]


@pytest.mark.parametrize("variant,gguf_type", ARCH_CASES)
def test_graph_inputs_fit_each_architecture(variant, gguf_type, tmp_path):
    """Each architecture (sliding windows, soft caps, partial rotary, packed weights) through the graphs'
    static, padded inputs (replayed by re-running the step here) gives the eager tokens."""
    import gguf

    qtype = getattr(gguf.GGMLQuantizationType, gguf_type) if gguf_type else None
    path = _architecture_folder(variant, tmp_path, qtype)
    eager = make_llm(path, max_num_steps=1)
    eager.runner.native = None  # the PyTorch step, which the graphs hold (the native CPU one rounds otherwise)
    want = [o.token_ids for o in eager.generate(ARCH_PROMPTS, ARCH_PARAMS)]
    llm = with_graphs(path, verify=True, max_batch=4)
    assert [o.token_ids for o in llm.generate(ARCH_PROMPTS, ARCH_PARAMS)] == want
    assert sum(g.replays for g, _ in llm.runner.graphs._graphs.values()) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("variant,gguf_type", ARCH_CASES)
def test_cuda_graphs_match_eager_for_each_architecture(variant, gguf_type, tmp_path):
    """What auto-enabling graphs for more architectures and for packed weights would rest on."""
    import gguf

    qtype = getattr(gguf.GGMLQuantizationType, gguf_type) if gguf_type else None
    model = str(_architecture_folder(variant, tmp_path, qtype))
    eager = LLM(model=model, devices="gpu", max_length=64, max_num_steps=1, device_graph_capture=False)
    want = [o.token_ids for o in eager.generate(ARCH_PROMPTS, ARCH_PARAMS)]
    del eager
    graphed = LLM(model=model, devices="gpu", max_length=64, device_graph_capture=True, enable_overlap_scheduler=True,
                  debug_verify_replay=True)
    assert [o.token_ids for o in graphed.generate(ARCH_PROMPTS, ARCH_PARAMS)] == want

"""SamplingParams.logprobs: per generated token, the chosen and top-k log-probabilities of the raw logits,
against a float64 log_softmax of the HF model's logits over the same tokens."""

import copy

import pytest
import torch
from fixtures.tiny_llm import make_llm, save_tiny

from max_config import PipelineConfig, SamplingParams
from max_pipelines import LLM

PROMPTS = [[5, 17, 42, 9, 100, 3, 77], [200, 11, 5]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama_logprobs")
    model = save_tiny(path, "llama")
    return path, copy.deepcopy(model).double()


def reference_logprobs(model, prompt: list[int], generated: list[int]) -> torch.Tensor:
    """[len(generated), V]: row i is log p(. | prompt + generated[:i]) in float64."""
    ids = torch.tensor([prompt + generated])
    with torch.inference_mode():
        logits = model(ids).logits[0].double()
    return torch.log_softmax(logits, dim=-1)[len(prompt) - 1 : len(prompt) - 1 + len(generated)]


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0.0, max_new_tokens=5, ignore_eos=True, logprobs=3),
        # Sampling settings change the draw, never the reported (raw) logprobs.
        SamplingParams(temperature=1.3, top_k=20, repetition_penalty=1.5, seed=7, max_new_tokens=5,
                       ignore_eos=True, logprobs=2),
    ],
)
def test_logprobs_are_the_raw_log_softmax(tiny, params):
    path, hf = tiny
    llm = make_llm(path)
    mixed = [params, SamplingParams(temperature=0.0, max_new_tokens=5, ignore_eos=True)]
    outs = llm.generate(PROMPTS, mixed)
    assert outs[1].logprobs is None
    out = outs[0]
    assert len(out.logprobs) == len(out.token_ids) == 5
    ref = reference_logprobs(hf, PROMPTS[0], out.token_ids)
    k = params.logprobs
    for i, (token, entry) in enumerate(zip(out.token_ids, out.logprobs)):
        top = ref[i].topk(k)
        assert next(iter(entry)) == token
        assert set(entry) == {token, *top.indices.tolist()}
        for t, lp in entry.items():
            assert lp == pytest.approx(ref[i, t].item(), abs=1e-4)
    if params.temperature == 0.0:  # greedy picks the most likely token
        assert all(max(e.values()) == e[t] for t, e in zip(out.token_ids, out.logprobs))


def test_logprobs_survive_preemption(tiny):
    path, hf = tiny
    config = PipelineConfig.from_flat(model_path=str(path), devices="cpu", max_length=256, kv_cache_page_size=4)
    llm = LLM.from_config(config, num_blocks=5)
    params = SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True, logprobs=1)
    outs = llm.generate(PROMPTS, params)
    assert llm.scheduler.stats.num_preemptions > 0
    for prompt, out in zip(PROMPTS, outs):
        ref = reference_logprobs(hf, prompt, out.token_ids)
        assert [len(e) for e in out.logprobs] == [1] * 8  # greedy: the chosen token is the top one
        assert [e[t] for t, e in zip(out.token_ids, out.logprobs)] == pytest.approx(
            ref.gather(1, torch.tensor(out.token_ids)[:, None])[:, 0].tolist(), abs=1e-4
        )

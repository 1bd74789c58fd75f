"""Each architecture against Hugging Face transformers (float32, eager) on tiny random models.

Two sequences of different lengths are prefilled in one ragged batch through a scrambled paged
cache, then decoded greedily together; logits at every prompt position and every step must
match HF's full-sequence forward within 1e-4 of the logit scale.
"""

import dataclasses

import pytest
import torch
from fixtures.model_files import model_files
from fixtures.paged import PagedRunner
from fixtures.tiny_models import VARIANTS, make_tiny_model

from max_pipelines.weights.model_loader import load_model

DECODE_STEPS = 8


def hf_logits(hf_model, tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(torch.tensor([tokens])).logits[0].float()


def assert_close(ours: torch.Tensor, ref: torch.Tensor, tol: float = 1e-4) -> None:
    err = (ours.cpu() - ref).abs().max() / ref.abs().max()
    assert err < tol, f"relative error {err:.2e}"


def check_prefill_and_greedy_decode(
    variant, tmp_path, device: str = "cpu", tol: float = 1e-4, lengths: tuple[int, ...] = (11, 5)
) -> None:
    """Ragged prefill of prompts of `lengths`, then greedy decode steps, against HF's full-sequence logits."""
    hf_model = make_tiny_model(variant, tmp_path)
    files = model_files(tmp_path)
    model = load_model(files, device, torch.float32)

    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 128, (n,), generator=g).tolist() for n in lengths]
    runner = PagedRunner(model, files.config, num_seqs=len(prompts))
    logits = runner.step(prompts)
    assert logits.dtype == torch.float32 and logits.device.type == torch.device(device).type
    ends = torch.tensor(lengths).cumsum(0).tolist()
    for prompt, end in zip(prompts, ends):
        assert_close(logits[end - len(prompt) : end], hf_logits(hf_model, prompt), tol)

    seqs = [list(p) for p in prompts]
    last = logits[[end - 1 for end in ends]]
    for _ in range(DECODE_STEPS):
        next_ids = last.argmax(-1).tolist()
        for seq, tok in zip(seqs, next_ids):
            seq.append(tok)
        last = runner.step([[t] for t in next_ids])
        for i, seq in enumerate(seqs):
            ref = hf_logits(hf_model, seq)[-1]
            assert_close(last[i], ref, tol)
            if tol <= 1e-4:  # looser tolerances (TF32 dots) may part at near ties
                assert int(ref.argmax()) == int(last[i].argmax())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_hf_prefill_and_greedy_decode(variant, tmp_path):
    check_prefill_and_greedy_decode(variant, tmp_path)


@pytest.mark.parametrize("variant", ["llama3_tied", "qwen3", "phi3"])
def test_one_sequence_decodes_at_batch_one(variant, tmp_path):
    """Decode steps of one sequence alone run batch-1 products: through the GPU kernels, those that
    add into the residual stream and read the next norm's input (see decoder.py)."""
    check_prefill_and_greedy_decode(variant, tmp_path, lengths=(9,))


def test_phi3_longrope_sequences_beyond_the_original_context(tmp_path):
    """A prompt longer than `original_max_position_embeddings` (64 here) is rotated with the long factors
    at every position, as transformers does, while a short one in the same batch keeps the short ones."""
    hf_model = make_tiny_model("phi3", tmp_path)
    files = model_files(tmp_path)
    model = load_model(files, "cpu", torch.float32)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, 128, (n,), generator=g).tolist() for n in (70, 20)]
    runner = PagedRunner(model, files.config, num_seqs=2, max_len=96)
    logits = runner.step(prompts)
    assert_close(logits[:70], hf_logits(hf_model, prompts[0]))
    assert_close(logits[70:], hf_logits(hf_model, prompts[1]))
    seqs = [list(p) for p in prompts]
    last = torch.stack([logits[69], logits[89]])
    for _ in range(4):
        for seq, tok in zip(seqs, last.argmax(-1).tolist()):
            seq.append(tok)
        last = runner.step([[seq[-1]] for seq in seqs])
        for i, seq in enumerate(seqs):
            assert_close(last[i], hf_logits(hf_model, seq)[-1])


@pytest.mark.parametrize("variant", ["gemma3", "mistral"])
def test_chunked_prefill_mixed_with_decode(variant, tmp_path):
    """A prompt prefilled in chunks while another sequence decodes in the same batches (sliding windows
    of 6 tokens make chunk boundaries matter)."""
    hf_model = make_tiny_model(variant, tmp_path)
    files = model_files(tmp_path)
    model = load_model(files, "cpu", torch.float32)
    runner = PagedRunner(model, files.config, num_seqs=2)

    long_prompt = list(range(10, 27))
    short = [5, 6, 7]
    first = runner.step([long_prompt[:7], short])
    decoded = short + [int(first[-1].argmax())]
    for start, end in [(7, 12), (12, 17)]:
        logits = runner.step([long_prompt[start:end], decoded[-1:]])
        assert_close(logits[: end - start], hf_logits(hf_model, long_prompt[:end])[start:end])
        assert_close(logits[-1], hf_logits(hf_model, decoded)[-1])
        decoded.append(int(logits[-1].argmax()))


def test_float8_kv_cache_stays_close(tmp_path):
    hf_model = make_tiny_model("qwen3", tmp_path)
    files = model_files(tmp_path)
    model = load_model(files, "cpu", torch.float32)
    runner = PagedRunner(model, files.config, num_seqs=1, kv_dtype=torch.float8_e4m3fn)
    prompt = [3, 44, 5, 19, 77, 8, 100]
    logits = runner.step([prompt])
    ref = hf_logits(hf_model, prompt)
    assert (logits - ref).abs().max() / ref.abs().max() < 0.1
    assert (logits - ref).abs().max() > 0  # the float8 round trip did happen
    assert runner.cache.k_caches[0].dtype == torch.float8_e4m3fn


def test_gemma3_attention_softcap(tmp_path):
    """transformers' Gemma 3 leaves attn_logit_softcapping unused, but its eager attention takes a
    `softcap` argument passed through the forward call: that is the reference here."""
    hf_model = make_tiny_model("gemma3", tmp_path)
    files = model_files(tmp_path)
    config = {**files.config, "attn_logit_softcapping": 0.5}
    model = load_model(dataclasses.replace(files, config=config), "cpu", torch.float32)
    prompt = [3, 44, 5, 19, 77, 8, 100, 9, 10]
    ours = PagedRunner(model, config, num_seqs=1).step([prompt])
    with torch.no_grad():
        ref = hf_model(torch.tensor([prompt]), softcap=0.5).logits[0]
        uncapped = hf_model(torch.tensor([prompt])).logits[0]
    assert (ref - uncapped).abs().max() > 0.1
    assert_close(ours, ref)


CONFIG_FEATURES = {  # checkpoint options beyond the variants above, each on the family that ships it
    "llama_head_dim": ("LlamaConfig", dict(head_dim=32)),  # q width 128 against a hidden size of 64
    "llama_linear_rope": ("LlamaConfig", dict(rope_parameters=dict(rope_type="linear", factor=2.0, rope_theta=1e4))),
    "llama_yarn_rope": (
        "LlamaConfig",
        dict(rope_parameters=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=16, rope_theta=1e4)),
    ),
    "qwen2_window_layers": ("Qwen2Config", dict(use_sliding_window=True, sliding_window=4, max_window_layers=1)),
    "qwen3_attention_bias": ("Qwen3Config", dict(head_dim=32, attention_bias=True)),
    "mistral_head_dim": ("MistralConfig", dict(head_dim=24, sliding_window=None)),
    "phi3_full_rotary": ("Phi3Config", dict(pad_token_id=0)),
    "phi3_sliding_window": ("Phi3Config", dict(pad_token_id=0, sliding_window=5)),
    # real Gemma 3 configs leave the final soft cap null (the variant sets one)
    "gemma3_no_final_softcap": (VARIANTS["gemma3"][0], {**VARIANTS["gemma3"][1], "final_logit_softcapping": None}),
}


@pytest.mark.parametrize("feature", sorted(CONFIG_FEATURES))
def test_config_features_match_hf(feature, tmp_path, monkeypatch):
    """Options real checkpoints set, one at a time: prefill and greedy decode (including a sequence
    alone, whose steps take the batch-1 products) against transformers."""
    from fixtures import tiny_models

    monkeypatch.setitem(tiny_models.VARIANTS, feature, CONFIG_FEATURES[feature])
    check_prefill_and_greedy_decode(feature, tmp_path / "two")
    check_prefill_and_greedy_decode(feature, tmp_path / "one", lengths=(9,))

"""Each architecture on the GPU (Triton kernels, float32) against Hugging Face transformers on the CPU.

The same ragged prefill and greedy decode as test_models_hf_parity, with the model and its paged
cache on the GPU. Tolerance 2e-3 of the logit scale: the Triton attention's dot products run in
TF32 there.
"""

import pytest
import torch
from fixtures.model_files import model_files
from fixtures.paged import PagedRunner
from fixtures.tiny_models import VARIANTS, make_tiny_model
from test_models_hf_parity import hf_logits

from max_pipelines.weights.model_loader import load_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    err = (ours.cpu() - ref).abs().max() / ref.abs().max()
    assert err < 2e-3, f"relative error {err:.2e}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpu_matches_hf(variant, tmp_path):
    hf_model = make_tiny_model(variant, tmp_path)
    files = model_files(tmp_path)
    model = load_model(files, "cuda", torch.float32)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 128, (n,), generator=g).tolist() for n in (11, 5)]
    runner = PagedRunner(model, files.config, num_seqs=2)
    logits = runner.step(prompts)
    assert logits.is_cuda
    assert_close(logits[:11], hf_logits(hf_model, prompts[0]))
    assert_close(logits[11:], hf_logits(hf_model, prompts[1]))
    seqs = [list(p) for p in prompts]
    last = torch.stack([logits[10], logits[15]])
    for _ in range(6):
        next_ids = last.argmax(-1).tolist()
        for seq, tok in zip(seqs, next_ids):
            seq.append(tok)
        last = runner.step([[t] for t in next_ids])
        for i, seq in enumerate(seqs):
            assert_close(last[i], hf_logits(hf_model, seq)[-1])

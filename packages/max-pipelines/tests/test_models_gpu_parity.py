"""Each architecture on the GPU (Triton kernels, float32) against Hugging Face transformers on the CPU.

The same ragged prefill and greedy decode as test_models_hf_parity, with the model and its paged
cache on the GPU. Tolerance 2e-3 of the logit scale: the Triton attention's dot products run in
TF32 there.
"""

import pytest
import torch
from fixtures.tiny_models import VARIANTS
from test_models_hf_parity import check_prefill_and_greedy_decode

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gpu_matches_hf(variant, tmp_path):
    check_prefill_and_greedy_decode(variant, tmp_path, device="cuda", tol=2e-3)


@pytest.mark.parametrize("variant", ["llama3_tied", "qwen3", "phi3"])
def test_gpu_batch_one_kernels_match_hf(variant, tmp_path):
    """One sequence decoding with the kernels of captured steps (`graph_step`, run eagerly here): the
    products that fuse the norms, residual adds, RoPE and the KV-cache write (see decoder.py)."""
    from max_kernels.dispatch import graph_step

    with graph_step():
        check_prefill_and_greedy_decode(variant, tmp_path, device="cuda", tol=2e-3, lengths=(9,))

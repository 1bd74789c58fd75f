"""The GPU code path on the CPU: other test modules rerun with every op through its Triton kernel,
executed by Triton's interpreter (MAX_TRITON_ON_CPU=1, TRITON_INTERPRET=1; a subprocess, since the
interpreter must be chosen before any kernel is defined). They compare each architecture with
transformers (prefill, decode, chunked prefill, sliding windows, float8 KV, GGUF blocks through the
quantized matmul kernels), the engine's decode loops (multi-step, overlap scheduler, device graphs over
padded static inputs) with transformers' greedy tokens, and check that steps queue without host reads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MODULE_GROUPS = {  # subprocesses of similar length, so parallel workers share them
    "models": ["test_models_hf_parity.py"],
    "gguf": ["test_weights_gguf.py"],
    "engine": ["test_engine_multistep.py", "test_engine_overlap.py", "test_engine_host_syncs.py"],
    "graphs": ["test_engine_device_graphs.py"],
}


@pytest.mark.parametrize("group", sorted(MODULE_GROUPS))
def test_modules_pass_with_the_triton_kernels(group):
    env = dict(os.environ, TRITON_INTERPRET="1", MAX_TRITON_ON_CPU="1", MAX_NATIVE_CPU="0")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-k", "not native",
           *(str(HERE / m) for m in MODULE_GROUPS[group])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE.parents[2], timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout.splitlines()[-1] and "failed" not in proc.stdout.splitlines()[-1]

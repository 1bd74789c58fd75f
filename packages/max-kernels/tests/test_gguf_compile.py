"""The GGUF and sampling kernels compile for an sm_90 GPU (Triton's own ptxas, no GPU needed), and
dequantize compiles without fused multiply-adds, which would break bit-identity with gguf-py.

The interpreter, which the other tests use, cannot compile; this runs in a child process without it.
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

SCRIPT = r"""
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from max_kernels.bitmask import _bitmask_kernel
from max_kernels.gguf.formats import BLOCK_GEOMETRY, GGMLType
from max_kernels.gguf.kernels import _dequantize_kernel
from max_kernels.gguf.linear_triton import _gemm_kernel, _gemv_kernel
from max_kernels.penalties import _penalties_kernel
from max_kernels.sampling import _sample_kernel

TARGET = GPUTarget("cuda", 90, 32)


def build(kernel, types, constants, **options):
    signature = {name: types.get(name, "constexpr") for name in kernel.arg_names}
    return triton.compile(ASTSource(kernel, signature, constants), target=TARGET, options=options)


ints = dict.fromkeys(["vocab", "stride_row", "stride_logits", "stride_counts", "stride_prompt", "stride_mask",
                      "n_blocks", "M", "N", "K", "w_row_bytes", "stride_xm", "k_per_split"], "i32")
build(_sample_kernel, {**ints, "logits_ptr": "*bf16", "temperature_ptr": "*fp32", "top_k_ptr": "*i64",
      "top_p_ptr": "*fp32", "min_p_ptr": "*fp32", "keys_ptr": "*i32", "out_ptr": "*i64"}, {"BLOCK": 4096})
build(_penalties_kernel, {**ints, "logits_ptr": "*fp32", "counts_ptr": "*i32", "prompt_ptr": "*u8",
      "frequency_ptr": "*fp32", "presence_ptr": "*fp32", "repetition_ptr": "*fp32"}, {"BLOCK": 1024})
build(_bitmask_kernel, {**ints, "logits_ptr": "*fp32", "bitmask_ptr": "*i32"}, {"BLOCK": 1024})
def geometry(qtype):
    values, size = BLOCK_GEOMETRY[GGMLType(qtype)]
    return {"QTYPE": qtype, "BS": values, "TS": size}


for qtype, blocks in ((3, 32), (12, 4)):  # Q4_1 and Q4_K: the formats with a multiply then an add
    k = build(_dequantize_kernel, {**ints, "raw_ptr": "*u8", "out_ptr": "*fp32"},
              {**geometry(qtype), "BLOCKS": blocks}, enable_fp_fusion=False)
    assert "fma.rn" not in k.asm["ptx"], qtype
linear = {**ints, "x_ptr": "*bf16", "w_ptr": "*u8", "bias_ptr": "*bf16", "out_ptr": "*bf16"}
for qtype, block_m, blocks in ((3, 1, 8), (8, 8, 1), (12, 1, 1), (12, 8, 1), (14, 1, 1)):
    build(_gemv_kernel, {**linear, "out_ptr": "*fp32" if block_m > 1 else "*bf16"},
          {**geometry(qtype), "HAS_BIAS": block_m == 1, "PARTIAL": block_m > 1, "BLOCK_M": block_m,
           "BLOCK_N": 16, "BLOCKS": blocks})
for qtype in (3, 8, 12):
    build(_gemm_kernel, linear,
          {**geometry(qtype), "HAS_BIAS": True, "IEEE": False, "BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 64})
build(_gemm_kernel, {**linear, "x_ptr": "*fp32", "out_ptr": "*fp32"},
      {**geometry(12), "HAS_BIAS": False, "IEEE": True, "BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 64})
print("compiled")
"""


def test_kernels_compile_for_sm90():
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]

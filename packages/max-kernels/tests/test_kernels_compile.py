"""The GGUF, sampling and batch-1 decode kernels compile for an sm_90 GPU (Triton's own ptxas, no GPU
needed); dequantize compiles without fused multiply-adds, which would break bit-identity with gguf-py;
the matrix-vector kernels (norm read in, residual added out, gated activation, the QKV product with
RoPE and the cache write) hold a `griddepcontrol.wait` exactly when built for programmatic dependent
launch; the RoPE + KV-cache kernels build for bfloat16 and float8 caches.

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
from max_kernels.gemv import _gemv_kernel as _float_gemv_kernel
from max_kernels.gguf.formats import BLOCK_GEOMETRY, GGMLType
from max_kernels.gguf.kernels import _dequantize_kernel
from max_kernels.gguf.linear_triton import _gemm_kernel, _gemv_kernel
from max_kernels.penalties import _penalties_kernel
from max_kernels.qkv_rope import _qkv_rope_store_kernel
from max_kernels.rope_store import _rope_kv_store_kernel
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
pointers = ["x_ptr", "w_ptr", "b_ptr", "out_ptr", "res_ptr", "norm_w_ptr"]
gemv = {**dict.fromkeys(pointers, "*bf16"), **dict.fromkeys(["N", "K", "stride_w", "UP_OFFSET"], "i32"), "eps": "fp32"}
for norm_in, res_out, act, pdl in ((True, False, 1, False), (False, True, 0, False), (True, False, 0, True),
                                   (False, True, 0, True), (False, False, 2, True)):
    k = build(_float_gemv_kernel, gemv, {"HAS_BIAS": res_out, "ACT": act, "NORM_IN": norm_in, "RES_OUT": res_out,
              "EVEN_K": True, "BLOCK_N": 16, "BLOCK_K": 512, "USE_PDL": pdl}, num_warps=4, num_stages=3, **({"launch_pdl": True} if pdl else {}))
    assert ("griddepcontrol.wait" in k.asm["ptx"]) == pdl, (norm_in, res_out, act, pdl)

rope = {**dict.fromkeys(["q_ptr", "k_ptr", "v_ptr", "q_out_ptr"], "*bf16"), "pos_ptr": "*i64",
        "cos_sin_ptr": "*fp32", "slot_ptr": "*i64", "k_scale_ptr": "*fp32", "v_scale_ptr": "*fp32"}
for cache, fp8 in (("*bf16", False), ("*fp8e4nv", True)):
    names = [n for n in _rope_kv_store_kernel.arg_names if n.endswith("stride_t") or n.endswith("stride_h")
             or n.startswith(("kc_", "vc_")) or n in ("n_q_heads", "n_kv_heads", "cos_sin_stride", "page_size",
                                                      "head_dim")]
    build(_rope_kv_store_kernel, {**rope, "k_cache_ptr": cache, "v_cache_ptr": cache, **dict.fromkeys(names, "i32")},
          {"HALF": 64, "NEOX": True, "FP8": fp8, "BLOCK_HQ": 32, "BLOCK_HK": 8, "BLOCK_R": 64, "BLOCK_D": 0,
           "BLOCK_V": 128}, num_warps=4)
qkv = {"x_ptr": "*bf16", "w_ptr": "*bf16", "b_ptr": "*bf16", "norm_w_ptr": "*bf16", "pos_ptr": "*i64", "cos_sin_ptr": "*fp32", "slot_ptr": "*i64", "q_out_ptr": "*bf16", "k_scale_ptr": "*fp32",
       "v_scale_ptr": "*fp32", "eps": "fp32", "K": "i32"}
qkv.update({n: "i32" for n in _qkv_rope_store_kernel.arg_names if n not in qkv and n.islower() and "cache" not in n})
for cache, fp8, pdl in (("*bf16", False, True), ("*fp8e4nv", True, False)):
    k = build(_qkv_rope_store_kernel, {**qkv, "k_cache_ptr": cache, "v_cache_ptr": cache, "cos_sin_stride": "i32"},
              {"HALF": 64, "HAS_BIAS": True, "NORM_IN": True, "FP8": fp8, "EVEN_K": True, "BLOCK_N": 8,
               "BLOCK_K": 512, "USE_PDL": pdl},
              num_warps=4, num_stages=3, **({"launch_pdl": True} if pdl else {}))
    assert ("griddepcontrol.wait" in k.asm["ptx"]) == pdl
print("compiled")
"""


def test_kernels_compile_for_sm90():
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]

"""The batch-1 decode kernels compile for an sm_90 GPU (Triton's own ptxas, no GPU needed): the
matrix-vector kernel with the norm read in, the residual added out, the gated activation and
programmatic dependent launch, and the RoPE + KV-cache kernel for bfloat16 and float8 caches.

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

from max_kernels.gemv import PARTIAL_ROWS, _gemv_kernel
from max_kernels.rope_kv_store import _rope_kv_store_kernel

TARGET = GPUTarget("cuda", 90, 32)


def build(kernel, types, constants, **options):
    signature = {name: types.get(name, "constexpr") for name in kernel.arg_names}
    return triton.compile(ASTSource(kernel, signature, constants), target=TARGET, options=options)


pointers = ["x_ptr", "w_ptr", "b_ptr", "out_ptr", "res_ptr", "norm_w_ptr"]
gemv = {**dict.fromkeys(pointers, "*bf16"), "part_in_ptr": "*fp32", "part_out_ptr": "*fp32",
        **dict.fromkeys(["N", "K", "stride_w", "UP_OFFSET"], "i32"), "eps": "fp32"}
for norm_in, res_out, act, pdl in ((True, False, 1, False), (False, True, 0, False), (True, False, 0, True),
                                   (False, True, 0, True), (False, False, 2, True)):
    k = build(_gemv_kernel, gemv, {"HAS_BIAS": res_out, "ACT": act, "NORM_IN": norm_in, "RES_OUT": res_out,
              "EVEN_K": True, "BLOCK_N": 16, "BLOCK_K": 512, "BLOCK_P": 256, "PARTIAL_ROWS": PARTIAL_ROWS,
              "USE_PDL": pdl}, num_warps=4, num_stages=3, **({"launch_pdl": True} if pdl else {}))
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
print("compiled")
"""


def test_decode_kernels_compile_for_sm90():
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]

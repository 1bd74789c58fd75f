"""max_kernels: Triton kernels with PyTorch twins behind one dispatch (see dispatch.py)."""

from max_kernels.activations import gelu_tanh_and_mul, silu_and_mul
from max_kernels.attention import paged_attention
from max_kernels.attention_ref import DecodePlan
from max_kernels.dispatch import kernel_preferences, set_kernel_preferences, use_triton, use_vendor_blas
from max_kernels.fp8 import dequantize_fp8, quantize_fp8
from max_kernels.gemv import PendingNorm, act_and_mul, gated_linear, linear, linear_add
from max_kernels.kv_store import store_kvcache
from max_kernels.norms import layer_norm, rms_norm
from max_kernels.qkv_rope import qkv_rope_store
from max_kernels.rope_store import rope_kv_store
from max_kernels.rotary import apply_rope, longrope_positions, rope_cos_sin_cache, rotate

__all__ = [
    "DecodePlan",
    "PendingNorm",
    "act_and_mul",
    "apply_rope",
    "dequantize_fp8",
    "gated_linear",
    "gelu_tanh_and_mul",
    "kernel_preferences",
    "layer_norm",
    "linear",
    "linear_add",
    "longrope_positions",
    "paged_attention",
    "qkv_rope_store",
    "quantize_fp8",
    "rms_norm",
    "rope_cos_sin_cache",
    "rope_kv_store",
    "rotate",
    "set_kernel_preferences",
    "silu_and_mul",
    "store_kvcache",
    "use_triton",
    "use_vendor_blas",
]

"""GGUF weights: dequantize to float32 and multiply by packed weights (see `formats` for the layouts)."""

from max_kernels.gguf.dequantize import dequantize, dequantize_ref
from max_kernels.gguf.formats import GGMLType, as_ggml_type, packed_bytes, row_bytes
from max_kernels.gguf.kernels import dequantize_triton
from max_kernels.gguf.linear import QuantizedWeight, quantized_linear, quantized_linear_ref
from max_kernels.gguf.linear_triton import quantized_linear_triton

__all__ = [
    "GGMLType",
    "QuantizedWeight",
    "as_ggml_type",
    "dequantize",
    "dequantize_ref",
    "dequantize_triton",
    "packed_bytes",
    "quantized_linear",
    "quantized_linear_ref",
    "quantized_linear_triton",
    "row_bytes",
]

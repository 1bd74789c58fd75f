"""The native CPU decode step: decode.c, its build (native.py), its weight storage (packed.py) and its
Python face (decoder.py)."""

from max_kernels.cpu.decoder import KV_DTYPES, DecoderLayerWeights, DecoderShape, NativeDecodeStep
from max_kernels.cpu.packed import SUPPORTED_TYPES, PackedMatrix
from max_kernels.cpu.native import library, start_build

__all__ = ["KV_DTYPES", "SUPPORTED_TYPES", "DecoderLayerWeights", "DecoderShape", "NativeDecodeStep", "PackedMatrix", "library", "start_build"]

"""The native CPU decode step: decode.c, its build (native.py) and its Python face (decoder.py)."""

from max_kernels.cpu.decoder import DecoderLayerWeights, DecoderShape, NativeDecodeStep, PackedMatrix
from max_kernels.cpu.native import library, start_build

__all__ = ["DecoderLayerWeights", "DecoderShape", "NativeDecodeStep", "PackedMatrix", "library", "start_build"]

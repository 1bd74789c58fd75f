"""`QuantizedWeight` and `quantized_linear`: y = x @ dequantize(W).T + bias without a float copy of W
on the GPU, and through the fastest accurate PyTorch path on the CPU.

CPU paths (`QuantizedWeight.cpu_path`), chosen once when the weight is built and cached with it.
Measured with `tools/bench_kernels_gguf_sampling.py --cpu` on a 2-core AVX512-BF16 CPU, one thread,
batch 1, float32 activations in and out (ms; SmolLM2-135M shapes out x in, Q4_1 weights):

    shape        float32  bfloat16  int4pack
    576x576       0.021    0.025     0.015
    1536x576      0.053    0.038     0.029
    576x1536      0.049    0.040     0.029
    49152x576     9.2      1.6       0.78     (Q8_0, the model's output layer: 9.4 / 1.8 / -)

- "int4pack" (default for Q4_0, Q4_1, Q4_K when `out` is a multiple of 16): the 4-bit codes repacked
  as an `Int4Weight` (see `max_kernels.int4pack`); activations run in bfloat16.
- "bfloat16" (default for Q8_0, the Q5, IQ4 and other K types, BF16 and the other Q4 shapes): dequantized
  once to bfloat16.
- "float32" (default for F32, F16): dequantized once to float32, the exact path (about 4x the memory
  of the packed codes for Q8_0, 8x for Q4; slower).
The bfloat16 paths stay within 1e-2 of the output scale (max |error| / max |y|, measured ~4e-3);
float32 within 1e-5. Off the CPU without Triton, the weight is dequantized on each call.
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from max_kernels.dispatch import KernelPreferences, kernel_preferences, use_triton
from max_kernels.gguf.dequantize import dequantize, f16_fields, q4_k_scales
from max_kernels.gguf.formats import FLOAT_TYPES, GGMLType, as_ggml_type, packed_bytes, row_bytes
from max_kernels.gguf.kernels import dequantize_triton
from max_kernels.gguf.linear_triton import GEMV_MAX_M, quantized_linear_triton
from max_kernels.int4pack import Int4Weight

CPU_PATHS = ("auto", "int4pack", "bfloat16", "float32")
_INT4_TYPES = (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q4_K)


@dataclass(eq=False)
class QuantizedWeight:
    """A GGUF weight of logical shape (out, in); `data` holds its blocks, one row of bytes per output."""

    qtype: GGMLType
    data: torch.Tensor
    shape: tuple[int, int]
    cpu_path: str = "auto"
    _cpu_weight: torch.Tensor | Int4Weight | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.qtype = as_ggml_type(self.qtype)
        self.shape = tuple(int(s) for s in self.shape)
        if len(self.shape) != 2:
            raise ValueError(f"a quantized weight is 2-D (out, in), got shape {self.shape}")
        expected = packed_bytes(self.qtype, self.shape)
        if self.data.dtype != torch.uint8 or self.data.numel() != expected:
            raise ValueError(
                f"{self.qtype.name} weight {self.shape} needs {expected} uint8 bytes, "
                f"got {self.data.numel()} of {self.data.dtype}"
            )
        self.data = self.data.reshape(self.shape[0], row_bytes(self.qtype, self.shape[1]))
        if self.cpu_path not in CPU_PATHS:
            raise ValueError(f"cpu_path must be one of {CPU_PATHS}, got {self.cpu_path!r}")
        if self.cpu_path == "auto":
            self.cpu_path = self._default_cpu_path()
        if self.data.device.type == "cpu":
            self._pack_for_cpu()

    def _default_cpu_path(self) -> str:
        if self.qtype in _INT4_TYPES and self.shape[0] % 16 == 0:
            return "int4pack"
        if self.qtype in (GGMLType.F32, GGMLType.F16):
            return "float32"
        return "bfloat16"

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.data, self.qtype, self.shape)

    def _pack_for_cpu(self) -> None:
        if self.cpu_path == "int4pack":
            if self.qtype not in _INT4_TYPES or self.shape[0] % 16:
                raise ValueError(
                    f"cpu_path 'int4pack' needs Q4_0/Q4_1/Q4_K with out % 16 == 0, got {self.qtype.name} {self.shape}"
                )
            self._cpu_weight = Int4Weight.pack(*int4_groups(self.data, self.qtype, self.shape))
        else:
            dtype = torch.float32 if self.cpu_path == "float32" else torch.bfloat16
            self._cpu_weight = self.dequantize().to(dtype)


def int4_groups(data: torch.Tensor, qtype: GGMLType, shape: tuple[int, int]):
    """4-bit codes [out, in] (int32) and per-32-value group scale and zero [out, in / 32] (float32)
    such that w = (q - 8) * scale + zero, for Q4_0, Q4_1 and Q4_K."""
    out, cols = shape
    if qtype == GGMLType.Q4_K:
        b = data.reshape(-1, 144)
        d = f16_fields(b[:, 0:2])
        dmin = f16_fields(b[:, 2:4])
        sc, mn = q4_k_scales(b[:, 4:16])
        scale, offset = d * sc.float(), -(dmin * mn.float())
        qs = b[:, 16:].reshape(-1, 4, 1, 32)
        codes = torch.cat([qs & 0x0F, qs >> 4], dim=2)
    else:
        b = data.reshape(-1, 18 if qtype == GGMLType.Q4_0 else 20)
        header = 2 if qtype == GGMLType.Q4_0 else 4
        scale = f16_fields(b[:, 0:2])
        offset = -8 * scale if qtype == GGMLType.Q4_0 else f16_fields(b[:, 2:4])
        qs = b[:, header:]
        codes = torch.cat([qs & 0x0F, qs >> 4], dim=-1)
    groups = cols // 32
    scale = scale.reshape(out, groups)
    zero = offset.reshape(out, groups) + 8 * scale
    return codes.reshape(out, cols).to(torch.int32), scale, zero


def _cuda_path(m: int, prefs: KernelPreferences) -> str:
    """The CUDA implementation for `m` activation rows: with `--use-vendor-blas`, "vendor_blas" (the
    Triton dequantize kernel, then torch's matmul); otherwise the fused Triton "gemv" (small m) or "gemm"."""
    if prefs.vendor_blas:
        return "vendor_blas"
    return "gemv" if m <= GEMV_MAX_M else "gemm"


def quantized_linear(x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y[..., out] = x[..., in] @ W.T (+ bias), in x's dtype."""
    if use_triton(x) and use_triton(qweight.data) and qweight.qtype not in FLOAT_TYPES:
        m = x.numel() // qweight.shape[1]
        if _cuda_path(m, kernel_preferences()) == "vendor_blas":
            return quantized_linear_vendor(x, qweight, bias)
        return quantized_linear_triton(x, qweight, bias)
    return quantized_linear_ref(x, qweight, bias)


def quantized_linear_vendor(
    x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Dequantize with the Triton kernel into x's dtype, then multiply with the vendor BLAS."""
    w = dequantize_triton(qweight.data, qweight.qtype, qweight.shape).to(x.dtype)
    return F.linear(x, w, None if bias is None else bias.to(x.dtype))


def quantized_linear_ref(x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """PyTorch twin: the cached CPU path, or a per-call dequantize on other devices."""
    if x.device.type != "cpu":
        return F.linear(x, qweight.dequantize().to(x.dtype), None if bias is None else bias.to(x.dtype))
    if qweight._cpu_weight is None:
        qweight._pack_for_cpu()
    flat = x.dim() == 2  # the engine's flat token batches: no reshapes (each costs a call per layer)
    x2 = x if flat else x.reshape(-1, x.shape[-1])
    if qweight.cpu_path == "int4pack":
        y = qweight._cpu_weight.matmul(x2)
    else:
        y = F.linear(x2.to(qweight._cpu_weight.dtype), qweight._cpu_weight)
    y = y.to(x.dtype)
    if bias is not None:
        y = y + bias.to(x.dtype)
    return y if flat else y.reshape(*x.shape[:-1], qweight.shape[0])

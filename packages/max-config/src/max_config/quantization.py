"""Detect the quantization encoding of weight files without reading the weights.

Sources, from cheapest: the file name (`model.Q4_K_M.gguf`), the safetensors JSON header (the dtype
held by most 2-D tensors) and the GGUF tensor table (the type held by most 2-D weight tensors).
"""

import json
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Any

from .enums import QuantizationEncoding as QE
from .errors import ConfigError

# File-name markers, checked in this order (bf16 before f16).
_NAME_MARKERS: tuple[tuple[str, QE], ...] = (
    ("f32|fp32|float32", QE.float32),
    ("bf16|bfloat16", QE.bfloat16),
    ("f16|fp16|float16", QE.float16),
    ("q4_k(?:_[sml])?", QE.q4_k),
    ("q5_k(?:_[sm])?", QE.q5_k),
    ("q3_k(?:_[sml])?", QE.q3_k),
    ("q2_k(?:_s)?", QE.q2_k),
    ("q4_0", QE.q4_0),
    ("q4_1", QE.q4_1),
    ("q5_0", QE.q5_0),
    ("q5_1", QE.q5_1),
    ("q8_0", QE.q8_0),
    ("q6_k", QE.q6_k),
    ("iq4_nl", QE.iq4_nl),
    ("iq4_xs", QE.iq4_xs),
    ("gptq", QE.gptq),
    ("f8|fp8|float8(?:_e4m3fn)?", QE.float8_e4m3fn),
    ("f4|fp4|nvfp4", QE.float4_e2m1fnx2),
)

_GGML_TYPES = {
    "F32": QE.float32,
    "F16": QE.float16,
    "BF16": QE.bfloat16,
    "Q4_0": QE.q4_0,
    "Q4_1": QE.q4_1,
    "Q5_0": QE.q5_0,
    "Q5_1": QE.q5_1,
    "Q8_0": QE.q8_0,
    "Q2_K": QE.q2_k,
    "Q3_K": QE.q3_k,
    "Q4_K": QE.q4_k,
    "Q5_K": QE.q5_k,
    "Q6_K": QE.q6_k,
    "IQ4_NL": QE.iq4_nl,
    "IQ4_XS": QE.iq4_xs,
}

_SAFETENSORS_DTYPES = {
    "F32": QE.float32,
    "BF16": QE.bfloat16,
    "F16": QE.float16,
    "F8_E4M3": QE.float8_e4m3fn,
    "U8": QE.float4_e2m1fnx2,
    "I32": QE.gptq,
}

_QUANT_METHODS = {"gptq": QE.gptq, "fp8": QE.float8_e4m3fn}

MAX_HEADER_BYTES = 100 * 2**20


def encoding_from_filename(path: str | Path) -> QE | None:
    name = Path(path).name.lower()
    for pattern, encoding in _NAME_MARKERS:
        if re.search(rf"(?:^|[._\-])(?:{pattern})(?:$|[._\-])", name):
            return encoding
    return None


def majority(counts: Counter, where: str) -> Any:
    if not counts:
        raise ConfigError(f"{where}: holds no 2-D weight tensors")
    return counts.most_common(1)[0][0]


def gguf_encoding(tensor_types: Counter, where: str) -> QE:
    """The encoding of a GGUF file from the counts of its 2-D weight tensors' GGML type names."""
    name = majority(tensor_types, where)
    if name not in _GGML_TYPES:
        known = ", ".join(sorted(_GGML_TYPES))
        raise ConfigError(f"{where}: GGUF tensor type {name} is not supported (supported: {known})")
    return _GGML_TYPES[name]


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (tensor names -> dtype, shape, offsets); no tensor data."""
    try:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > MAX_HEADER_BYTES:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise ConfigError(f"{path}: not a readable safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise ConfigError(f"{path}: not a readable safetensors file (header is not a mapping)")
    return header


def safetensors_encoding(files: tuple[Path, ...], config: dict[str, Any]) -> QE:
    """The encoding of safetensors weights: a declared quant method, else the majority 2-D dtype."""
    method = str((config.get("quantization_config") or {}).get("quant_method", "")).lower()
    if method in _QUANT_METHODS:
        return _QUANT_METHODS[method]
    counts: Counter = Counter()
    for path in files:
        for name, entry in read_safetensors_header(path).items():
            if name != "__metadata__" and isinstance(entry, dict) and len(entry.get("shape", ())) == 2:
                counts[entry.get("dtype")] += 1
    dtype = majority(counts, str(files[0].parent))
    if dtype not in _SAFETENSORS_DTYPES:
        raise ConfigError(f"{files[0].parent}: safetensors dtype {dtype} is not a supported weight encoding")
    return _SAFETENSORS_DTYPES[dtype]


def check_requested(requested: QE | None, available: QE, where: str) -> QE:
    """The encoding to run: the detected one, or the user's choice when the files allow it.

    Float safetensors may be cast to float32 or bfloat16; any other mismatch is an error.
    """
    if requested is None or requested == available:
        return available
    if available.is_float and requested in (QE.float32, QE.bfloat16):
        return requested
    raise ConfigError(
        f"--quantization-encoding {requested.value}: {where} holds {available.value} weights; "
        f"omit the flag or use --quantization-encoding {available.value}"
    )

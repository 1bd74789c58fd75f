"""Closed sets of choices used by the config groups."""

from enum import Enum


class QuantizationEncoding(str, Enum):
    """How the weights are stored."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    q4_0 = "q4_0"
    q4_1 = "q4_1"
    q5_0 = "q5_0"
    q5_1 = "q5_1"
    q8_0 = "q8_0"
    q2_k = "q2_k"
    q3_k = "q3_k"
    q4_k = "q4_k"
    q5_k = "q5_k"
    q6_k = "q6_k"
    iq4_nl = "iq4_nl"
    iq4_xs = "iq4_xs"
    float8_e4m3fn = "float8_e4m3fn"
    float4_e2m1fnx2 = "float4_e2m1fnx2"
    gptq = "gptq"

    @property
    def is_float(self) -> bool:
        return self in (QuantizationEncoding.float32, QuantizationEncoding.bfloat16, QuantizationEncoding.float16)

    @property
    def is_gguf_block(self) -> bool:
        return self.value.startswith(("q", "iq"))


class RopeType(str, Enum):
    none = "none"
    normal = "normal"
    neox = "neox"
    longrope = "longrope"
    yarn = "yarn"


class KVCacheFormat(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float8_e4m3fn = "float8_e4m3fn"


class KVConnectorType(str, Enum):
    null = "null"
    local = "local"
    tiered = "tiered"
    lmcache = "lmcache"
    dkv = "dkv"


class PipelineRole(str, Enum):
    prefill_and_decode = "prefill_and_decode"
    prefill_only = "prefill_only"
    decode_only = "decode_only"


class GPUProfiling(str, Enum):
    off = "off"
    on = "on"
    detailed = "detailed"


class SpeculativeMethod(str, Enum):
    standalone = "standalone"
    eagle = "eagle"
    mtp = "mtp"


class RejectionSamplingStrategy(str, Enum):
    greedy = "greedy"
    residual = "residual"
    typical_acceptance = "typical-acceptance"
    logit_comparison = "logit-comparison"

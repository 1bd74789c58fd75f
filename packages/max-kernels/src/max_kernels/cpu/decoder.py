"""`NativeDecodeStep`: the decode step of a Llama-shaped model through the native library (decode.c).

Holds the ctypes description of the model (pointers into torch tensors, which it keeps alive) and
the scratch buffers; each call runs all layers for a batch of requests that add one token each.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from max_kernels.gguf.dequantize import q6_k_parts
from max_kernels.gguf.formats import GGMLType
from max_kernels.gguf.linear import int4_groups

KV_DTYPES = (torch.float32, torch.bfloat16)
SUPPORTED_TYPES = (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.Q6_K)
_P = ctypes.c_void_p


class _QSeg(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("rows", ctypes.c_int), ("codes", _P), ("scale", _P), ("min", _P)]


MAX_SEGMENTS = 3


class _QMat(ctypes.Structure):
    _fields_ = [
        ("rows", ctypes.c_int), ("cols", ctypes.c_int), ("nseg", ctypes.c_int),
        ("seg", _QSeg * MAX_SEGMENTS), ("bias", _P),
    ]


class _Layer(ctypes.Structure):
    _fields_ = [
        ("norm_in", _P), ("norm_post", _P), ("q_norm", _P), ("k_norm", _P),
        ("norm_attn_out", _P), ("norm_mlp_out", _P), ("cos_sin", _P),
        ("qkv", _QMat), ("o", _QMat), ("gate_up", _QMat), ("down", _QMat),
        ("k_cache", _P), ("v_cache", _P), ("window", ctypes.c_int), ("gelu", ctypes.c_int),
    ]


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


_INTS = [
    "n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "inter", "vocab", "page_size", "rot_dim", "max_len", "kv_bf16"
]
_SCRATCH = ["res", "x", "qkv", "attn", "gu", "act", "h", "scores", "xq", "xd", "xs"]


class _Model(ctypes.Structure):
    _fields_ = (
        [(n, ctypes.c_int) for n in _INTS]
        + [("eps", ctypes.c_float), ("scale", ctypes.c_float), ("final_norm", _P)]
        + [("lm_head", _QMat), ("layers", ctypes.POINTER(_Layer)), ("max_batch", ctypes.c_int)]
        + [(n, _P) for n in _SCRATCH]
    )


@dataclass(eq=False)
class _Segment:
    """Rows in the library's storage: `bits`-bit codes (4: nibbles as Q4_0 lays them out; 8, 16: one
    integer per value) with float32 per-32 `scale` and optional `min`: w = code * scale + min."""

    bits: int
    rows: int
    codes: torch.Tensor
    scale: torch.Tensor
    min: torch.Tensor | None

    @classmethod
    def of(cls, qtype: GGMLType, data: torch.Tensor, rows: int, cols: int) -> _Segment:
        nb = cols // 32
        if qtype in (GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q4_K):  # w = (q - 8) * scale + zero
            q, scale, zero = int4_groups(data, qtype, (rows, cols))
            q = q.to(torch.uint8).reshape(rows, nb, 2, 16)
            return cls(4, rows, (q[:, :, 0] | (q[:, :, 1] << 4)).contiguous(), scale.contiguous(), (zero - 8 * scale).contiguous())
        blocks = data.reshape(rows, -1)
        if qtype == GGMLType.Q8_0:
            b = blocks.reshape(rows, nb, 34)
            scale = b[..., :2].contiguous().view(torch.float16).float().reshape(rows, nb)
            return cls(8, rows, b[..., 2:].contiguous(), scale, None)
        # Q6_K: the codes times their 16-value sub-block scales fit 16 bits; the super-block scale per 32
        q, sub, d = q6_k_parts(blocks.reshape(-1, 210))
        codes = (q.reshape(-1, 16, 16).to(torch.int16) * sub.to(torch.int16)[..., None]).reshape(rows, cols)
        return cls(16, rows, codes.contiguous(), d.expand(-1, 8).reshape(rows, nb).contiguous(), None)

    def struct(self) -> _QSeg:
        return _QSeg(self.bits, self.rows, self.codes.data_ptr(), self.scale.data_ptr(), _ptr(self.min))


@dataclass(eq=False)
class PackedMatrix:
    """A weight `[rows, cols]` as GGUF blocks: `parts` of (type, uint8 blocks `[rows_i, row bytes]`) stacked
    by rows, as a fused projection of a Q4_K_M file mixes types. Converted at build into the storage the
    library reads (see `_Segment`); the blocks themselves are not kept."""

    parts: list[tuple[GGMLType, torch.Tensor]]
    cols: int
    bias: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.parts) > MAX_SEGMENTS or self.cols % 32:
            raise ValueError(f"the native decode step takes up to {MAX_SEGMENTS} parts of whole 32-blocks")
        for qtype, _ in self.parts:
            if qtype not in SUPPORTED_TYPES:
                raise ValueError(f"the native decode step takes {', '.join(t.name for t in SUPPORTED_TYPES)}, got {qtype.name}")
        self.segments = [_Segment.of(q, d, d.shape[0], self.cols) for q, d in self.parts]
        self.rows = sum(seg.rows for seg in self.segments)
        self.parts = []
        self.bias = None if self.bias is None else self.bias.detach().float().contiguous()

    def struct(self) -> _QMat:
        segs = [seg.struct() for seg in self.segments] + [_QSeg()] * (MAX_SEGMENTS - len(self.segments))
        return _QMat(self.rows, self.cols, len(self.segments), (_QSeg * MAX_SEGMENTS)(*segs), _ptr(self.bias))


@dataclass
class DecoderLayerWeights:
    norm_in: torch.Tensor
    norm_post: torch.Tensor
    qkv: PackedMatrix  # rows: q heads, then k heads, then v heads
    o: PackedMatrix
    gate_up: PackedMatrix  # rows: gate, then up
    down: PackedMatrix
    k_cache: torch.Tensor  # float32 or bfloat16 [N, P, Hk, D]
    v_cache: torch.Tensor
    cos_sin: torch.Tensor  # this layer's RoPE table [max positions, rotary_dim]: cos, then sin
    q_norm: torch.Tensor | None = None  # [D]: RMSNorm of each q head before RoPE (Qwen3, Gemma 3)
    k_norm: torch.Tensor | None = None
    norm_attn_out: torch.Tensor | None = None  # [H]: RMSNorm of the attention output (Gemma 3)
    norm_mlp_out: torch.Tensor | None = None  # [H]: RMSNorm of the MLP output (Gemma 3)
    sliding_window: int | None = None
    gelu: bool = False  # GELU (tanh approximation) gating instead of SiLU

    def __post_init__(self) -> None:
        for name in ("norm_in", "norm_post", "q_norm", "k_norm", "norm_attn_out", "norm_mlp_out", "cos_sin"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.detach().float().contiguous())


@dataclass
class DecoderShape:
    hidden: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    page_size: int
    rotary_dim: int
    eps: float
    scale: float


def _check_layer(layer: DecoderLayerWeights, s: DecoderShape) -> None:
    """The library trusts every size: check them all here."""
    q, kv = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
    mats = {
        "qkv": (layer.qkv, q + 2 * kv, s.hidden),
        "o": (layer.o, s.hidden, q),
        "gate_up": (layer.gate_up, 2 * s.intermediate, s.hidden),
        "down": (layer.down, s.hidden, s.intermediate),
    }
    for name, (m, rows, cols) in mats.items():
        if (m.rows, m.cols) != (rows, cols):
            raise ValueError(f"{name} is {m.rows}x{m.cols}, expected {rows}x{cols}")
    for cache in (layer.k_cache, layer.v_cache):
        if cache.dtype not in KV_DTYPES or not cache.is_contiguous() or tuple(cache.shape[1:]) != (
            s.page_size, s.num_kv_heads, s.head_dim
        ):
            raise ValueError("the native decode step needs contiguous float32 or bfloat16 KV caches [N, P, Hk, D]")
    if layer.cos_sin.shape[1] != s.rotary_dim or s.rotary_dim % 2 or s.rotary_dim > s.head_dim:
        raise ValueError(f"RoPE table of width {layer.cos_sin.shape[1]} for rotary size {s.rotary_dim}")
    norms = [(layer.norm_in, s.hidden), (layer.norm_post, s.hidden), (layer.norm_attn_out, s.hidden),
             (layer.norm_mlp_out, s.hidden), (layer.q_norm, s.head_dim), (layer.k_norm, s.head_dim)]
    if any(w is not None and w.numel() != n for w, n in norms):
        raise ValueError("a norm weight of the wrong size")


class NativeDecodeStep:
    """Decode steps of up to `max_batch` requests with keys up to `max_len` long."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        shape: DecoderShape,
        layers: list[DecoderLayerWeights],
        final_norm: torch.Tensor,
        lm_head: PackedMatrix,
        max_batch: int,
        max_len: int,
    ):
        if len({c.dtype for layer in layers for c in (layer.k_cache, layer.v_cache)}) > 1:
            raise ValueError("the KV caches of all layers need one dtype")
        for layer in layers:
            _check_layer(layer, shape)
            if layer.cos_sin.shape[0] < max_len:
                raise ValueError(f"RoPE table of {layer.cos_sin.shape[0]} positions for keys up to {max_len} long")
        if lm_head.cols != shape.hidden or lm_head.rows != shape.vocab:
            raise ValueError(f"LM head {lm_head.rows}x{lm_head.cols}, expected {shape.vocab}x{shape.hidden}")
        s = shape
        self.lib, self.shape, self.max_batch = lib, shape, max_batch
        kmax = max(s.hidden, s.num_heads * s.head_dim, s.intermediate)
        f32 = dict(dtype=torch.float32)
        self._scratch = {
            "res": torch.zeros(max_batch, s.hidden, **f32),
            "x": torch.zeros(max_batch, s.hidden, **f32),
            "qkv": torch.zeros(max_batch, (s.num_heads + 2 * s.num_kv_heads) * s.head_dim, **f32),
            "attn": torch.zeros(max_batch, s.num_heads * s.head_dim, **f32),
            "gu": torch.zeros(max_batch, 2 * s.intermediate, **f32),
            "act": torch.zeros(max_batch, s.intermediate, **f32),
            "h": torch.zeros(max_batch, s.hidden, **f32),
            "scores": torch.zeros(max_batch * s.num_heads, max_len, **f32),
            "xq": torch.zeros(max_batch, kmax, dtype=torch.int16),
            "xd": torch.zeros(max_batch, kmax // 32, **f32),
            "xs": torch.zeros(max_batch, kmax // 32, **f32),
        }
        self._keep = (layers, final_norm.float().contiguous(), lm_head)
        self._layers = (_Layer * len(layers))(*[
            _Layer(
                l.norm_in.data_ptr(), l.norm_post.data_ptr(), _ptr(l.q_norm), _ptr(l.k_norm),
                _ptr(l.norm_attn_out), _ptr(l.norm_mlp_out), l.cos_sin.data_ptr(),
                l.qkv.struct(), l.o.struct(), l.gate_up.struct(), l.down.struct(),
                l.k_cache.data_ptr(), l.v_cache.data_ptr(), l.sliding_window or 0, int(l.gelu),
            )
            for l in layers
        ])
        ints = dict(
            n_layers=len(layers), hidden=s.hidden, n_heads=s.num_heads, n_kv_heads=s.num_kv_heads, head_dim=s.head_dim,
            inter=s.intermediate, vocab=s.vocab, page_size=s.page_size, rot_dim=s.rotary_dim, max_len=max_len,
            kv_bf16=int(bool(layers) and layers[0].k_cache.dtype == torch.bfloat16),
        )
        self._model = _Model(
            **ints, eps=s.eps, scale=s.scale, final_norm=self._keep[1].data_ptr(),
            lm_head=lm_head.struct(), layers=self._layers, max_batch=max_batch,
            **{n: t.data_ptr() for n, t in self._scratch.items()},
        )
        self.max_len = max_len

    def layers(
        self, emb: torch.Tensor, seq_lens: torch.Tensor, slots: torch.Tensor, block_tables: torch.Tensor
    ) -> torch.Tensor:
        """`emb [B, hidden]` float32 embeddings of the new tokens -> final normed hidden states `[B, hidden]`.

        `seq_lens [B]` int32 (the new token included), `slots [B]` int64, `block_tables [B, M]` int32."""
        b = emb.shape[0]
        if b > self.max_batch or int(seq_lens.max()) > self.max_len:
            raise ValueError(f"batch {b} or length {int(seq_lens.max())} beyond the native step's {self.max_batch} / {self.max_len}")
        emb = emb.float().contiguous()
        seq_lens = seq_lens.to(torch.int32).contiguous()
        slots = slots.to(torch.int64).contiguous()
        tables = block_tables.to(torch.int32).contiguous()
        out = torch.empty(b, self.shape.hidden)
        self.lib.decode_layers(
            ctypes.byref(self._model), b, _P(emb.data_ptr()), _P(seq_lens.data_ptr()), _P(slots.data_ptr()),
            _P(tables.data_ptr()), tables.shape[1], _P(out.data_ptr()),
        )
        return out

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """`hidden [B, hidden]` -> float32 logits `[B, vocab]`."""
        hidden = hidden.float().contiguous()
        out = torch.empty(hidden.shape[0], self.shape.vocab)
        self.lib.lm_head(ctypes.byref(self._model), hidden.shape[0], _P(hidden.data_ptr()), _P(out.data_ptr()))
        return out

"""`NativeDecodeStep`: the decode step of a Llama-shaped model through the native library (decode.c).

Holds the ctypes description of the model (pointers into torch tensors, which it keeps alive) and
the scratch buffers; each call runs all layers for a batch of requests that add one token each.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from max_kernels.cpu.packed import PackedMatrix, QMatStruct, address

KV_DTYPES = (torch.float32, torch.bfloat16)
_P = ctypes.c_void_p


class _Layer(ctypes.Structure):
    _fields_ = [
        ("norm_in", _P), ("norm_post", _P), ("q_norm", _P), ("k_norm", _P),
        ("norm_attn_out", _P), ("norm_mlp_out", _P), ("cos_sin", _P),
        ("qkv", QMatStruct), ("o", QMatStruct), ("gate_up", QMatStruct), ("down", QMatStruct),
        ("k_cache", _P), ("v_cache", _P), ("window", ctypes.c_int), ("gelu", ctypes.c_int),
    ]


_INTS = [
    "n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "inter", "vocab", "page_size", "rot_dim", "max_len", "kv_bf16"
]
_SCRATCH = ["res", "x", "qkv", "attn", "gu", "act", "h", "scores", "xq", "xd", "xs"]


class _Model(ctypes.Structure):
    _fields_ = (
        [(n, ctypes.c_int) for n in _INTS]
        + [("eps", ctypes.c_float), ("scale", ctypes.c_float), ("final_norm", _P)]
        + [("lm_head", QMatStruct), ("layers", ctypes.POINTER(_Layer)), ("max_batch", ctypes.c_int)]
        + [(n, _P) for n in _SCRATCH]
    )


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
            "xs": torch.zeros(max_batch, kmax // 16, **f32),
        }
        self._keep = (layers, final_norm.float().contiguous(), lm_head)
        self._layers = (_Layer * len(layers))(*[
            _Layer(
                l.norm_in.data_ptr(), l.norm_post.data_ptr(), address(l.q_norm), address(l.k_norm),
                address(l.norm_attn_out), address(l.norm_mlp_out), l.cos_sin.data_ptr(),
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

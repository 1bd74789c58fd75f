"""Decode steps through the native CPU library (`max_kernels.cpu`) for the models it fits.

It fits Llama-shaped decoders (Llama, SmolLM2, Mistral with its sliding window, Qwen2 with its QKV
bias, Qwen3 with its q/k norms, Phi-3) and Gemma 3 (sub-block output norms, GELU, local and global
RoPE tables, soft-capped logits) whose projections are packed GGUF weights of types Q4_0, Q4_1,
Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS (mixed within a fused projection, as
K_M files have them), with a float32 or bfloat16 KV cache. The LM head reads the file's blocks of the
output (or tied embedding) table, or Q8_0 blocks of a float table, whose largest logits per row are
then recomputed from that table.
Anything else decodes in PyTorch.
"""

from __future__ import annotations

import torch
from max_kernels.cpu import (
    KV_DTYPES,
    SUPPORTED_TYPES,
    DecoderLayerWeights,
    DecoderShape,
    NativeDecodeStep,
    PackedMatrix,
    library,
)
from max_kernels.gguf.encode import quantize_q8_0
from max_kernels.gguf.formats import GGMLType

from max_pipelines.layers.linear import Linear

MAX_BATCH = 8  # larger decode batches keep the PyTorch path, whose batched matmuls do better


class _Unfit(Exception):
    pass


def _packed(linear: Linear) -> PackedMatrix:
    if not linear.qweights or any(q.qtype not in SUPPORTED_TYPES for q in linear.qweights):
        raise _Unfit(f"{linear}: not packed in the block types the library reads")
    return PackedMatrix([(q.qtype, q.data) for q in linear.qweights], linear.in_features, linear.bias)


def _lm_head(model) -> tuple[PackedMatrix, bool]:
    """The head's blocks, and whether they were quantized here from a float table (then each row's
    largest logits are recomputed from that table)."""
    head = model.lm_head
    if head.qweights:
        return _packed(head), False
    table = head.exact_weight if head.exact_weight is not None else head.weight
    embedding = model.model.embed_tokens
    if table is embedding.weight and embedding.blocks is not None and embedding.blocks[0] in SUPPORTED_TYPES:
        qtype, data = embedding.blocks  # a tied head reads the file's own blocks
        return PackedMatrix([(GGMLType(int(qtype)), data)], table.shape[1]), False
    return PackedMatrix([(GGMLType.Q8_0, quantize_q8_0(table))], table.shape[1]), True


def _layer(layer, k_cache: torch.Tensor, v_cache: torch.Tensor) -> DecoderLayerWeights:
    from max_pipelines.architectures.gemma3.model import Gemma3DecoderLayer  # the registry imports the engine
    from max_pipelines.architectures.llama.model import LlamaDecoderLayer

    gemma = type(layer) is Gemma3DecoderLayer
    if type(layer) is not LlamaDecoderLayer and not gemma:
        raise _Unfit(type(layer).__name__)
    attn = layer.self_attn
    if attn.attn.softcap is not None or attn.rotary.rotary_dim % 2:
        raise _Unfit("soft-capped attention or an odd rotary size")
    if layer.mlp.activation not in ("silu", "gelu_tanh"):
        raise _Unfit("an activation other than SiLU or tanh-GELU")
    return DecoderLayerWeights(
        norm_in=layer.input_layernorm.weight,
        norm_post=(layer.pre_feedforward_layernorm if gemma else layer.post_attention_layernorm).weight,
        qkv=_packed(attn.qkv_proj),
        o=_packed(attn.o_proj),
        gate_up=_packed(layer.mlp.gate_up_proj),
        down=_packed(layer.mlp.down_proj),
        k_cache=k_cache,
        v_cache=v_cache,
        cos_sin=attn.rotary.cos_sin_cache,
        q_norm=None if attn.q_norm is None else attn.q_norm.weight,
        k_norm=None if attn.k_norm is None else attn.k_norm.weight,
        norm_attn_out=layer.post_attention_layernorm.weight if gemma else None,
        norm_mlp_out=layer.post_feedforward_layernorm.weight if gemma else None,
        sliding_window=attn.attn.sliding_window,
        gelu=layer.mlp.activation == "gelu_tanh",
    )


class NativeDecoder:
    """The model's decode steps through the library: embeddings in, logits out, with the model's
    LM head policy (refined top logits for a requantized float table, Gemma's soft cap)."""

    def __init__(self, step: NativeDecodeStep, model, refine: bool):
        self.step, self.model, self.refine = step, model, refine
        self.max_batch = step.max_batch

    def hidden(self, input_ids: torch.Tensor, md) -> torch.Tensor:
        """Final normed hidden states `[B, H]` of a decode batch described by `md` (AttentionMetadata)."""
        embeddings = self.model.model.embed_tokens(input_ids)
        return self.step.layers(embeddings, md.seq_lens, md.slot_mapping, md.block_tables)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.step.logits(hidden)
        if self.refine:
            logits = self.model.lm_head.refine(logits, hidden)
        return self.model.lm_head.cap(logits)


def native_decoder(model, kv_cache, max_len: int, max_batch: int) -> NativeDecoder | None:
    """The native decoder for `model` and its paged `kv_cache`, or None where it does not fit."""
    from max_pipelines.architectures.gemma3.model import Gemma3ForCausalLM
    from max_pipelines.architectures.llama.model import LlamaForCausalLM

    if not isinstance(model, LlamaForCausalLM | Gemma3ForCausalLM) or kv_cache.spec.device.type != "cpu":
        return None
    if kv_cache.spec.dtype not in KV_DTYPES:
        return None
    try:
        layers = [_layer(layer, k, v) for layer, k, v in zip(model.model.layers, kv_cache.k_caches, kv_cache.v_caches)]
        lm_head, refine = _lm_head(model)
    except (_Unfit, ValueError):
        return None
    lib = library()
    if lib is None:
        return None
    first = model.model.layers[0].self_attn
    if any(layer.self_attn.rotary.rotary_dim != first.rotary.rotary_dim for layer in model.model.layers):
        return None
    shape = DecoderShape(
        hidden=model.config["hidden_size"],
        num_heads=first.num_heads,
        num_kv_heads=first.num_kv_heads,
        head_dim=first.head_dim,
        intermediate=model.model.layers[0].mlp.down_proj.in_features,
        vocab=lm_head.rows,
        page_size=kv_cache.spec.page_size,
        rotary_dim=first.rotary.rotary_dim,
        eps=model.model.layers[0].input_layernorm.eps,
        scale=first.attn.scale,
    )
    try:
        step = NativeDecodeStep(
            lib, shape, layers, model.model.norm.weight.detach(), lm_head, max_batch=min(max_batch, MAX_BATCH), max_len=max_len
        )
    except ValueError:  # sizes the library does not handle
        return None
    return NativeDecoder(step, model, refine)

"""Gemma 3 text decoder: sandwich norms, (1 + w) RMSNorm, scaled embeddings, local/global layers."""

from __future__ import annotations

import math

import torch
from torch import nn

from max_pipelines.architectures import hf_config
from max_pipelines.architectures.decoder import CausalLM, DecoderModel, residual_norm
from max_pipelines.forward_context import ForwardContext
from max_pipelines.layers.attention import AttentionShape, SelfAttention
from max_pipelines.layers.embedding import LMHead, VocabEmbedding
from max_pipelines.layers.mlp import GatedMLP
from max_pipelines.layers.norm import GemmaRMSNorm
from max_pipelines.layers.rotary import RotaryEmbedding


class Gemma3DecoderLayer(nn.Module):
    """Each sub-block's output is normalized before it joins the residual stream."""

    def __init__(self, config: dict, layer_idx: int, rotary: RotaryEmbedding):
        super().__init__()
        hidden = config["hidden_size"]
        eps = config.get("rms_norm_eps", 1e-6)
        shape = AttentionShape(
            hidden_size=hidden,
            num_heads=config["num_attention_heads"],
            num_kv_heads=hf_config.num_kv_heads(config),
            head_dim=hf_config.head_dim(config),
            scale=config["query_pre_attn_scalar"] ** -0.5,
            qkv_bias=config.get("attention_bias", False),
            o_bias=config.get("attention_bias", False),
            sliding_window=hf_config.sliding_window(config, layer_idx),
            softcap=config.get("attn_logit_softcapping"),
        )
        self.input_layernorm = GemmaRMSNorm(hidden, eps)
        self.self_attn = SelfAttention(layer_idx, shape, rotary, GemmaRMSNorm, eps)
        self.post_attention_layernorm = GemmaRMSNorm(hidden, eps)
        self.pre_feedforward_layernorm = GemmaRMSNorm(hidden, eps)
        self.mlp = GatedMLP(hidden, config["intermediate_size"], config.get("hidden_activation", "gelu_pytorch_tanh"))
        self.post_feedforward_layernorm = GemmaRMSNorm(hidden, eps)

    def forward(
        self,
        positions: torch.Tensor,
        hidden: torch.Tensor,
        residual: torch.Tensor | None,
        ctx: ForwardContext,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, residual = residual_norm(self.input_layernorm, hidden, residual)
        hidden = self.post_attention_layernorm(self.self_attn(positions, hidden, ctx))
        hidden, residual = self.pre_feedforward_layernorm(hidden, residual)
        return self.post_feedforward_layernorm(self.mlp(hidden)), residual


class Gemma3Model(DecoderModel):
    def __init__(self, config: dict, max_positions: int):
        super().__init__()
        hidden = config["hidden_size"]
        self.embed_tokens = VocabEmbedding(config["vocab_size"], hidden, scale=math.sqrt(hidden))
        dim = hf_config.head_dim(config)
        types = hf_config.layer_types(config)
        rotary = {t: RotaryEmbedding(config, dim, max_positions, t) for t in sorted(set(types))}
        self.layers = nn.ModuleList(Gemma3DecoderLayer(config, i, rotary[t]) for i, t in enumerate(types))
        self.norm = GemmaRMSNorm(hidden, config.get("rms_norm_eps", 1e-6))


class Gemma3ForCausalLM(CausalLM):
    def __init__(self, config: dict, max_positions: int):
        super().__init__()
        # Defaults of configs that leave them out (e.g. built from GGUF metadata), as in
        # transformers and llama.cpp: 5 local layers to 1 global, local RoPE base 10000, and
        # queries scaled by 1/sqrt(head_dim).
        defaults = {
            "sliding_window_pattern": 6,
            "rope_local_base_freq": 10000.0,
            "query_pre_attn_scalar": hf_config.head_dim(config),
        }
        config = {**defaults, **config}
        self.config = config
        self.model = Gemma3Model(config, max_positions)
        self.lm_head = LMHead(config["hidden_size"], config["vocab_size"], config.get("final_logit_softcapping"))

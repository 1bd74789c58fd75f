"""The Llama decoder, which Mistral, Qwen2, Qwen3 and Phi-3 reuse with different options."""

from __future__ import annotations

import torch
from torch import nn

from max_pipelines.architectures import hf_config
from max_pipelines.architectures.decoder import CausalLM, DecoderModel, SummedResidual, add_to_residual, residual_norm
from max_pipelines.forward_context import ForwardContext
from max_pipelines.layers.attention import AttentionShape, SelfAttention
from max_pipelines.layers.embedding import LMHead, VocabEmbedding
from max_pipelines.layers.mlp import GatedMLP
from max_pipelines.layers.norm import RMSNorm
from max_pipelines.layers.rotary import RotaryEmbedding


class LlamaOptions:
    """What distinguishes the Llama-shaped families; subclasses override the attributes."""

    qk_norm = False  # Qwen3: RMSNorm over each q and k head before RoPE

    def qkv_bias(self, config: dict) -> bool:
        return bool(config.get("attention_bias", False))

    def o_bias(self, config: dict) -> bool:
        return bool(config.get("attention_bias", False))


class LlamaDecoderLayer(nn.Module):
    """Pre-norm attention then pre-norm MLP; each residual add is fused into the next norm, or into the
    output projection before it (see decoder.py)."""

    def __init__(self, config: dict, layer_idx: int, rotary: RotaryEmbedding, options: LlamaOptions):
        super().__init__()
        hidden = config["hidden_size"]
        eps = config.get("rms_norm_eps", 1e-6)
        dim = hf_config.head_dim(config)
        shape = AttentionShape(
            hidden_size=hidden,
            num_heads=config["num_attention_heads"],
            num_kv_heads=hf_config.num_kv_heads(config),
            head_dim=dim,
            scale=dim**-0.5,
            qkv_bias=options.qkv_bias(config),
            o_bias=options.o_bias(config),
            sliding_window=hf_config.sliding_window(config, layer_idx),
        )
        self.input_layernorm = RMSNorm(hidden, eps)
        self.self_attn = SelfAttention(layer_idx, shape, rotary, RMSNorm if options.qk_norm else None, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
        self.mlp = GatedMLP(
            hidden, config["intermediate_size"], config.get("hidden_act", "silu"), config.get("mlp_bias", False)
        )

    def forward(
        self,
        positions: torch.Tensor,
        hidden: torch.Tensor | None,
        residual: torch.Tensor | SummedResidual | None,
        ctx: ForwardContext,
    ) -> tuple[torch.Tensor | None, torch.Tensor | SummedResidual]:
        x, residual = residual_norm(self.input_layernorm, hidden, residual)
        hidden, residual = add_to_residual(self.self_attn.o_proj, self.self_attn.attend(positions, x, ctx), residual)
        x, residual = residual_norm(self.post_attention_layernorm, hidden, residual)
        return add_to_residual(self.mlp.down_proj, self.mlp.activated(x), residual)


class LlamaModel(DecoderModel):
    def __init__(self, config: dict, max_positions: int, options: LlamaOptions):
        super().__init__()
        self.embed_tokens = VocabEmbedding(config["vocab_size"], config["hidden_size"])
        self.rotary = RotaryEmbedding(config, hf_config.head_dim(config), max_positions)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(config, i, self.rotary, options) for i in range(config["num_hidden_layers"])
        )
        self.norm = RMSNorm(config["hidden_size"], config.get("rms_norm_eps", 1e-6))

    def rope_positions(self, positions: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return self.rotary.table_positions(positions, ctx.attn_metadata)


class LlamaForCausalLM(CausalLM):
    """The families built on it set `options` (see LlamaOptions)."""

    options = LlamaOptions()

    def __init__(self, config: dict, max_positions: int):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config, max_positions, self.options)
        self.lm_head = LMHead(config["hidden_size"], config["vocab_size"])

"""Backbones and the DPR head, built from a config.

Each backbone maps left-padded item sequences int[B, L] to user vectors float[B, L, d] and
exposes the shared item table float[V, d] (``method=model.item_table``)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from dpr_jax.models.dpr import DPRHead
from dpr_jax.models.gru4rec import GRU4Rec
from dpr_jax.models.layers import padded_vocab, valid_item_mask
from dpr_jax.models.sasrec import SASRec


def build_backbone(model_config, num_items: int, max_len: int) -> nn.Module:
  """The backbone named by ``model_config.name`` for a catalogue of ``num_items`` items."""
  vocab = padded_vocab(num_items, model_config.vocab_multiple)
  dtype = jnp.dtype(model_config.get("compute_dtype", "float32"))
  if model_config.name == "sasrec":
    return SASRec(vocab_size=vocab, max_len=max_len, embed_dim=model_config.embed_dim,
                  num_blocks=model_config.num_blocks, num_heads=model_config.num_heads,
                  mlp_dim=model_config.mlp_dim, dropout=model_config.dropout, dtype=dtype,
                  query_blocks=model_config.get("attention_query_blocks", 1))
  if model_config.name == "gru4rec":
    return GRU4Rec(vocab_size=vocab, max_len=max_len, embed_dim=model_config.embed_dim,
                   gru_dim=model_config.gru_dim, dropout=model_config.dropout, dtype=dtype)
  raise ValueError(f"unknown model {model_config.name!r}")


def build_head(config, num_tags: int, stage: int = 3) -> DPRHead:
  """The DPR head of ``stage`` (2 or 3): stage 2 never reads the tag profile (its experts are
  only carried along; ``train.steering.widen_for_profile`` adds the profile inputs for stage 3)."""
  d = config.dpr
  return DPRHead(embed_dim=config.model.embed_dim, num_tags=num_tags,
                 adapter_hidden=d.adapter_hidden,
                 num_experts=d.num_experts, top_k=d.top_k, expert_hidden=d.expert_hidden,
                 dispatch=d.dispatch, gates=d.gates, routing=d.routing,
                 use_profile=bool(d.user_profile) and stage == 3)


__all__ = ["SASRec", "GRU4Rec", "DPRHead", "build_backbone", "build_head", "padded_vocab",
           "valid_item_mask"]

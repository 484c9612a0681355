"""The encoder's MPNet path (dpr_jax.prompts.encoder), e.g. all-mpnet-base-v2 as dpr.text_encoder.

A tiny random MPNet is checked against a NumPy forward pass written here from the architecture
(no weights needed); the real checkpoint is checked against reference vectors from transformers'
PyTorch MPNet when its folder is named by ``DPR_MPNET_DIR`` (skipped otherwise; docs/data.md says
how to get it).
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dpr_jax.errors import CheckpointError
from dpr_jax.prompts import encoder as enc_lib

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "mpnet_reference.json"


def _bucket_reference(offset: int, num_buckets: int, max_distance: int = 128) -> int:
  """T5's bidirectional relative-position bucket, one offset (key minus query) at a time."""
  half = num_buckets // 2
  bucket = half if offset > 0 else 0  # keys after the query take the upper half
  distance = abs(offset)
  exact = half // 2
  if distance < exact:
    return bucket + distance
  spread = math.log(distance / exact) / math.log(max_distance / exact) * (half - exact)
  return bucket + min(exact + int(spread), half - 1)


@pytest.mark.parametrize("num_buckets", [32, 8])
def test_relative_position_bucket_matches_the_reference(num_buckets: int) -> None:
  offsets = np.arange(-300, 301)
  got = np.asarray(enc_lib.relative_position_bucket(jnp.asarray(offsets), num_buckets))
  want = np.array([_bucket_reference(int(o), num_buckets) for o in offsets])
  np.testing.assert_array_equal(got, want)
  assert got.min() == 0 and got.max() == num_buckets - 1


def test_mpnet_names_map_onto_the_bert_tree() -> None:
  f = enc_lib.hf_name_to_flax_path
  assert f("mpnet.encoder.layer.3.attention.attn.q.weight") == (
      "layer_3", "attention", "self_attention", "query", "kernel")
  assert f("encoder.layer.3.attention.attn.v.bias") == (
      "layer_3", "attention", "self_attention", "value", "bias")
  assert f("encoder.layer.0.attention.attn.o.weight") == (
      "layer_0", "attention", "output", "dense", "kernel")
  assert f("encoder.layer.0.attention.LayerNorm.weight") == (
      "layer_0", "attention", "output", "LayerNorm", "scale")
  assert f("encoder.relative_attention_bias.weight") == ("relative_attention_bias", "embedding")
  assert f("pooler.dense.weight") is None


def _tiny() -> tuple[enc_lib.BertConfig, dict[str, np.ndarray]]:
  cfg = enc_lib.BertConfig.from_hf({
      "model_type": "mpnet", "vocab_size": 13, "hidden_size": 8, "num_hidden_layers": 2,
      "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 20,
      "relative_attention_num_buckets": 8, "layer_norm_eps": 1e-5, "pad_token_id": 1})
  rng = np.random.default_rng(0)
  d, m = cfg.hidden_size, cfg.intermediate_size
  shapes = {"embeddings.word_embeddings.weight": (cfg.vocab_size, d),
            "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, d),
            "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,),
            "encoder.relative_attention_bias.weight": (8, cfg.num_heads),
            "pooler.dense.weight": (d, d)}
  for i in range(cfg.num_layers):
    p = f"encoder.layer.{i}."
    for n in "qkvo":
      shapes[f"{p}attention.attn.{n}.weight"], shapes[f"{p}attention.attn.{n}.bias"] = (d, d), (d,)
    shapes.update({f"{p}attention.LayerNorm.weight": (d,), f"{p}attention.LayerNorm.bias": (d,),
                   f"{p}intermediate.dense.weight": (m, d), f"{p}intermediate.dense.bias": (m,),
                   f"{p}output.dense.weight": (d, m), f"{p}output.dense.bias": (d,),
                   f"{p}output.LayerNorm.weight": (d,), f"{p}output.LayerNorm.bias": (d,)})
  return cfg, {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def _numpy_mpnet(sd: dict[str, np.ndarray], cfg: enc_lib.BertConfig, ids: list[int]) -> np.ndarray:
  """One unpadded sequence through MPNet, from the torch-layout tensors: float64[len, hidden]."""
  w = {k: v.astype(np.float64) for k, v in sd.items()}

  def norm(x, name):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + cfg.layer_norm_eps) * w[name + ".weight"] + w[name + ".bias"]

  def linear(x, name):
    return x @ w[name + ".weight"].T + w[name + ".bias"]

  n, heads, k = len(ids), cfg.num_heads, cfg.head_dim
  positions = np.arange(n) + cfg.pad_token_id + 1
  x = norm(w["embeddings.word_embeddings.weight"][ids]
           + w["embeddings.position_embeddings.weight"][positions], "embeddings.LayerNorm")
  buckets = np.array([[_bucket_reference(kk - q, 8) for kk in range(n)] for q in range(n)])
  bias = w["encoder.relative_attention_bias.weight"][buckets].transpose(2, 0, 1)  # [heads, q, k]
  for i in range(cfg.num_layers):
    p = f"encoder.layer.{i}."
    q, kk, v = (linear(x, f"{p}attention.attn.{c}").reshape(n, heads, k).transpose(1, 0, 2)
                for c in "qkv")
    scores = q @ kk.transpose(0, 2, 1) / math.sqrt(k) + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    ctx = (probs @ v).transpose(1, 0, 2).reshape(n, heads * k)
    x = norm(x + linear(ctx, f"{p}attention.attn.o"), f"{p}attention.LayerNorm")
    h = linear(x, f"{p}intermediate.dense")
    h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    x = norm(x + linear(h, f"{p}output.dense"), f"{p}output.LayerNorm")
  return x


def test_a_tiny_mpnet_matches_the_numpy_reference_with_padding() -> None:
  cfg, sd = _tiny()
  params = enc_lib.convert_state_dict(sd, cfg)
  assert "token_type_embeddings" not in params["embeddings"]
  rows = [[0, 5, 7, 9, 2], [0, 4, 2]]  # the second padded on the right
  ids = np.full((2, 8), cfg.pad_token_id, np.int32)
  mask = np.zeros((2, 8), np.int32)
  for r, row in enumerate(rows):
    ids[r, :len(row)], mask[r, :len(row)] = row, 1
  got = np.asarray(enc_lib.BertModel(cfg).apply({"params": params}, jnp.asarray(ids),
                                                jnp.asarray(mask)))
  for r, row in enumerate(rows):
    np.testing.assert_allclose(got[r, :len(row)], _numpy_mpnet(sd, cfg, row), atol=2e-5)


def test_an_mpnet_checkpoint_with_missing_bias_table_is_refused() -> None:
  cfg, sd = _tiny()
  del sd["encoder.relative_attention_bias.weight"]
  with pytest.raises(CheckpointError, match="not a MPNet checkpoint.*relative_attention_bias"):
    enc_lib.convert_state_dict(sd, cfg)


def test_other_architectures_are_refused_by_name() -> None:
  with pytest.raises(CheckpointError, match="model_type 'roberta' is not supported"):
    enc_lib.BertConfig.from_hf({"model_type": "roberta", "vocab_size": 5, "hidden_size": 8,
                                "num_hidden_layers": 1, "num_attention_heads": 2,
                                "intermediate_size": 8, "max_position_embeddings": 8})


@pytest.fixture(scope="module")
def mpnet_dir() -> pathlib.Path:
  folder = os.environ.get("DPR_MPNET_DIR")
  if not folder or not (pathlib.Path(folder) / "model.safetensors").is_file():
    pytest.skip("DPR_MPNET_DIR does not name an all-mpnet-base-v2 folder (docs/data.md)")
  return pathlib.Path(folder)


def test_all_mpnet_base_v2_matches_transformers(mpnet_dir: pathlib.Path) -> None:
  with open(FIXTURE, encoding="utf-8") as f:
    ref = json.load(f)
  enc = enc_lib.TextEncoder.from_pretrained(mpnet_dir)
  assert enc.dim == 768 and enc.max_seq_length == ref["max_seq_length"] == 384
  got = enc.encode(ref["sentences"])
  diff = float(np.abs(got - np.asarray(ref["embeddings"], np.float32)).max())
  print(f"max abs diff vs transformers' MPNet: {diff:.3g}")
  assert diff < 1e-5
  states, real = enc.token_states(ref["sentences"][:1], 8)
  assert states.shape == (1, 8, 768) and real.all()

"""Stages 2-3: the frozen context the steering head is scored against, and its examples.

With the backbone frozen a user vector depends on the user's history alone, so every example's
``h`` is computed once (:func:`user_vectors`) and the training step sees the catalogue as a
:class:`FrozenCatalogue` argument. The example families (alignment; positive / negative /
unprompted steering; per-user groups when stage 3 tunes the backbone) are described in
:mod:`dpr_jax.train.steering`.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from dpr_jax import sharding
from dpr_jax.data import pipeline
from dpr_jax.data.split import SplitData
from dpr_jax.models import retrieval, valid_item_mask
from dpr_jax.prompts.bank import PromptBank

Array = jax.Array


# ================================================================================ frozen context
@functools.partial(jax.tree_util.register_dataclass, data_fields=["table", "item_tags", "valid"],
                   meta_fields=[])
@dataclasses.dataclass(frozen=True)
class FrozenCatalogue:
  """Stage 1's item table and the tag of every row, as device arrays for the head's losses.

  A pytree: the compiled stage steps take it as an argument laid out by :meth:`shardings` (rows
  over the ``model`` axis), not as a constant every device holds whole.
  """

  table: Array  # float32[V, d]
  item_tags: Array  # float32[V, T] (padding rows zero)
  valid: Array  # bool[V]

  @classmethod
  def create(cls, table: Array, data: SplitData) -> "FrozenCatalogue":
    v = table.shape[0]
    tags = np.zeros((v, data.item_tags.shape[1]), np.float32)
    tags[:data.item_tags.shape[0]] = data.item_tags
    return cls(table=table, item_tags=jnp.asarray(tags), valid=valid_item_mask(v, data.num_items))

  def shardings(self, mesh: Mesh) -> "FrozenCatalogue":
    """Its layout on ``mesh``: the vocab rows split over ``model`` (the rules table)."""
    return FrozenCatalogue(table=sharding.logical_sharding(mesh, ("vocab", "embed")),
                           item_tags=sharding.logical_sharding(mesh, ("vocab", None)),
                           valid=sharding.logical_sharding(mesh, ("vocab",)))

  def logits(self, u: Array, tag_bias: Array | None = None) -> Array:
    """Scores ``u @ E^T (+ tag_bias @ tags^T)``: float32[B, V], invalid rows at retrieval.NEG.

    Args:
      u: float[B, d]; tag_bias: float[B, T] or None (the tag coordinates of the user).
    """
    s = retrieval.scores(u, self.table, tag_bias, self.item_tags)
    return retrieval.mask(s, self.valid[None, :])

  def tag_log_mass(self, logits: Array, tag_multi_hot: Array) -> Array:
    """log of the softmax mass on items carrying any of the tags: float32[B]."""
    in_tag = (tag_multi_hot @ self.item_tags.T) > 0  # [B, V]
    return (jax.nn.logsumexp(retrieval.mask(logits, in_tag), axis=-1)
            - jax.nn.logsumexp(logits, axis=-1))


def user_vectors(model: nn.Module, params, inputs: np.ndarray, batch_size: int = 256,
                 dropout_seed: int | None = None, mesh: Mesh | None = None) -> np.ndarray:
  """float32[U, L, d]: the backbone's user vector at every position.

  The users are split over the ``data`` axis of ``mesh`` (default: one device), so each device
  computes its share. With ``dropout_seed`` the backbone's dropout stays on: the backbone has
  fitted its training positions, so their clean user vectors are more certain than any at test
  time; noisy ones make stage 3 learn steering on vectors that look like unseen ones.
  """
  mesh = mesh or sharding.make_mesh(1, 1, devices=jax.devices()[:1])
  batch_size += -batch_size % mesh.shape["data"]
  key = None if dropout_seed is None else jax.random.key(dropout_seed)

  def fn(x, first):  # x: int32[B, L]; first: int32[B], the batch's first row (the dropout key)
    if key is None:
      return model.apply({"params": params}, x)
    return model.apply({"params": params}, x, deterministic=False,
                       rngs={"dropout": jax.random.fold_in(key, first[0])})

  run = sharding.RowParallel(fn, mesh)
  out = []
  for start in range(0, len(inputs), batch_size):
    x = inputs[start:start + batch_size]
    n = len(x)
    x = np.concatenate([x, np.repeat(x[-1:], batch_size - n, axis=0)])
    out.append(run(x, np.full(batch_size, start, np.int32))[:n])
  return np.concatenate(out)


# ================================================================================ examples
def alignment_examples(bank: PromptBank, tag_names) -> dict[str, np.ndarray]:
  """Stage 2: every training prompt with the tags it names."""
  rows = np.array([i for i, s in enumerate(bank.split) if s == "train"], np.int64)
  return {"prompt": bank.features[rows], "tags": bank.tag_matrix(tag_names)[rows].astype(np.float32)}


def steering_examples(data: SplitData, h_all: np.ndarray, catalogue: FrozenCatalogue,
                      bank: PromptBank, steer_config, seed: int, profile: bool = False):
  """Stage 3 examples (see the module docstring) -> (arrays, PromptChoice).

  Arrays, M examples in user order: h float32[M, d], target int32[M], kind int32[M] (0 none,
  1 positive, 2 negative), tag int32[M] (-1 none), prompt_start / prompt_count int32[M], user /
  position int32[M] (the example's row of ``train_inputs`` and its position there); with
  ``profile`` also profile float32[M, T], the tag profile of the history so far
  (``config.dpr.user_profile``). Training takes :func:`frozen_backbone_examples` or
  :func:`group_by_user` of them.
  """
  rng = np.random.default_rng(seed)
  tag_names = data.tag_names
  num_tags = len(tag_names)
  p = steer_config.positions_per_user
  targets = data.train_targets  # [U, L]
  users, positions = [], []
  for u in range(data.num_users):
    pos = np.nonzero(targets[u])[0][-p:]
    users.append(np.full(len(pos), u))
    positions.append(pos)
  users, positions = np.concatenate(users), np.concatenate(positions)
  h = h_all[users, positions].astype(np.float32)
  target = targets[users, positions].astype(np.int32)
  m = len(target)
  item_tags = data.item_tags  # bool[N + 1, T]
  target_tags = item_tags[target]  # [M, T]

  # Off-habit positive tag: the target's tag with the smallest share of the history so far.
  history_counts = np.zeros((m, num_tags))
  for i, (u, j) in enumerate(zip(users, positions)):
    history_counts[i] = item_tags[data.train_inputs[u, :j + 1]].sum(0)
  share = history_counts / np.maximum(history_counts.sum(1, keepdims=True), 1)
  noise = rng.random((m, num_tags)) * 1e-6
  pos_tag = np.argmin(np.where(target_tags, share + noise, np.inf), axis=1)
  has_pos = target_tags.any(1)

  # Negative tag: the tag the backbone's top-10 leans to most, among tags the target lacks.
  top_tag_counts = np.zeros((m, num_tags))
  top10 = jax.jit(lambda x: jax.lax.top_k(catalogue.logits(x), 10)[1])
  for start in range(0, m, 1024):
    top = np.asarray(top10(jnp.asarray(h[start:start + 1024])))
    top_tag_counts[start:start + 1024] = item_tags[np.minimum(top, data.num_items)].sum(1)
  neg_tag = np.argmax(np.where(target_tags, -np.inf, top_tag_counts + noise), axis=1)
  has_neg = ~target_tags.all(1)

  draw = rng.random(m)
  kind = np.where(draw < steer_config.mix_positive, 1,
                  np.where(draw < steer_config.mix_positive + steer_config.mix_negative, 2, 0))
  kind = np.where((kind == 1) & ~has_pos, 0, np.where((kind == 2) & ~has_neg, 0, kind))
  tag = np.where(kind == 1, pos_tag, np.where(kind == 2, neg_tag, -1))

  # Candidate prompt rows per (family, tag), concatenated; each example points at its group.
  groups, rows = {}, []
  for family in ("positive", "negative", "nuanced"):
    for g, name in enumerate(tag_names):
      sel = bank.select(family, "train", name)
      groups[family, g] = (len(rows), len(sel))
      rows.extend(sel.tolist())
  use_nuanced = rng.random(m) < steer_config.nuanced_share
  start, count = np.zeros(m, np.int32), np.zeros(m, np.int32)
  for i in range(m):
    if kind[i] == 0:
      continue
    family = "negative" if kind[i] == 2 else "positive"
    if kind[i] == 1 and use_nuanced[i] and groups["nuanced", tag[i]][1] > 0:
      family = "nuanced"
    start[i], count[i] = groups[family, tag[i]]
  kind = np.where((kind > 0) & (count == 0), 0, kind)  # a tag without prompts: unprompted
  tag = np.where(kind == 0, -1, tag)
  arrays = {"h": h, "target": target, "kind": kind.astype(np.int32), "tag": tag.astype(np.int32),
            "prompt_start": start, "prompt_count": count,
            "user": users.astype(np.int32), "position": positions.astype(np.int32)}
  if profile:
    arrays["profile"] = share.astype(np.float32)
  choice = pipeline.PromptChoice(rows=np.asarray(rows if rows else [0], np.int32),
                                 table=bank.features, seed=seed)
  return arrays, choice


_PER_EXAMPLE = ("target", "kind", "tag", "prompt_start", "prompt_count", "position")


def frozen_backbone_examples(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The examples for a frozen backbone: each carries its precomputed ``h`` (no user/position)."""
  return {k: v for k, v in arrays.items() if k not in ("user", "position")}


def group_by_user(arrays: dict[str, np.ndarray], data: SplitData,
                  per_user: int) -> dict[str, np.ndarray]:
  """The examples side by side per user, for stage 3 with the backbone training.

  Returns, for the U' users with examples: inputs int32[U', L] (their training inputs),
  target / kind / tag / prompt_start / prompt_count / position int32[U', K] and valid bool[U', K]
  (K = ``per_user``; a user with fewer examples has invalid slots, which weigh nothing), and
  profile float32[U', K, T] when the examples carry it.
  """
  users = arrays["user"]
  uniq, first = np.unique(users, return_index=True)
  row = np.searchsorted(uniq, users)
  slot = np.arange(len(users)) - first[row]
  if slot.max(initial=0) >= per_user:
    raise ValueError(f"a user has more than {per_user} examples")
  out = {"inputs": data.train_inputs[uniq].astype(np.int32),
         "valid": np.zeros((len(uniq), per_user), bool)}
  out["valid"][row, slot] = True
  for k in _PER_EXAMPLE:
    out[k] = np.zeros((len(uniq), per_user), np.int32)
    out[k][row, slot] = arrays[k]
  if "profile" in arrays:
    out["profile"] = np.zeros((len(uniq), per_user, arrays["profile"].shape[1]), np.float32)
    out["profile"][row, slot] = arrays["profile"]
  return out

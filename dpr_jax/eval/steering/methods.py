"""The methods every steering task is ranked with, on device (see :mod:`dpr_jax.eval.steering`):
backbone, filter, text rerank, DPR, DPR + filter, the selection bound, and stage 1's reference
rows; :func:`evaluate_method` runs one method over one task's users in fixed-size batches.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from dpr_jax import sharding
from dpr_jax.data.split import SplitData
from dpr_jax.eval.metrics import metrics_at_k, target_rank
from dpr_jax.eval.ranking import seen_mask
from dpr_jax.eval.steering.tasks import OFF_HABIT_SHARE, Task, tag_share
from dpr_jax.models import retrieval, valid_item_mask
from dpr_jax.models.dpr import compose, negative_part, positive_part, scale_offset
from dpr_jax.prompts.bank import PromptBank
from dpr_jax.prompts.combine import is_negative

METHODS = ("backbone", "filter", "text_rerank", "dpr", "dpr+filter", "selection_bound")
REFERENCE_METHODS = ("stage1 backbone", "stage1 filter")  # only when stage 3 tuned the backbone
RERANK_DEPTH = 100  # text rerank reorders the backbone's top this many
_NEG = retrieval.NEG


@dataclasses.dataclass
class Scorer:
  """Device-side pieces every method needs."""

  # (inputs int[B, L]) -> float[B, d]: the backbone DPR ranks with (read through user_table)
  user_vectors: Callable
  # (h float[B, d], p float[B, D_t], tag profile float[B, T], negative bool[B])
  #   -> (h' float[B, d], tag_bias float[B, T])
  steer: Callable
  table: jax.Array  # float[V, d]
  item_text: jax.Array  # float[V, D_t] (unit rows; zeros for padding)
  item_tags: jax.Array  # bool[V, T]
  num_items: int
  negative_steering: str = "subtract"  # config.dpr.negative_steering
  positive_steering: str = "focus"  # config.dpr.positive_steering
  # config.dpr.positive_scale; a batch input of the compiled steps (``batch["positive_scale"]``
  # float[B]), so scorers that differ in it alone may share ``_steps``.
  positive_scale: float = 1.0
  # config.dpr.filter_positive_scale / filter_negative_scale: the strength of a positive /
  # negative part for DPR under the hard filter ("dpr+filter"; batch inputs too). DPR alone
  # steers negative parts as trained.
  filter_positive_scale: float = 1.0
  filter_negative_scale: float = 1.0
  # Stage 1's backbone when stage 3 tuned another one (None: no reference rows).
  reference_user_vectors: Callable | None = None  # (inputs int[B, L]) -> float[B, d]
  reference_table: jax.Array | None = None  # float[V, d]
  # (p float[B, D_t], negative bool[B]) -> int[B, K]: the experts a prompt is routed to.
  routes: Callable | None = None
  # The users of every batch are split over its ``data`` axis (None: one device).
  mesh: Mesh | None = None
  _steps: dict = dataclasses.field(default_factory=dict, repr=False)
  _shares: dict = dataclasses.field(default_factory=dict, repr=False)
  _users: dict = dataclasses.field(default_factory=dict, repr=False)

  def tag_share(self, data: SplitData, split: str) -> np.ndarray:
    """float[U, T]: each user's tag shares before the split's target (computed once)."""
    if split not in self._shares:
      self._shares[split] = tag_share(data, split)
    return self._shares[split]

  def user_table(self, data: SplitData, split: str, reference: bool = False,
                 batch_size: int = 512) -> np.ndarray:
    """float32[U, d]: every user's vector from the history before the split's target, under
    the backbone DPR ranks with (``reference``: stage 1's), computed once per split with the
    users split over ``mesh``. Every task and method reads its rows, so the backbone runs once
    per user, not once per (task, method, user)."""
    key = (split, reference)
    if key not in self._users:
      vectors = self.reference_user_vectors if reference else self.user_vectors
      if vectors is None:
        raise ValueError("stage 1's reference rows need the reference backbone")
      run = sharding.RowParallel(vectors, self._mesh())
      batch_size += -batch_size % run.mesh.shape["data"]  # whole rows per device
      inputs = data.eval_split(split)[0]
      out = []
      for start in range(0, len(inputs), batch_size):
        rows = np.minimum(np.arange(start, start + batch_size), len(inputs) - 1)  # last padded
        out.append(np.asarray(run(inputs[rows]), np.float32)[:len(inputs) - start])
      self._users[key] = np.concatenate(out)
    return self._users[key]

  def _mesh(self) -> Mesh:
    return self.mesh or sharding.make_mesh(1, 1, devices=jax.devices()[:1])

  def step(self, method: str):
    """The compiled per-batch evaluation of ``method``: host batch -> host arrays, the users
    split over ``mesh`` (compiled once, reused for every task)."""
    if method not in self._steps:
      self._steps[method] = sharding.RowParallel(make_step(self, method), self._mesh())
    return self._steps[method]


def head_steer(head, params) -> Callable:
  """``Scorer.steer`` for a DPR head and its parameters: ``(h float[B, d], p float[B, D_t],
  profile float[B, T], negative bool[B]) -> (h' float[B, d], tag_bias float[B, T])``, every row
  prompted (the methods steer prompted parts only)."""

  def steer(h, p, profile, negative):
    out = head.apply({"params": params}, h, p, jnp.ones(h.shape[:1], bool), profile, negative)
    return out.user, out.tag_bias

  return steer


def head_routes(head, params) -> Callable:
  """``Scorer.routes`` for a DPR head: ``(p float[B, D_t], negative bool[B]) -> int[B, K]``."""
  return jax.jit(lambda p, negative: head.apply({"params": params}, p, negative,
                                                method=head.routes))


def scores_fn(scorer: Scorer, method: str):
  """``batch -> scores float[B, V]`` for one method (seen items not yet masked); ``batch["user"]``
  float[B, d] holds the users' vectors under the method's backbone (:meth:`Scorer.user_table`)."""

  reference = method.startswith("stage1 ")
  if reference and scorer.reference_user_vectors is None:
    raise ValueError(f"{method!r} needs the reference (stage 1) backbone")
  table = scorer.reference_table if reference else scorer.table
  method = method.removeprefix("stage1 ")

  def fn(batch):
    h = batch["user"]
    base = retrieval.scores(h, table)
    has_tag = jnp.take(scorer.item_tags, batch["tag"], axis=1).T  # [B, V]
    has_tag2 = jnp.take(scorer.item_tags, batch["tag2"], axis=1).T  # [B, V] (COMBINED's h)
    polarity = batch["polarity"][:, None]
    allowed = jnp.where(polarity == 2, has_tag & ~has_tag2,
                        jnp.where(polarity > 0, has_tag, jnp.where(polarity < 0, ~has_tag, True)))
    if method == "selection_bound":  # the filter, plus: g is the item's rarest off-habit tag
      share = batch["share"]  # [B, T]
      rarest = jnp.full(base.shape, jnp.inf)  # [B, V] the item's rarest off-habit tag's share
      for t in range(share.shape[1]):  # (T is small; no [B, V, T] temporary)
        s_t = jnp.where(share[:, t] < OFF_HABIT_SHARE, share[:, t], jnp.inf)  # [B]
        rarest = jnp.where(scorer.item_tags[None, :, t], jnp.minimum(rarest, s_t[:, None]),
                           rarest)
      g_share = jnp.take_along_axis(share, batch["tag"][:, None], axis=1)  # [B, 1]
      allowed = allowed & (rarest >= g_share)
    if method in ("backbone", "filter", "text_rerank", "selection_bound"):
      scores = base
    else:
      steered = []
      for key in ("prompt", "prompt2"):  # a second part only in COMBINED
        on = batch[f"has_{key}"][:, None]
        negative = batch[f"{key}_negative"]
        u_j, b_j = negative_part(h, *scorer.steer(h, batch[key], batch["share"], negative),
                                 negative, scorer.negative_steering)
        b_j = positive_part(b_j, ~negative, scorer.positive_steering)
        scale = jnp.where(negative, batch["negative_scale"], batch["positive_scale"])  # [B]
        u_j, b_j = scale_offset(h, u_j, b_j, jnp.ones_like(negative), scale)
        steered.append((jnp.where(on, u_j, h), jnp.where(on, b_j, 0.0)))
      u, tag_bias = compose(h, steered)
      scores = retrieval.scores(u, table, tag_bias, scorer.item_tags)
    if method == "text_rerank":
      scores = text_rerank(scorer, batch, base)
    if method.endswith("filter") or method == "selection_bound":
      scores = retrieval.mask(scores, allowed)
    return scores

  return fn


def text_rerank(scorer: Scorer, batch, base: jax.Array) -> jax.Array:
  """The text-rerank scores float32[B, V] (module docstring) from the backbone's ``base``.

  ``alpha * z(base) + (1 - alpha) * c`` ranks as ``alpha * base + (1 - alpha) * std * c`` (std:
  the backbone scores' spread over the rerank window), which is ``base`` itself, bit for bit, at
  alpha = 1. Items outside the window (the backbone's top-``RERANK_DEPTH`` unseen valid items)
  are removed; an unprompted row is the backbone.
  """
  valid = valid_item_mask(base.shape[1], scorer.num_items)[None, :]
  window = jnp.where(batch["seen"] | ~valid, _NEG, base)
  kth = sharding.top_k(window, min(RERANK_DEPTH, base.shape[1]))[0][:, -1:]
  in_top = (window >= kth) & (window > _NEG / 2)  # [B, V]
  count = jnp.maximum(jnp.sum(in_top, 1, keepdims=True), 1)
  mean = jnp.sum(jnp.where(in_top, base, 0), 1, keepdims=True) / count
  std = jnp.sqrt(jnp.sum(jnp.where(in_top, (base - mean) ** 2, 0), 1, keepdims=True) / count)
  text_dim = scorer.item_text.shape[1]
  cos = jnp.zeros_like(base)
  for key in ("prompt", "prompt2"):  # each part with the sign of its polarity
    sign = jnp.where(batch[f"{key}_negative"], -1.0, 1.0)[:, None]
    part = jnp.einsum("bt,vt->bv", batch[key][:, :text_dim], scorer.item_text)
    cos = cos + jnp.where(batch[f"has_{key}"][:, None], sign * part, 0.0)
  alpha = batch["alpha"][:, None]
  mixed = alpha * base + (1 - alpha) * std * cos
  prompted = (batch["has_prompt"] | batch["has_prompt2"])[:, None]
  return jnp.where(prompted, jnp.where(in_top, mixed, _NEG), base)


def evaluate_method(scorer: Scorer, data: SplitData, split: str, task: Task, bank: PromptBank,
                     method: str, alpha: float = 1.0, batch_size: int = 512):
  """Per-user arrays: ndcg@10, recall@10, the tag share of the top-10, and the top-10 itself
  (int[U', 10], -1 where a filter left fewer than 10 items)."""
  _, targets, seen_len = data.eval_split(split)
  users = scorer.user_table(data, split, reference=method.startswith("stage1 "))
  step = scorer.step(method)
  batch_size += -batch_size % step.mesh.shape["data"]  # whole rows per device
  features = bank.features if task.features is None else task.features
  negative = (np.array([is_negative(t) for t in bank.texts], bool) if task.negative is None
              else task.negative)
  tag2 = task.tag2 if task.tag2 is not None else np.zeros_like(task.tag)
  prompt2 = task.prompt2 if task.prompt2 is not None else -np.ones_like(task.prompt)
  out = [[], [], [], []]
  share = scorer.tag_share(data, split)  # the tag profile DPR's head may read; the bound's rule

  def rows_of(arr, start, n, pad):
    return np.concatenate([arr[start:start + n], np.full(pad, arr[start + n - 1])])

  def take(table, rows, fill):  # table[rows], ``fill`` where rows < 0 (or the table is empty:
    # no request of the task was read with such a part)
    if not len(table):
      return np.full((len(rows),) + table.shape[1:], fill, table.dtype)
    picked = table[np.maximum(rows, 0)]
    return np.where((rows >= 0).reshape((-1,) + (1,) * (picked.ndim - 1)), picked, fill)

  feats = lambda rows: take(features, rows, 0.0).astype(np.float32)  # noqa: E731

  for start in range(0, len(task.users), batch_size):
    u = task.users[start:start + batch_size]
    n = len(u)
    pad = batch_size - n
    idx = np.concatenate([u, np.full(pad, u[-1])])
    rows = rows_of(task.prompt, start, n, pad)
    rows2 = rows_of(prompt2, start, n, pad)
    tags = rows_of(task.tag, start, n, pad)
    batch = {
        "user": users[idx], "targets": targets[idx], "history": data.history[idx],
        "seen_len": seen_len[idx], "tag": tags.astype(np.int32),
        "polarity": np.full(batch_size, task.polarity, np.int32),
        "alpha": np.full(batch_size, alpha, np.float32),
        "positive_scale": np.full(batch_size, scorer.filter_positive_scale
                                  if method == "dpr+filter" else scorer.positive_scale,
                                  np.float32),
        "negative_scale": np.full(batch_size, scorer.filter_negative_scale
                                  if method == "dpr+filter" else 1.0, np.float32),
        "has_prompt": rows >= 0,
        "prompt": feats(rows), "has_prompt2": rows2 >= 0, "prompt2": feats(rows2),
        "prompt_negative": take(negative, rows, False),
        "prompt2_negative": take(negative, rows2, False),
        "tag2": rows_of(tag2, start, n, pad).astype(np.int32),
        "share": share[idx].astype(np.float32)}
    for acc, v in zip(out, step(batch)):
      acc.append(np.asarray(v)[:n])
  return [np.concatenate(a) if a else np.zeros(0) for a in out]


def make_step(scorer: Scorer, method: str):
  num_items, vocab = scorer.num_items, scorer.table.shape[0]
  score = scores_fn(scorer, method)

  def step(batch):
    seen = seen_mask(batch["history"], batch["seen_len"], batch["targets"], vocab)
    batch = dict(batch, seen=seen)
    scores = score(batch)
    candidates = valid_item_mask(vocab, num_items)[None, :] & ~seen
    # Removed items (filter, outside the rerank depth) never compete; a removed target ranks
    # behind every remaining item.
    rank = target_rank(scores, batch["targets"], candidates & (scores > _NEG / 2))
    m = metrics_at_k(rank, (10,))
    # Items outside the candidate set never reach the top-10 (a filter can leave fewer than 10).
    top_scores, top = sharding.top_k(jnp.where(candidates, scores, 2 * _NEG), 10)
    real = top_scores > _NEG / 2
    has_tag = jnp.take_along_axis(jnp.take(scorer.item_tags, batch["tag"], axis=1).T, top, axis=1)
    has_tag2 = jnp.take_along_axis(jnp.take(scorer.item_tags, batch["tag2"], axis=1).T, top,
                                   axis=1)
    hit = jnp.where(batch["polarity"][:, None] == 2, has_tag & ~has_tag2, has_tag)
    share = jnp.sum(hit & real, 1) / 10.0
    return m["ndcg@10"], m["recall@10"], share, jnp.where(real, top, -1)

  return step


def methods_of(task: str, scorer: Scorer) -> tuple[str, ...]:
  """The rows of a task's table."""
  reference = REFERENCE_METHODS if scorer.reference_user_vectors is not None else ()
  if task == "SEQ":
    return ("backbone", "dpr") + reference[:1]
  bound = ("selection_bound",) if task in ("POS", "NUANCED") else ()
  return ("backbone", "filter", "text_rerank", "dpr", "dpr+filter") + bound + reference

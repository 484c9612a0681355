"""Full-ranking evaluation on device: every user against the whole catalogue.

For a batch of users the backbone's last-position user vector is scored against the item table
(one matmul), padding/invalid rows are removed, and -- for the masked numbers -- the items the
user has already interacted with are removed too (the target itself stays, should the user have
seen it before). Both the masked (primary, docs/protocol.md) and unmasked metrics come from one
pass.
Sums stay on device until the end: one host transfer per evaluation.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from dpr_jax import sharding
from dpr_jax.data.split import SplitData
from dpr_jax.eval.metrics import metrics_at_k, target_rank
from dpr_jax.models import retrieval, valid_item_mask

Array = jax.Array


def seen_mask(history: Array, seen_len: Array, targets: Array, vocab_size: int) -> Array:
  """bool[B, V]: items in ``history[b, :seen_len[b]]``, except the target.

  Inside a sharded step each ``data`` shard scatters its own rows (``sharding.rowwise``): XLA
  would otherwise all-gather every device's (row, item) indices for the scatter.

  Args:
    history: int[B, H] right-padded item ids; seen_len: int[B]; targets: int[B].
  """

  def rows(history, seen_len, targets):
    b, h = history.shape
    valid = jnp.arange(h)[None, :] < seen_len[:, None]
    idx = jnp.where(valid, history, 0)  # padding points at item 0, which is never ranked
    mask = jnp.zeros((b, vocab_size), bool).at[jnp.arange(b)[:, None], idx].set(True)
    return mask & (jnp.arange(vocab_size)[None, :] != targets[:, None])

  return sharding.rowwise(rows, history, seen_len, targets)


def rank_metrics(scores: Array, targets: Array, seen: Array, weight: Array, num_items: int,
                 ks: tuple[int, ...]) -> dict[str, Array]:
  """Summed metrics of a batch, masked (``name``) and unmasked (``name/unmasked``).

  Args:
    scores: float[B, V]; targets: int[B]; seen: bool[B, V]; weight: float[B] (0 for padding rows).
  """
  valid = valid_item_mask(scores.shape[1], num_items)[None, :]
  out = {"count": jnp.sum(weight)}
  for suffix, candidates in (("", valid & ~seen), ("/unmasked", valid)):
    for name, v in metrics_at_k(target_rank(scores, targets, candidates), ks).items():
      out[name + suffix] = jnp.sum(v * weight)
  return out


def chunked(fn: Callable[[Array], Array], x: Array, chunk: int) -> Array:
  """``fn(x)`` for a row-wise ``fn``, computed ``chunk`` rows at a time (``lax.map``).

  Bounds the working set of a call to one chunk's activations. Chunk ``j`` takes the rows
  ``i * k + j`` (k = B / chunk), so a batch sharded over its first axis stays sharded the same
  way inside every chunk (no data movement between devices). ``chunk`` is lowered to the largest
  divisor of B not above it; ``chunk <= 0`` or ``>= B``: one call.

  Args:
    fn: ``float/int[C, ...] -> float[C, ...]``, each output row depending on its input row only.
    x: [B, ...].
  Returns:
    fn(x): [B, ...].
  """
  b = x.shape[0]
  if chunk <= 0 or chunk >= b:
    return fn(x)
  chunk = max(c for c in range(1, chunk + 1) if b % c == 0)
  xs = jnp.swapaxes(x.reshape((chunk, b // chunk) + x.shape[1:]), 0, 1)  # [k, chunk, ...]
  ys = jax.lax.map(fn, xs)  # [k, chunk, ...]
  return jnp.swapaxes(ys, 0, 1).reshape((b,) + ys.shape[2:])


def make_eval_step(user_vectors: Callable[[dict, Array], Array], item_table: Callable[[dict], Array],
                   num_items: int, ks: tuple[int, ...], chunk: int = 0):
  """A jittable ``(params, batch) -> summed metrics`` for one batch of users.

  Args:
    user_vectors: ``(params, inputs int[B, L]) -> float[B, d]`` (the ranking query).
    item_table: ``params -> float[V, d]``.
    chunk: users whose vectors are computed at once (:func:`chunked`; ``eval.chunk``); 0: all.
  """

  def step(params, batch):
    with jax.named_scope("user_vectors"):
      h = chunked(lambda x: user_vectors(params, x), batch["inputs"], chunk)  # [B, d]
    table = item_table(params)  # [V, d]
    scores = retrieval.scores(h, table)
    seen = seen_mask(batch["history"], batch["seen_len"], batch["targets"], table.shape[0])
    return rank_metrics(scores, batch["targets"], seen, batch["weight"], num_items, ks)

  return step


def length_buckets(max_len: int, num: int = 8) -> tuple[int, ...]:
  """Input widths used by ``eval_batches(trim=True)``: ``max_len * k / num`` rounded up to a
  multiple of 8, k = 1..num (a few static shapes, so a few compilations)."""
  ceil = lambda a, b: -(-a // b)
  return tuple(sorted({min(max_len, ceil(ceil(max_len * k, num), 8) * 8)
                       for k in range(1, num + 1)}))


def eval_batches(data: SplitData, split: str, batch_size: int, trim: bool = False):
  """Yields host batches of ``batch_size`` users (the last one padded, weight 0).

  With ``trim``, users are visited from the longest input to the shortest and each batch's
  ``inputs`` keep only their last ``w`` columns, ``w`` the smallest of :func:`length_buckets`
  that holds the batch's longest input: the dropped columns are pure left padding, which the
  backbones ignore (positions count from the end), so every user vector is unchanged and the
  summed metrics are the same while the forward pass skips ~40% of its work on ML-1M. Longest
  first puts the padding rows of the last, partial batch at the narrowest width (ML-1M, 256
  users per batch: padded positions 13% -> 9% of the real ones).
  """
  inputs, targets, seen_len = data.eval_split(split)
  n = data.num_users
  order = np.arange(n)
  if trim:
    lengths = np.sum(inputs > 0, axis=1)
    order = np.argsort(-lengths, kind="stable")
    buckets = np.asarray(length_buckets(inputs.shape[1]))
  for start in range(0, n, batch_size):
    pos = np.arange(start, start + batch_size)
    weight = (pos < n).astype(np.float32)
    idx = order[np.minimum(pos, n - 1)]
    batch_inputs = inputs[idx]
    if trim:
      width = int(buckets[np.searchsorted(buckets, lengths[idx].max())])
      batch_inputs = batch_inputs[:, inputs.shape[1] - width:]
    yield {"inputs": batch_inputs, "targets": targets[idx], "history": data.history[idx],
           "seen_len": seen_len[idx], "weight": weight}


class Evaluator:
  """Compiled full-ranking evaluation of one backbone over a mesh.

  ``trim`` (default): batches of similar input lengths with their left padding cut to a few
  static widths (:func:`eval_batches`); needs ``user_vectors`` to be invariant to columns of
  left padding, as both backbones are (``tests/test_models.py``).
  """

  def __init__(self, step_fn, mesh: Mesh, param_shardings, batch_size: int, trim: bool = True,
               chunk: int = 0):
    self.trim = trim
    self.chunk = chunk  # users per chunk inside ``step_fn`` (0: all), as built into it
    if batch_size % mesh.shape["data"]:
      batch_size += mesh.shape["data"] - batch_size % mesh.shape["data"]
    self.batch_size = batch_size
    self.mesh = mesh
    batch_shardings = {k: sharding.batch_sharding(mesh, nd) for k, nd in
                       (("inputs", 2), ("targets", 1), ("history", 2), ("seen_len", 1),
                        ("weight", 1))}

    def under_rules(params, batch):  # activations' logical constraints take effect
      with sharding.activation_rules(mesh):
        return step_fn(params, batch)

    self._step = jax.jit(under_rules, in_shardings=(param_shardings, batch_shardings),
                         out_shardings=sharding.replicated(mesh))
    self._batch_shardings = batch_shardings

  def _batches(self, data: SplitData, split: str):
    return ({k: sharding.global_rows(v, self.mesh) for k, v in b.items()}
            for b in eval_batches(data, split, self.batch_size, self.trim))

  def __call__(self, params, data: SplitData, split: str) -> dict[str, float]:
    return average(self._step(params, batch) for batch in self._batches(data, split))

  def lower(self, params, data: SplitData, split: str):
    """The lowered step of the first batch (for compiled-program measurements)."""
    return self._step.lower(params, next(iter(self._batches(data, split))))


def resolve_chunk(chunk: int, model_name: str, mesh: Mesh) -> int:
  """``eval.chunk`` as users per chunk of a call (0: the whole call); -1 is resolved here.

  Automatic: 16 users per device of the ``data`` axis for SASRec on CPU, the whole call
  otherwise. XLA:CPU allocates every call's buffers afresh, and a product whose output outgrows
  a few MB runs slower: on ML-1M (6,040 users, d = 128, 256 users per call) SASRec's ranking pass
  took 6.5 s whole and 3.9 s in chunks of 32 with older code; with the current attention, chunks
  of 16 (3,200 positions at the widest input) beat 32 (paired time ratios 0.93-0.98, medians
  2.64-2.67 s against 2.80-2.90 s, three interleaved A/Bs; metrics identical) and 8 or 64 are
  slower than 16 (reports/perf_log.md). GRU4Rec's takes 4.1 s whole and 5.9 s in chunks of 32
  (each chunk runs the whole scan).
  """
  if chunk != -1:
    return chunk
  if model_name == "sasrec" and mesh.devices.flat[0].platform == "cpu":
    return 16 * mesh.shape["data"]
  return 0


def backbone_evaluator(model, config, mesh: Mesh, param_shardings, num_items: int) -> Evaluator:
  """The trainer's evaluator of a backbone: ``model.user_vector`` (the last position's vector)
  against ``model.item_table``; batch and chunk sizes and cut-offs from ``config.eval``."""
  user_vectors = lambda p, x: model.apply({"params": p}, x, method=model.user_vector)
  item_table = lambda p: model.apply({"params": p}, method=model.item_table)
  chunk = resolve_chunk(config.eval.chunk, config.model.name, mesh)
  return Evaluator(make_eval_step(user_vectors, item_table, num_items, tuple(config.eval.ks), chunk),
                   mesh, param_shardings, config.eval.batch_size, chunk=chunk)


def average(batch_sums) -> dict[str, float]:
  """Adds per-batch metric sums on device, then one transfer: {metric: mean, "users": count}."""
  totals = None
  for sums in batch_sums:
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = float(totals.pop("count"))
  return {k: float(v) / count for k, v in sorted(totals.items())} | {"users": int(count)}


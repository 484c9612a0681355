"""Train state, optimizer and the jitted multi-step training function."""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from dpr_jax import sharding
from dpr_jax.models.sasrec import gather_packed
from dpr_jax.train.loss import compact_softmax_ce, softmax_ce

Array = jax.Array


@flax.struct.dataclass
class TrainState:
  step: Array  # int32[] number of optimizer steps taken
  params: Any
  opt_state: Any


def learning_rate(train_config, steps_per_epoch: int | None = None):
  """The learning rate: a constant, or (``lr_schedule="cosine"``) a schedule of the step.

  ``cosine``: linear warm-up from 0 over ``warmup_epochs``, then cosine decay to
  ``lr * final_lr_fraction`` at ``num_epochs`` (needs ``steps_per_epoch``).
  """
  if train_config.lr_schedule == "constant":
    return train_config.lr
  if steps_per_epoch is None:
    raise ValueError("a learning-rate schedule needs steps_per_epoch")
  total = max(1, round(train_config.num_epochs * steps_per_epoch))
  warmup = min(total - 1, round(train_config.warmup_epochs * steps_per_epoch))
  return optax.warmup_cosine_decay_schedule(
      0.0, train_config.lr, warmup, total,
      end_value=train_config.lr * train_config.final_lr_fraction)


def make_optimizer(train_config,
                   steps_per_epoch: int | None = None) -> optax.GradientTransformation:
  """AdamW (decay on weight matrices only) after optional global-norm clipping, at
  :func:`learning_rate`."""
  decay_mask = lambda params: jax.tree_util.tree_map_with_path(
      lambda path, x: x.ndim >= 2 and "embedding" not in jax.tree_util.keystr(path), params)
  adamw = optax.adamw(learning_rate(train_config, steps_per_epoch), b1=0.9, b2=train_config.b2,
                      weight_decay=train_config.weight_decay, mask=decay_mask)
  if train_config.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(train_config.grad_clip), adamw)
  return adamw


def create_state(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh, seed: int,
                 max_len: int) -> tuple[TrainState, Any]:
  """Initialises the state directly in its sharded layout.

  Returns:
    (state, shardings): shardings is a TrainState-shaped tree of NamedShardings derived from
    the parameters' logical axis names and :data:`dpr_jax.sharding.LOGICAL_AXIS_RULES`.
  """

  def init(rng):
    boxed = model.init({"params": rng}, jnp.zeros((1, max_len), jnp.int32))["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=boxed, opt_state=tx.init(boxed))

  rng = jax.random.key(seed)
  abstract = jax.eval_shape(init, rng)
  shardings = sharding.tree_shardings(mesh, abstract)
  state = jax.jit(lambda r: nn.unbox(init(r)), out_shardings=shardings)(rng)
  return state, shardings


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, num_items: int,
                    seed: int, head_capacity: int | None = None, groups: int = 1):
  """``(state, batch) -> (state, metrics)`` running S steps in one ``lax.scan``.

  ``batch`` holds ``inputs`` and ``targets`` int32[S, B, L]; metrics hold ``loss`` float32[S].
  The dropout key of each step is ``fold_in(key(seed), step)``: a function of the step alone,
  so a resumed run draws the same randomness as an uninterrupted one.

  Args:
    head_capacity: when set, only the real positions are computed, packed into this many rows:
      the whole SASRec (``SASRec.packed``: sequences in rows of L), or for other backbones the
      output head and its cross-entropy (:func:`dpr_jax.train.loss.compact_softmax_ce`). The
      caller guarantees that every step's real positions fit and that every target sits at a
      real input (:class:`dpr_jax.train.packing.TrainSteps` checks both on the host); rows past
      the capacity would be dropped. The loss is the same function as the dense one; dropout
      masks are drawn in the packed shape. None computes every position.
    groups: row packing in this many independent groups of consecutive sequences, one per
      ``data`` shard (``SASRec.packed``), so each device packs and computes its own shard.
  """
  base_key = jax.random.key(seed + 1)

  def dense_loss(params, inputs, targets, rng):
    h = model.apply({"params": params}, inputs, deterministic=False, rngs={"dropout": rng})
    table = model.apply({"params": params}, method=model.item_table)
    if head_capacity is None:
      loss, _ = softmax_ce(h, table, targets, num_items)  # tiled over the vocab when large
    else:
      loss, _ = compact_softmax_ce(h, table, targets, num_items, head_capacity, groups=groups)
    return loss

  def packed_loss(params, inputs, targets, rng):
    h, idx = model.apply({"params": params}, inputs, head_capacity, deterministic=False,
                         groups=groups, rngs={"dropout": rng}, method=model.packed)  # [C, d], [C]
    table = model.apply({"params": params}, method=model.item_table)
    t = gather_packed(targets, idx, groups)  # [C], each group from its own shard
    return softmax_ce(h[None], table, t[None], num_items)[0]

  loss_fn = (packed_loss if head_capacity is not None and hasattr(model, "packed")
             else dense_loss)

  def one_step(state: TrainState, batch):
    rng = jax.random.fold_in(base_key, state.step)
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch["inputs"], batch["targets"], rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, {"loss": loss, "grad_norm": optax.tree_utils.tree_norm(grads)}

  def train_steps(state: TrainState, batch):
    return jax.lax.scan(one_step, state, batch)

  return train_steps


def jit_train_step(train_steps, mesh: Mesh, state_shardings):
  """Compiles with explicit shardings: state as the rules say, batch over ``data``, state donated;
  traced under the rules table, so the activations' logical constraints take effect."""

  def under_rules(state, batch):
    with sharding.activation_rules(mesh):
      return train_steps(state, batch)

  batch_shardings = {"inputs": sharding.batch_sharding(mesh, 3, batch_axis=1),
                     "targets": sharding.batch_sharding(mesh, 3, batch_axis=1)}
  return jax.jit(under_rules, in_shardings=(state_shardings, batch_shardings),
                 out_shardings=(state_shardings, sharding.replicated(mesh)), donate_argnums=(0,))

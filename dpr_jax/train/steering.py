"""Stages 2 and 3: align the prompt adapter, then train the steering layers.

Both stages keep the backbone and the item table frozen (stage 1's best parameters). Then a
user vector depends on the user's history alone, so stage 3 computes every example's ``h`` once,
before training, and the training step is only the DPR head plus one ``h' @ E^T`` product:
no transformer or GRU runs inside the stage-3 loop.

Stage 2 (align). Examples: every training prompt (positive, negative and nuanced families) with
the tag(s) it names. Loss: ``-log sum_{i in items of the tags} softmax(A(p) @ E^T)_i`` -- the
adapter learns to point at the region of item space a prompt is about, whatever its polarity.

Stage 3 (steer). Examples from training sequences only: the last ``positions_per_user``
positions of each user's training part, each with its backbone user vector ``h`` and next item
``t``, made into
  * positive (share ``mix_positive``): a tag ``g`` of ``t``, the one least present in the user's
    history so far (off-habit); the prompt a training positive template or nuanced description
    of ``g``;
  * negative (``mix_negative``): a tag ``g`` that ``t`` lacks, the one most present in the
    backbone's unprompted top-10 (what the model leans to); a training negative template of ``g``;
  * unprompted (the rest): no prompt; the head is the identity there.
Loss: next-item cross-entropy of ``t`` under ``h'`` for every example, plus for positives
``tag_weight * -log P(g)`` and for negatives the suppression loss ``suppress_weight *
-log(1 - P(g))`` where ``P(g)`` is the softmax mass on items carrying ``g``, plus the router's
load-balance loss times ``aux_weight``, plus ``offset_weight * |h' - h|^2``, plus for negatives
``focus_weight`` times the squared tag coordinates of the tags other than ``g``. The template of each example is re-drawn every step
(``pipeline.PromptChoice``), so the model sees paraphrases, not one phrase per tag.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from dpr_jax import config as config_lib
from dpr_jax import sharding
from dpr_jax.data import pipeline
from dpr_jax.data.split import SplitData
from dpr_jax.errors import CheckpointError
from dpr_jax.models import valid_item_mask
from dpr_jax.models.dpr import DPRHead
from dpr_jax.prompts.bank import PromptBank
from dpr_jax.train import faults
from dpr_jax.train.checkpoint import RunCheckpoints, abstract_with_shardings
from dpr_jax.train.logbook import Logbook
from dpr_jax.train.stages import STAGES, masked_optimizer, stage_dir
from dpr_jax.train.step import TrainState

Array = jax.Array
_NEG = -1e30


def build_head(config, num_tags: int) -> DPRHead:
  d = config.dpr
  return DPRHead(embed_dim=config.model.embed_dim, num_tags=num_tags,
                 adapter_hidden=d.adapter_hidden,
                 num_experts=d.num_experts, top_k=d.top_k, expert_hidden=d.expert_hidden,
                 dispatch=d.dispatch)


# ================================================================================ frozen context
@dataclasses.dataclass(frozen=True)
class FrozenCatalogue:
  """Stage 1's item table and the tag of every row, as device arrays for the head's losses."""

  table: Array  # float32[V, d]
  item_tags: Array  # float32[V, T] (padding rows zero)
  valid: Array  # bool[V]

  @classmethod
  def create(cls, table: Array, data: SplitData) -> "FrozenCatalogue":
    v = table.shape[0]
    tags = np.zeros((v, data.item_tags.shape[1]), np.float32)
    tags[:data.item_tags.shape[0]] = data.item_tags
    return cls(table=table, item_tags=jnp.asarray(tags), valid=valid_item_mask(v, data.num_items))

  def logits(self, u: Array, tag_bias: Array | None = None) -> Array:
    """Scores ``u @ E^T (+ tag_bias @ tags^T)``: float32[B, V], invalid rows at -1e30.

    Args:
      u: float[B, d]; tag_bias: float[B, T] or None (the tag coordinates of the user).
    """
    s = jnp.einsum("bd,vd->bv", u, self.table, preferred_element_type=jnp.float32)
    if tag_bias is not None:
      s = s + jnp.einsum("bt,vt->bv", tag_bias, self.item_tags)
    return jnp.where(self.valid[None, :], s, _NEG)

  def tag_log_mass(self, logits: Array, tag_multi_hot: Array) -> Array:
    """log of the softmax mass on items carrying any of the tags: float32[B]."""
    in_tag = (tag_multi_hot @ self.item_tags.T) > 0  # [B, V]
    return (jax.nn.logsumexp(jnp.where(in_tag, logits, _NEG), axis=-1)
            - jax.nn.logsumexp(logits, axis=-1))


def user_vectors(model: nn.Module, params, inputs: np.ndarray, batch_size: int = 256,
                 dropout_seed: int | None = None) -> np.ndarray:
  """float32[U, L, d]: the backbone's user vector at every position.

  With ``dropout_seed`` the backbone's dropout stays on: the backbone has fitted its training
  positions, so their clean user vectors are more certain than any at test time; noisy ones
  make stage 3 learn steering on vectors that look like unseen ones.
  """
  if dropout_seed is None:
    fn = jax.jit(lambda p, x, i: model.apply({"params": p}, x))
  else:
    key = jax.random.key(dropout_seed)
    fn = jax.jit(lambda p, x, i: model.apply({"params": p}, x, deterministic=False,
                                             rngs={"dropout": jax.random.fold_in(key, i)}))
  out = []
  for start in range(0, len(inputs), batch_size):
    out.append(np.asarray(fn(params, inputs[start:start + batch_size], start)))
  return np.concatenate(out)


# ================================================================================ examples
def alignment_examples(bank: PromptBank, tag_names) -> dict[str, np.ndarray]:
  """Stage 2: every training prompt with the tags it names."""
  rows = np.array([i for i, s in enumerate(bank.split) if s == "train"], np.int64)
  return {"prompt": bank.features[rows], "tags": bank.tag_matrix(tag_names)[rows].astype(np.float32)}


def steering_examples(data: SplitData, h_all: np.ndarray, catalogue: FrozenCatalogue,
                      bank: PromptBank, steer_config, seed: int):
  """Stage 3 examples (see the module docstring) -> (arrays, PromptChoice).

  Arrays, M examples: h float32[M, d], target int32[M], kind int32[M] (0 none, 1 positive,
  2 negative), tag int32[M] (-1 none), prompt_start / prompt_count int32[M].
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
            "prompt_start": start, "prompt_count": count}
  choice = pipeline.PromptChoice(rows=np.asarray(rows if rows else [0], np.int32),
                                 table=bank.features, seed=seed)
  return arrays, choice


# ================================================================================ losses
def alignment_loss(head: DPRHead, params, batch, catalogue: FrozenCatalogue):
  a = head.apply({"params": params}, batch["prompt"], method=head.adapt)
  loss = -jnp.mean(catalogue.tag_log_mass(catalogue.logits(a), batch["tags"]))
  return loss, {"loss": loss}


def steering_loss(head: DPRHead, params, batch, catalogue: FrozenCatalogue, steer_config):
  kind = batch["kind"]
  out = head.apply({"params": params}, batch["h"], batch["prompt"], kind > 0)
  logits = catalogue.logits(out.user, out.tag_bias)  # [B, V]
  lse = jax.nn.logsumexp(logits, axis=-1)
  ce = lse - jnp.take_along_axis(logits, batch["target"][:, None], axis=-1)[:, 0]
  tag_hot = jax.nn.one_hot(jnp.maximum(batch["tag"], 0), catalogue.item_tags.shape[1])
  log_mass = catalogue.tag_log_mass(logits, tag_hot)  # [B]
  positive = (kind == 1).astype(jnp.float32)
  negative = (kind == 2).astype(jnp.float32)
  # -log(1 - P(g)), with P(g) kept below 1 so the loss stays finite.
  suppress = -jnp.log1p(-jnp.minimum(jnp.exp(log_mass), 1.0 - 1e-6))
  loss_items = (ce + steer_config.tag_weight * positive * -log_mass
                + steer_config.suppress_weight * negative * suppress)
  aux = out.route.load_balance_loss
  # Keep the item-space offset small where a tag-level move (the tag coordinates) does the job.
  offset_sq = jnp.sum(jnp.square(out.user - batch["h"]), axis=-1)
  # A negative prompt should move its own tag only (the rest keep the backbone's order).
  other_tags_sq = jnp.sum(jnp.square(out.tag_bias) * (1.0 - tag_hot), axis=-1)  # [B]
  loss = (jnp.mean(loss_items) + steer_config.aux_weight * aux
          + steer_config.offset_weight * jnp.mean(offset_sq)
          + steer_config.focus_weight * jnp.mean(negative * other_tags_sq))
  return loss, {"loss": loss, "ce": jnp.mean(ce), "load_balance": aux,
                "offset_sq": jnp.mean(offset_sq)}


# ================================================================================ the loop
def run_stage(stage: int, config, data: SplitData, mesh: Mesh, catalogue: FrozenCatalogue,
              arrays: dict[str, np.ndarray], prompts: pipeline.PromptChoice | None,
              init_params, logbook: Logbook, train: bool = True) -> Any:
  """Trains the head for stage 2 or 3 and returns its final params.

  Resumes from the stage's own latest checkpoint; a finished stage is only restored. With
  ``train=False`` a stage without a checkpoint is an error (``--mode eval``).
  """
  spec = STAGES[stage]
  stage_config = config.stage2 if stage == 2 else config.stage3
  head = build_head(config, len(data.tag_names))
  num_examples = len(next(iter(arrays.values())))
  batch_size = min(stage_config.batch_size, num_examples)
  batch_size -= batch_size % mesh.shape["data"]
  order = pipeline.BatchOrder(num_examples, batch_size, config.train.seed + stage)
  spc = config.train.steps_per_call
  total = max(spc, -(-stage_config.epochs * order.steps_per_epoch // spc) * spc)
  save_every = max(spc, -(-order.steps_per_epoch * stage_config.checkpoint_every_epochs // spc) * spc)

  # ------------------------------------------------------------------ state, masks, shardings
  tx = masked_optimizer(optax.adamw(stage_config.lr, weight_decay=0.0), init_params, spec.trains)
  sample = {k: jnp.zeros((1,) + v.shape[1:], v.dtype) for k, v in arrays.items()}
  boxed_abstract = jax.eval_shape(lambda: _boxed_params(head, sample, prompts))
  param_shardings = sharding.tree_shardings(mesh, boxed_abstract)
  opt_shardings = sharding.tree_shardings(
      mesh, jax.eval_shape(lambda: tx.init(_boxed_params(head, sample, prompts))))
  shardings = TrainState(step=sharding.replicated(mesh), params=param_shardings,
                         opt_state=opt_shardings)
  state = jax.jit(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)),
                  out_shardings=shardings)(jax.device_put(init_params, param_shardings))
  ckpts = RunCheckpoints(stage_dir(config.run.dir, stage) / "checkpoints")
  fingerprint = {"stage": stage, "dpr": config_lib.dpr_fingerprint(config.dpr),
                 "model": config_lib.model_fingerprint(config.model),
                 "num_items": data.num_items, "examples": num_examples}
  restored = ckpts.restore_latest(abstract_with_shardings(state, shardings),
                                  lambda meta: _check(meta, fingerprint, ckpts.directory))
  if restored is not None:
    state = restored[0]
    ckpts.discard_after(int(state.step))
    logging.info("stage %d: resuming from step %d", stage, int(state.step))
  elif not train:
    raise CheckpointError(f"no stage-{stage} checkpoint in {ckpts.directory}; train first")

  # ------------------------------------------------------------------ compiled step
  def loss_fn(p, batch):
    if stage == 2:
      return alignment_loss(head, p, batch, catalogue)
    return steering_loss(head, p, batch, catalogue, config.stage3)

  def one_step(st: TrainState, batch):
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(st.params, batch)
    updates, opt_state = tx.update(grads, st.opt_state, st.params)
    return TrainState(st.step + 1, optax.apply_updates(st.params, updates), opt_state), metrics

  batch_spec = {k: sharding.batch_sharding(mesh, v.ndim + 1, batch_axis=1)
                for k, v in arrays.items()}
  if prompts is not None:
    batch_spec["prompt"] = sharding.batch_sharding(mesh, 3, batch_axis=1)
  train_steps = jax.jit(lambda st, b: jax.lax.scan(one_step, st, b),
                        in_shardings=(shardings, batch_spec),
                        out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=(0,))

  # ------------------------------------------------------------------ loop
  start = int(state.step)
  if train and start < total:
    dataset = pipeline.train_dataset(arrays, order, start, total - start, spc, prompts=prompts)
    bar = tqdm(total=total, initial=start, unit="step", desc=f"stage {stage} ({spec.name})",
               disable=not (config.run.progress and jax.process_index() == 0))
    pending, step = [], start
    for host_batch in pipeline.iterate(dataset):
      state, metrics = train_steps(state, pipeline.to_global(host_batch, mesh))
      faults.point("step")
      pending.append(metrics)
      step += spc
      bar.update(spc)
      if step % save_every == 0 or step == total:
        fetched = jax.device_get(pending)
        pending = []
        scalars = {f"stage{stage}/{k}": float(np.mean([m[k] for m in fetched]))
                   for k in fetched[0]}
        if not np.isfinite(scalars[f"stage{stage}/loss"]):
          ckpts.wait()
          raise CheckpointError(f"stage {stage}: loss became non-finite before step {step}; the"
                                f" last good checkpoint is kept in {ckpts.directory}")
        logbook.write(step, scalars, stage=stage)
        bar.set_postfix(loss=f"{scalars[f'stage{stage}/loss']:.3f}")
        ckpts.save_latest(step, state, {"fingerprint": fingerprint, "step": step})
    bar.close()
  ckpts.wait()
  ckpts.close()
  return state.params


def _boxed_params(head: DPRHead, sample, prompts):
  d_text = prompts.table.shape[1] if prompts is not None else sample["prompt"].shape[1]
  h = jnp.zeros((1, head.embed_dim))
  return head.init({"params": jax.random.key(0)}, h, jnp.zeros((1, d_text)),
                   jnp.ones((1,), bool))["params"]


def init_head_params(config, num_tags: int, text_dim: int, seed: int):
  """Fresh (unboxed) head params: what stage 2 starts from."""
  head = build_head(config, num_tags)
  boxed = head.init({"params": jax.random.key(seed)}, jnp.zeros((1, config.model.embed_dim)),
                    jnp.zeros((1, text_dim)), jnp.ones((1,), bool))["params"]
  return nn.unbox(boxed)


def restore_head(config, data: SplitData, text_dim: int, stage: int = 3):
  """The head params of ``stage``'s latest checkpoint, for serving (no training examples needed).

  The stage's fingerprint is checked except for its example count, which only the training run
  knows. ``text_dim`` is the width of the prompt features (encoder dim + 1).
  """
  head = build_head(config, len(data.tag_names))
  sample = {"prompt": jnp.zeros((1, text_dim), jnp.float32)}
  params = nn.unbox(_boxed_params(head, sample, None))
  tx = masked_optimizer(optax.adamw(1e-3), params, STAGES[stage].trains)
  abstract = jax.eval_shape(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)), params)
  expected = {"stage": stage, "dpr": config_lib.dpr_fingerprint(config.dpr),
              "model": config_lib.model_fingerprint(config.model),
              "num_items": data.num_items}
  ckpts = RunCheckpoints(stage_dir(config.run.dir, stage) / "checkpoints")

  def check(meta: dict):
    got = {k: v for k, v in meta.get("fingerprint", {}).items() if k != "examples"}
    if got != expected:
      raise CheckpointError(f"checkpoint in {ckpts.directory} was made with another config than"
                            f" {config.run.dir}/config.json")

  try:
    restored = ckpts.restore_latest(abstract, check)
  finally:
    ckpts.close()
  if restored is None:
    raise CheckpointError(f"no stage-{stage} checkpoint in {ckpts.directory}; train the DPR stages"
                          " first (--config.stages=1,2,3)")
  return restored[0].params


def _check(meta: dict, fingerprint: dict, where: pathlib.Path):
  if meta.get("fingerprint") != fingerprint:
    raise CheckpointError(f"checkpoint in {where} was made with another config; use a fresh"
                          " --config.run.dir")

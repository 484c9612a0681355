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

Stage 3 with the backbone training (``stage3.backbone_lr > 0``). Precomputed user vectors would
go stale as soon as the backbone moves, so the examples are grouped per user
(:func:`group_by_user`: the user's training inputs ``[L]`` and its K example positions) and each
step runs the backbone once per user, dropout on, and reads the K user vectors off that one
forward (a causal backbone's vector at position j sees only the history up to j). The item
table is part of the backbone, so the catalogue's scores use the current table. The backbone
starts from stage 1's best parameters, trains at ``backbone_lr`` (AdamW, no weight decay) while
the head trains at ``lr``, and is saved in stage 3's checkpoint (``params["backbone"]``); the
steering evaluation and the recommender then rank DPR's requests with it, while the baselines
keep stage 1's backbone. Unprompted examples (``1 - mix_positive - mix_negative``) keep it
anchored to next-item prediction; the SEQ row of the steering results shows how far it moved.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from dpr_jax import config as config_lib
from dpr_jax import console, sharding
from dpr_jax.data import pipeline
from dpr_jax.data.split import SplitData
from dpr_jax.errors import CheckpointError
from dpr_jax.models import build_backbone, retrieval, valid_item_mask
from dpr_jax.models.dpr import DPRHead
from dpr_jax.models.moe import load_balance_loss
from dpr_jax.prompts.bank import PromptBank
from dpr_jax.train import faults
from dpr_jax.train.checkpoint import (RunCheckpoints, abstract_with_shardings,
                                      fingerprint_differences)
from dpr_jax.train.logbook import Logbook
from dpr_jax.train.stages import STAGES, masked_optimizer, stage_dir
from dpr_jax.train.step import TrainState

Array = jax.Array


def build_head(config, num_tags: int, stage: int = 3) -> DPRHead:
  """The DPR head of ``stage`` (2 or 3): stage 2 never reads the tag profile (its experts are
  only carried along; :func:`widen_for_profile` adds the profile inputs for stage 3)."""
  d = config.dpr
  return DPRHead(embed_dim=config.model.embed_dim, num_tags=num_tags,
                 adapter_hidden=d.adapter_hidden,
                 num_experts=d.num_experts, top_k=d.top_k, expert_hidden=d.expert_hidden,
                 dispatch=d.dispatch, gates=d.gates, routing=d.routing,
                 use_profile=bool(d.user_profile) and stage == 3)


def widen_for_profile(config, head_params):
  """Stage 2's head params -> stage 3's: with ``dpr.user_profile`` the experts' first kernel
  gains T input rows for the tag profile, initialised to zero (stage 3 starts from exactly stage
  2's function and learns what the profile adds). Unchanged without the profile.

  ``experts/w1``: float[E, 3d, H] -> float[E, 3d + T, H].
  """
  if not config.dpr.user_profile:
    return head_params
  experts = head_params["experts"]
  w1 = experts["w1"]
  num_tags = experts["w2"].shape[-1] - config.model.embed_dim
  rows = jnp.zeros((w1.shape[0], num_tags, w1.shape[2]), w1.dtype)
  return dict(head_params, experts=dict(experts, w1=jnp.concatenate([w1, rows], axis=1)))


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


# ================================================================================ losses
def alignment_loss(head: DPRHead, params, batch, catalogue: FrozenCatalogue):
  a = head.apply({"params": params}, batch["prompt"], method=head.adapt)
  loss = -jnp.mean(catalogue.tag_log_mass(catalogue.logits(a), batch["tags"]))
  return loss, {"loss": loss}


def _tuned_backbone_view(backbone: nn.Module, params, batch, catalogue: FrozenCatalogue,
                        rng: Array):
  """Grouped examples -> the flat batch the head's loss reads, from the training backbone.

  ``batch`` holds inputs int32[B, L], prompt float[B, K, D_t] and [B, K] per-example fields;
  returns (flat batch with h float[B*K, d] and [B*K] fields, catalogue with the current item
  table, weight float32[B*K] (0 for empty slots)).
  """
  with jax.named_scope("backbone"):
    h_all = backbone.apply({"params": params}, batch["inputs"], deterministic=False,
                           rngs={"dropout": rng})  # [B, L, d]
    h = jnp.take_along_axis(h_all, batch["position"][..., None], axis=1)  # [B, K, d]
    table = backbone.apply({"params": params}, method=backbone.item_table)  # [V, d]
  flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in batch.items()
          if k not in ("inputs", "position")}
  flat["h"] = h.reshape(-1, h.shape[-1]).astype(jnp.float32)
  weight = flat.pop("valid").astype(jnp.float32)
  return flat, dataclasses.replace(catalogue, table=table), weight


def steering_loss(head: DPRHead, params, batch, catalogue: FrozenCatalogue, steer_config,
                  backbone: nn.Module | None = None, rng: Array | None = None):
  """Stage 3's loss (module docstring) on flat examples, or on grouped ones with the backbone
  training (``params["backbone"]``, ``backbone`` and a dropout ``rng`` given)."""
  weight = None
  if "inputs" in batch:
    batch, catalogue, weight = _tuned_backbone_view(backbone, params["backbone"], batch,
                                                    catalogue, rng)
    params = {k: v for k, v in params.items() if k != "backbone"}

  def mean(x):
    return jnp.mean(x) if weight is None else jnp.sum(x * weight) / jnp.maximum(jnp.sum(weight), 1)

  kind = batch["kind"]
  out = head.apply({"params": params}, batch["h"], batch["prompt"], kind > 0, batch.get("profile"),
                   kind == 2)
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
  aux = (out.route.load_balance_loss if weight is None else  # empty slots do not count
         load_balance_loss(out.route.expert_index, out.route.router_probs, weight))
  # Keep the item-space offset small where a tag-level move (the tag coordinates) does the job.
  offset_sq = jnp.sum(jnp.square(out.user - batch["h"]), axis=-1)
  # A negative prompt should move its own tag only (the rest keep the backbone's order).
  other_tags_sq = jnp.sum(jnp.square(out.tag_bias) * (1.0 - tag_hot), axis=-1)  # [B]
  loss = (mean(loss_items) + steer_config.aux_weight * aux
          + steer_config.offset_weight * mean(offset_sq)
          + steer_config.focus_weight * mean(negative * other_tags_sq))
  return loss, {"loss": loss, "ce": mean(ce), "load_balance": aux, "offset_sq": mean(offset_sq)}


# ================================================================================ the loop
def tunes_backbone(config, stage: int) -> bool:
  """Whether ``stage`` trains the backbone too (stage 3 with ``stage3.backbone_lr > 0``)."""
  return stage == 3 and config.stage3.backbone_lr > 0


def stage_optimizer(config, stage: int, params) -> optax.GradientTransformation:
  """AdamW on the stage's groups (``STAGES``), the backbone at ``stage3.backbone_lr`` when it
  tunes, zero updates elsewhere."""
  spec = STAGES[stage]
  stage_config = config.stage2 if stage == 2 else config.stage3
  finetune = (optax.adamw(config.stage3.backbone_lr, weight_decay=0.0)
              if tunes_backbone(config, stage) else None)
  return masked_optimizer(optax.adamw(stage_config.lr, weight_decay=0.0), params, spec.trains,
                          finetune, spec.finetunes)


def _fingerprint(config, data: SplitData, stage: int) -> dict:
  out = {"stage": stage, "dpr": config_lib.dpr_fingerprint(config.dpr),
         "model": config_lib.model_fingerprint(config.model), "num_items": data.num_items}
  if tunes_backbone(config, stage):  # (absent otherwise, so earlier runs still restore)
    out["backbone_lr"] = config.stage3.backbone_lr
  if stage == 3 and config.dpr.user_profile:  # (likewise)
    out["user_profile"] = True
  return out


def split_backbone(params) -> tuple[Any, Any]:
  """Stage params -> (head params, tuned backbone params or None)."""
  if "backbone" not in params:
    return params, None
  return {k: v for k, v in params.items() if k != "backbone"}, params["backbone"]


def run_stage(stage: int, config, data: SplitData, mesh: Mesh, catalogue: FrozenCatalogue,
              arrays: dict[str, np.ndarray], prompts: pipeline.PromptChoice | None,
              init_params, logbook: Logbook, train: bool = True,
              backbone: nn.Module | None = None) -> Any:
  """Trains the head for stage 2 or 3 and returns its final params.

  Resumes from the stage's own latest checkpoint; a finished stage is only restored. With
  ``train=False`` a stage without a checkpoint is an error (``--mode eval``). With the backbone
  tuning (:func:`tunes_backbone`), ``arrays`` are :func:`group_by_user`'s, ``init_params`` holds
  ``"backbone"`` (stage 1's parameters) and ``backbone`` is the backbone module; the returned
  params then hold the tuned backbone under ``"backbone"`` (see :func:`split_backbone`).
  """
  spec = STAGES[stage]
  stage_config = config.stage2 if stage == 2 else config.stage3
  head = build_head(config, len(data.tag_names), stage)
  grouped = tunes_backbone(config, stage)
  if grouped != ("inputs" in arrays) or grouped != ("backbone" in init_params) or (
      grouped and backbone is None):
    raise ValueError("stage 3 with the backbone tuning needs group_by_user examples, the"
                     " backbone module and its params in init_params (and only then)")
  num_examples = len(next(iter(arrays.values())))
  per_row = arrays["kind"].shape[1] if grouped else 1  # examples per row (per user)
  batch_size = min(max(1, stage_config.batch_size // per_row), num_examples)
  batch_size -= batch_size % mesh.shape["data"]
  order = pipeline.BatchOrder(num_examples, batch_size, config.train.seed + stage)
  spc = config.train.steps_per_call
  total = max(spc, -(-stage_config.epochs * order.steps_per_epoch // spc) * spc)
  save_every = max(spc, -(-order.steps_per_epoch * stage_config.checkpoint_every_epochs // spc) * spc)

  # ------------------------------------------------------------------ state, masks, shardings
  tx = stage_optimizer(config, stage, init_params)
  sample = {k: jnp.zeros((1,) + v.shape[1:], v.dtype) for k, v in arrays.items()}
  boxed = lambda: _boxed_params(head, sample, prompts, backbone if grouped else None,  # noqa: E731
                                data.max_len)
  param_shardings = sharding.tree_shardings(mesh, jax.eval_shape(boxed))
  opt_shardings = sharding.tree_shardings(mesh, jax.eval_shape(lambda: tx.init(boxed())))
  shardings = TrainState(step=sharding.replicated(mesh), params=param_shardings,
                         opt_state=opt_shardings)
  state = jax.jit(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)),
                  out_shardings=shardings)(jax.device_put(init_params, param_shardings))
  ckpts = RunCheckpoints(stage_dir(config.run.dir, stage) / "checkpoints")
  fingerprint = _fingerprint(config, data, stage) | {"examples": num_examples}
  restored = ckpts.restore_latest(abstract_with_shardings(state, shardings),
                                  lambda meta: _check(meta, fingerprint, ckpts.directory))
  if restored is not None:
    state = restored[0]
    ckpts.discard_after(int(state.step))
    logging.info("stage %d: resuming from step %d", stage, int(state.step))
  elif not train:
    raise CheckpointError(f"no stage-{stage} checkpoint in {ckpts.directory}; train first")

  # ------------------------------------------------------------------ compiled step
  dropout_key = jax.random.key(config.train.seed + stage)

  def loss_fn(p, batch, step, cat):
    if stage == 2:
      return alignment_loss(head, p, batch, cat)
    return steering_loss(head, p, batch, cat, config.stage3, backbone,
                         jax.random.fold_in(dropout_key, step))

  def train_calls(st: TrainState, b, cat: FrozenCatalogue):
    def one_step(st: TrainState, batch):
      (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(st.params, batch, st.step,
                                                                      cat)
      updates, opt_state = tx.update(grads, st.opt_state, st.params)
      return TrainState(st.step + 1, optax.apply_updates(st.params, updates), opt_state), metrics

    with sharding.activation_rules(mesh):
      return jax.lax.scan(one_step, st, b)

  batch_spec = {k: sharding.batch_sharding(mesh, v.ndim + 1, batch_axis=1)
                for k, v in arrays.items()}
  if prompts is not None:  # [S, B, D_t], or [S, B, K, D_t] grouped
    batch_spec["prompt"] = sharding.batch_sharding(mesh, arrays["prompt_count"].ndim + 2,
                                                   batch_axis=1)
  # The catalogue is an argument split over `model` (examples over `data`), not a constant.
  cat_shardings = catalogue.shardings(mesh)
  catalogue = jax.device_put(catalogue, cat_shardings)
  compiled_calls = jax.jit(train_calls, in_shardings=(shardings, batch_spec, cat_shardings),
                           out_shardings=(shardings, sharding.replicated(mesh)),
                           donate_argnums=(0,))
  train_steps = lambda st, b: compiled_calls(st, b, catalogue)  # noqa: E731

  # ------------------------------------------------------------------ loop
  start = int(state.step)
  if train and start < total:
    dataset = pipeline.train_dataset(arrays, order, start, total - start, spc, prompts=prompts)
    bar = console.StepBar(total, start, f"stage {stage} ({spec.name})",
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


def _boxed_params(head: DPRHead, sample, prompts, backbone: nn.Module | None = None,
                  max_len: int = 1):
  """The stage's boxed params (logical axes for the shardings): the head's, plus the
  backbone's under ``"backbone"`` when it is given."""
  d_text = prompts.table.shape[1] if prompts is not None else sample["prompt"].shape[-1]
  h = jnp.zeros((1, head.embed_dim))
  profile = jnp.zeros((1, head.num_tags)) if head.use_profile else None
  params = head.init({"params": jax.random.key(0)}, h, jnp.zeros((1, d_text)),
                     jnp.ones((1,), bool), profile, jnp.zeros((1,), bool))["params"]
  if backbone is not None:
    params = dict(params, backbone=backbone.init(
        {"params": jax.random.key(0)}, jnp.zeros((1, max_len), jnp.int32))["params"])
  return params


def init_head_params(config, num_tags: int, text_dim: int, seed: int):
  """Fresh (unboxed) head params: what stage 2 starts from."""
  head = build_head(config, num_tags, stage=2)
  boxed = head.init({"params": jax.random.key(seed)}, jnp.zeros((1, config.model.embed_dim)),
                    jnp.zeros((1, text_dim)), jnp.ones((1,), bool), None,
                    jnp.zeros((1,), bool))["params"]
  return nn.unbox(boxed)


def restore_head(config, data: SplitData, text_dim: int, stage: int = 3):
  """The params of ``stage``'s latest checkpoint, for serving (no training examples needed):
  the head's, plus the tuned backbone under ``"backbone"`` when the stage tuned it
  (:func:`split_backbone`).

  The stage's fingerprint is checked except for its example count, which only the training run
  knows. ``text_dim`` is the width of the prompt features (encoder dim + 1).
  """
  head = build_head(config, len(data.tag_names), stage)
  sample = {"prompt": jnp.zeros((1, text_dim), jnp.float32)}
  backbone = (build_backbone(config.model, data.num_items, data.max_len)
              if tunes_backbone(config, stage) else None)
  params = jax.eval_shape(lambda: nn.unbox(_boxed_params(head, sample, None, backbone,
                                                         data.max_len)))
  tx = stage_optimizer(config, stage, params)
  abstract = jax.eval_shape(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)), params)
  expected = _fingerprint(config, data, stage)
  ckpts = RunCheckpoints(stage_dir(config.run.dir, stage) / "checkpoints")

  def check(meta: dict):
    got = {k: v for k, v in meta.get("fingerprint", {}).items() if k != "examples"}
    if got != expected:
      raise CheckpointError(f"checkpoint in {ckpts.directory} was made with another config than"
                            f" {config.run.dir}/config.json"
                            f" ({fingerprint_differences(got, expected)})")

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
    differences = fingerprint_differences(meta.get("fingerprint") or {}, fingerprint)
    raise CheckpointError(f"checkpoint in {where} was made with another config ({differences});"
                          " use a fresh --config.run.dir or the run's own settings")

"""Stages 2 and 3: align the prompt adapter, then train the steering layers.

Here: the losses and the stage runner (:func:`run_stage`); the examples and the frozen
catalogue: :mod:`dpr_jax.train.examples`; the loop itself: :mod:`dpr_jax.train.loop`.

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
``tag_weight * -log P(g)`` and ``in_tag_weight * -log P(t | g)`` (the order within ``g``: what
the hard filter leaves to DPR), and for negatives the suppression loss ``suppress_weight *
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
import logging
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from dpr_jax import checkpoint, sharding
from dpr_jax.checkpoint import RunCheckpoints, abstract_with_shardings
from dpr_jax.data import pipeline
from dpr_jax.data.split import SplitData
from dpr_jax.errors import CheckpointError
from dpr_jax.models import build_head
from dpr_jax.models.dpr import DPRHead
from dpr_jax.models.moe import load_balance_loss
from dpr_jax.train import loop
from dpr_jax.train.examples import FrozenCatalogue
from dpr_jax.train.logbook import Logbook
from dpr_jax.train.stages import STAGES, masked_optimizer
from dpr_jax.train.step import TrainState

Array = jax.Array


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
  # -log P(t | g) = CE + log P(g) (a positive's target carries its tag g): the order within g.
  in_tag = ce + log_mass
  loss_items = (ce + steer_config.tag_weight * positive * -log_mass
                + steer_config.in_tag_weight * positive * in_tag
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
def stage_optimizer(config, stage: int, params) -> optax.GradientTransformation:
  """AdamW on the stage's groups (``STAGES``), the backbone at ``stage3.backbone_lr`` when it
  tunes, zero updates elsewhere."""
  spec = STAGES[stage]
  stage_config = config.stage2 if stage == 2 else config.stage3
  finetune = (optax.adamw(config.stage3.backbone_lr, weight_decay=0.0)
              if checkpoint.tunes_backbone(config, stage) else None)
  return masked_optimizer(optax.adamw(stage_config.lr, weight_decay=0.0), params, spec.trains,
                          finetune, spec.finetunes)


def run_stage(stage: int, config, data: SplitData, mesh: Mesh, catalogue: FrozenCatalogue,
              arrays: dict[str, np.ndarray], prompts: pipeline.PromptChoice | None,
              init_params, logbook: Logbook, train: bool = True,
              backbone: nn.Module | None = None) -> Any:
  """Trains the head for stage 2 or 3 and returns its final params.

  Resumes from the stage's own latest checkpoint; a finished stage is only restored. With
  ``train=False`` a stage without a checkpoint is an error (``--mode eval``). With the backbone
  tuning (:func:`dpr_jax.checkpoint.tunes_backbone`), ``arrays`` are :func:`group_by_user`'s, ``init_params`` holds
  ``"backbone"`` (stage 1's parameters) and ``backbone`` is the backbone module; the returned
  params then hold the tuned backbone under ``"backbone"`` (see :func:`dpr_jax.checkpoint.split_backbone`).
  """
  spec = STAGES[stage]
  stage_config = config.stage2 if stage == 2 else config.stage3
  head = build_head(config, len(data.tag_names), stage)
  grouped = checkpoint.tunes_backbone(config, stage)
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
  ckpts = RunCheckpoints(checkpoint.stage_dir(config.run.dir, stage) / "checkpoints")
  fingerprint = checkpoint.head_fingerprint(config, data, stage) | {"examples": num_examples}
  restored = ckpts.restore_latest(abstract_with_shardings(state, shardings),
                                  checkpoint.fingerprint_check(fingerprint, ckpts.directory))
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

  def at_point(point: loop.Point):  # log and checkpoint
    scalars = {f"stage{stage}/{k}": point.mean(k) for k in point.metrics}
    logbook.write(point.step, scalars, stage=stage)
    ckpts.save_latest(point.step, point.state, {"fingerprint": fingerprint, "step": point.step})
    return {"loss": f"{point.mean('loss'):.3f}"}, False

  # ------------------------------------------------------------------ loop
  start = int(state.step)
  if train and start < total:
    state = loop.run(
        state, pipeline.train_dataset(arrays, order, start, total - start, spc, prompts=prompts),
        lambda st, b, _: compiled_calls(st, b, catalogue), mesh, start=start, total=total,
        steps_per_call=spc, every=save_every, title=f"stage {stage} ({spec.name})",
        show=config.run.progress and jax.process_index() == 0, at_point=at_point, ckpts=ckpts,
        lr_key=f"stage{stage}.lr")
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

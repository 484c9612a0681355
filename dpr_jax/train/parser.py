"""The request parser's training (part of stage 2) and its evaluation.

Examples: requests from the compositional generator's *training* constructions and surface
forms (dpr_jax.prompts.generator), plus the domain's training templates (positive and nuanced:
want their tags; negative: avoid them), each labelled with every tag's stance. Inputs are the
frozen encoder's token states, computed once per distinct text and cached
(dpr_jax.prompts.reader.token_inputs), streamed through tf.data like every other stage.
Loss: per-tag cross-entropy over none / want / avoid (dpr_jax.models.parser.stance_loss).
An ensemble of ``parser.members`` parsers is trained one after the other, member k with seed
``train.seed + k`` (its own generated requests, initialisation, order and dropout); the
readers average their stance probabilities (dpr_jax.prompts.reader.make_parse).
Checkpoints: ``<run>/stage2/parser/checkpoints`` (member 0), ``.../parser/member<k>/checkpoints``;
a finished member is only restored. With ``parser.mix_encoder``, ``parser.mix_members`` more
parsers read that second encoder's token states (``.../parser/mix<k>/checkpoints``, trained the
same way with its own known forms); the readers weight the two groups' means
(``parser.mix_weight``).

Evaluation (``results_parser.json``): the share of requests whose every tag is read right, on
the generator's *held-out* constructions and forms, on the held-out templates, and on the
everyday set (dpr_jax.prompts.everyday).
"""

from __future__ import annotations

import json
import logging
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from dpr_jax import atomic, checkpoint, sharding
from dpr_jax.data import pipeline
from dpr_jax.errors import CheckpointError
from dpr_jax.models.parser import AVOID, WANT, Parse, slot_loss, stance_loss
from dpr_jax.prompts import everyday, generator
from dpr_jax.prompts.reader import build_parser, form_texts, known_forms, token_inputs
from dpr_jax.checkpoint import RunCheckpoints, abstract_with_shardings
from dpr_jax.train import loop
from dpr_jax.train.step import TrainState


def labels_of(want_avoid: Sequence[tuple[Sequence[str], Sequence[str]]],
              tag_names: Sequence[str]) -> np.ndarray:
  """int32[n, T]: 0 none, 1 want, 2 avoid (tags outside ``tag_names`` are ignored)."""
  index = {t: j for j, t in enumerate(tag_names)}
  out = np.zeros((len(want_avoid), len(tag_names)), np.int32)
  for i, (want, avoid) in enumerate(want_avoid):
    for t in want:
      if t in index:
        out[i, index[t]] = WANT
    for t in avoid:
      if t in index:
        out[i, index[t]] = AVOID
  return out


def template_requests(bank, split: str) -> tuple[list[str], list[tuple[tuple, tuple]]]:
  """The bank's prompts of ``split`` as labelled requests."""
  texts, labels = [], []
  for i, text in enumerate(bank.texts):
    if bank.split[i] == split:
      texts.append(text)
      labels.append(((), bank.tags[i]) if bank.polarity[i] < 0 else (bank.tags[i], ()))
  return texts, labels


def generated_requests(domain: str, split: str, n: int, seed: int, tag_names: Sequence[str],
                       composed: float = 0.0, composed_single: float = 0.0,
                       with_forms: bool = False):
  """``n`` generated requests of ``split`` (dpr_jax.prompts.generator.generate) and their
  (want, avoid) labels (and, ``with_forms``, the surface forms each request was written
  with); the held-out sets are always drawn without two-clause requests."""
  tags = [t for t in tag_names if generator.surface_forms(domain, t, split)]
  reqs = generator.generate(domain, split, n, seed, tags=tags, composed=composed,
                            composed_single=composed_single)
  out = [r.text for r in reqs], [(r.want, r.avoid) for r in reqs]
  return out + ([r.forms for r in reqs],) if with_forms else out


def slot_targets(texts: Sequence[str], forms: Sequence[Sequence[str] | None], tokenizer,
                 max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
  """Where each request names a tag, per token: (bool[n, S] the token overlaps one of the
  request's surface forms, found as whole words case-insensitively; bool[n] every form was
  found). ``forms[i]`` None (a template request) or a form a typo changed: known False.
  ``tokenizer``: the encoder's (``encode_batch`` with offsets, [CLS] first, as the token
  states)."""
  import re

  targets = np.zeros((len(texts), max_tokens), bool)
  known = np.zeros((len(texts),), bool)
  for i, (text, enc) in enumerate(zip(texts, tokenizer.encode_batch(list(texts)))):
    if forms[i] is None:
      continue
    found = [[m.span() for m in re.finditer(r"(?<![a-z0-9])" + re.escape(f.lower())
                                            + r"(?![a-z0-9])", text.lower())] for f in forms[i]]
    known[i] = all(found)  # a vague request (no forms): known, no token names a tag
    spans = [span for each in found for span in each]
    for j, ((a, b), special) in enumerate(zip(enc.offsets[:max_tokens],
                                              enc.special_tokens_mask[:max_tokens])):
      targets[i, j] = not special and b > a and any(a < e and b > s for s, e in spans)
  return targets, known


def contained_forms(texts: Sequence[str], forms: Sequence[str]) -> np.ndarray:
  """bool[n, M]: which known forms each text contains (case-insensitive, whole words)."""
  import re

  patterns = [re.compile(r"(?<![a-z])" + re.escape(f.lower()) + r"(?![a-z])") for f in forms]
  return np.array([[bool(p.search(t.lower())) for p in patterns] for t in texts], bool)


def parser_examples(config, bank, tag_names: Sequence[str], member: int = 0
                    ) -> tuple[list[str], np.ndarray, list[tuple[str, ...] | None]]:
  """Training texts of ensemble member ``member``, their labels int32[n, T] (module
  docstring) and the surface forms each generated request names (None for a template)."""
  texts, labels, forms = generated_requests(config.dpr.domain, "train", config.parser.requests,
                                            config.train.seed + member, tag_names,
                                            config.parser.composed_share,
                                            config.parser.composed_single_share, with_forms=True)
  t_texts, t_labels = template_requests(bank, "train")
  return (texts + t_texts, labels_of(labels + t_labels, tag_names),
          list(forms) + [None] * len(t_texts))


# ================================================================================ training
def parser_optimizer(pc) -> optax.GradientTransformation:
  """A parser's optimizer (``pc``: ``config.parser``)."""
  return optax.adamw(pc.lr, weight_decay=1e-4)


def parser_step(model, tx, pc, forms: jax.Array, form_tag: jax.Array, dropout_key: jax.Array):
  """One training step of a parser: ``(TrainState, batch) -> (TrainState, {"loss"})``, the
  batch's ``tokens``, ``mask``, ``cue``, ``labels`` int32[B, T], ``contains`` bool[B, M] (the
  known forms each request contains; form dropout hides them from a share of the requests) and,
  with ``pc.slot_loss``, ``slots`` / ``slot_known`` (:func:`slot_targets`), with
  ``pc.clause_cue``, ``clause_cue`` float32[B, S] (dpr_jax.prompts.reader.clause_cue_inputs)."""

  def one_step(st: TrainState, batch):
    key = jax.random.fold_in(dropout_key, st.step)
    # Form dropout: a share of the requests cannot match the forms they contain.
    drop = jax.random.bernoulli(jax.random.fold_in(key, 1), pc.form_dropout,
                                batch["contains"].shape[:1])
    exclude = batch["contains"] & drop[:, None]

    def loss_fn(p):
      logits, aux = model.apply({"params": p}, batch["tokens"], batch["mask"], batch["cue"],
                                forms, form_tag, deterministic=False, exclude=exclude,
                                clause_cue=batch.get("clause_cue"),
                                rngs={"dropout": key}, mutable=["intermediates"])
      loss = stance_loss(logits, batch["labels"])
      if pc.slot_loss > 0:
        loss += pc.slot_loss * slot_loss(aux["intermediates"]["slot_logits"][0],
                                         batch["slots"], batch["mask"], batch["slot_known"])
      return loss

    loss, grads = jax.value_and_grad(loss_fn)(st.params)
    updates, opt_state = tx.update(grads, st.opt_state, st.params)
    return (TrainState(st.step + 1, optax.apply_updates(st.params, updates), opt_state),
            {"loss": loss})

  return one_step


def _parser_state(config, tag_names: Sequence[str], text_dim: int, mesh: Mesh, member: int,
                  group: str = ""):
  """Member ``member``'s (model, optimizer, fresh state, its shardings, checkpoints,
  fingerprint, restored state or None)."""
  model = build_parser(config, len(tag_names))
  pc = config.parser
  ckpts = RunCheckpoints(checkpoint.parser_dir(config.run.dir, member, group))
  fingerprint = checkpoint.parser_fingerprint(config, tag_names)
  tx = parser_optimizer(pc)
  sample = (jnp.zeros((1, pc.max_tokens, text_dim), jnp.float16),
            jnp.ones((1, pc.max_tokens), bool), jnp.zeros((1,), jnp.float32),
            jnp.zeros((1, text_dim), jnp.float32), jnp.zeros((1,), jnp.int32))
  clause_cue = jnp.zeros((1, pc.max_tokens), jnp.float32) if pc.clause_cue else None
  boxed = lambda: model.init({"params": jax.random.key(config.train.seed + member)},  # noqa: E731
                             *sample, clause_cue=clause_cue)["params"]
  shardings = TrainState(step=sharding.replicated(mesh),
                         params=sharding.tree_shardings(mesh, jax.eval_shape(boxed)),
                         opt_state=sharding.tree_shardings(
                             mesh, jax.eval_shape(lambda: tx.init(boxed()))))
  state = jax.jit(lambda: (lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)))(
      nn.unbox(boxed())), out_shardings=shardings)()

  def check(meta):
    if meta.get("fingerprint") != fingerprint:
      raise CheckpointError(f"parser checkpoint in {ckpts.directory} was made with other"
                            " settings; use a fresh --config.run.dir")

  restored = ckpts.restore_latest(abstract_with_shardings(state, shardings), check)
  return model, tx, state, shardings, ckpts, fingerprint, (
      None if restored is None else restored[0])


def train_parser(config, tag_names: Sequence[str], bank, mesh: Mesh, cache_dir,
                 encoder: str | None, logbook, train: bool = True):
  """Trains (or restores) every member of the parser ensemble; returns their params stacked,
  leaves ``[parser.members, ...]`` (dpr_jax.checkpoint.stack_members)."""
  return checkpoint.stack_members([
      _train_member(config, tag_names, bank, mesh, cache_dir, encoder, logbook, train, k)
      for k in range(config.parser.members)])


def train_mix_parser(config, tag_names: Sequence[str], bank, mesh: Mesh, cache_dir, logbook,
                     train: bool = True):
  """Trains (or restores) the second encoder's parsers (``parser.mix_encoder``); their params
  stacked (leaves ``[parser.mix_members, ...]``), or None without a second encoder."""
  if not config.parser.mix_encoder:
    return None
  mixed = checkpoint.mix_config(config)
  return checkpoint.stack_members([
      _train_member(mixed, tag_names, bank, mesh, cache_dir, mixed.dpr.text_encoder, logbook,
                    train, k, group="mix")
      for k in range(config.parser.mix_members)])


def _train_member(config, tag_names: Sequence[str], bank, mesh: Mesh, cache_dir,
                  encoder: str | None, logbook, train: bool, member: int, group: str = ""):
  """Trains (or restores) member ``member`` (of ``group``: "" or "mix"); returns its params."""
  pc = config.parser
  seed = config.train.seed + member
  known = known_forms(config.dpr.domain, tag_names, cache_dir, encoder)  # that encoder's width
  model, tx, state, shardings, ckpts, fingerprint, restored = _parser_state(
      config, tag_names, known[0].shape[1], mesh, member, group)
  if restored is not None:
    state = restored
  if not train:
    ckpts.close()
    if restored is None:
      raise CheckpointError(f"no parser checkpoint in {ckpts.directory}; " + (
          "train stage 2 first" if member == 0 or group
          else checkpoint.missing_members(member, config.parser.members)))
    return jax.device_get(state.params)
  texts, labels, names = parser_examples(config, bank, tag_names, member)
  forms, form_tag = (jnp.asarray(a) for a in known)
  batch_size = min(pc.batch_size, len(texts))
  batch_size -= batch_size % mesh.shape["data"]
  order = pipeline.BatchOrder(len(texts), batch_size, seed + 20)
  spc = config.train.steps_per_call
  total = max(spc, -(-pc.epochs * order.steps_per_epoch // spc) * spc)
  start = int(state.step)
  if start < total:
    arrays = token_inputs(texts, cache_dir, encoder, pc.max_tokens, pc.sentence_states,
                          clause_cue=pc.clause_cue) | {
        "labels": labels,
        "contains": contained_forms(texts, form_texts(config.dpr.domain, tag_names)[0])}
    if pc.slot_loss > 0:  # where each generated request names its tags
      from dpr_jax.prompts.encoder import TextEncoder

      arrays["slots"], arrays["slot_known"] = slot_targets(
          texts, names, TextEncoder.from_pretrained(encoder).tokenizer, pc.max_tokens)
    dropout_key = jax.random.key(seed + 21)

    one_step = parser_step(model, tx, pc, forms, form_tag, dropout_key)

    batch_spec = {k: sharding.batch_sharding(mesh, v.ndim + 1, batch_axis=1)
                  for k, v in arrays.items()}
    steps = jax.jit(lambda st, b: jax.lax.scan(one_step, st, b), in_shardings=(shardings, batch_spec),
                    out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=(0,))

    loss_key = (f"parser/{group}{member}/loss" if group else
                "parser/loss" if member == 0 else f"parser/member{member}/loss")
    title = (f"stage 2 (request parser, second encoder {member + 1}/{pc.mix_members})" if group
             else "stage 2 (request parser)" if pc.members == 1 else
             f"stage 2 (request parser {member + 1}/{pc.members})")

    def at_point(point: loop.Point):  # log and checkpoint
      logbook.write(point.step, {loss_key: point.mean("loss")}, stage=2)
      ckpts.save_latest(point.step, point.state, {"fingerprint": fingerprint, "step": point.step})
      return {"loss": f"{point.mean('loss'):.3f}"}, False

    state = loop.run(
        state, pipeline.train_dataset(arrays, order, start, total - start, spc),
        lambda st, b, _: steps(st, b), mesh, start=start, total=total, steps_per_call=spc,
        every=max(spc, -(-order.steps_per_epoch * 5 // spc) * spc),
        title=title,
        show=config.run.progress and jax.process_index() == 0, at_point=at_point, ckpts=ckpts,
        lr_key="parser.lr")
  ckpts.wait()
  ckpts.close()
  return jax.device_get(state.params)


# ================================================================================ evaluation
def exact(parses: Sequence[Parse], labels: Sequence[tuple[Sequence[str], Sequence[str]]]) -> np.ndarray:
  """bool[n]: the request's every tag read right (the wanted and avoided sets are the labels)."""
  return np.array([{t for t, _ in p.want} == set(w) and {t for t, _ in p.avoid} == set(a)
                   for p, (w, a) in zip(parses, labels)], bool)


def inverted(parses: Sequence[Parse], labels: Sequence[tuple[Sequence[str], Sequence[str]]]) -> np.ndarray:
  """bool[n]: the request read as its opposite somewhere -- a wanted tag read as avoided or an
  avoided one as wanted (the misreading that turns a list against the person's wish)."""
  return np.array([bool({t for t, _ in p.want} & set(a) or {t for t, _ in p.avoid} & set(w))
                   for p, (w, a) in zip(parses, labels)], bool)


def marked_unsure(parses: Sequence[Parse]) -> np.ndarray:
  """bool[n]: the answer marks some read tag of the request as unsure (``Parse.unsure``,
  ``parser.unsure_at``)."""
  return np.array([bool(p.unsure) for p in parses], bool)


def evaluate_parser(config, parse, bank, tag_names: Sequence[str]) -> dict:
  """Per-request accuracy (every tag right), the share read as its opposite (:func:`inverted`)
  and the shares of those read as their opposite and of those read right that the answer marks
  as unsure (:func:`marked_unsure`; null where there are none) on held-out generated requests,
  held-out templates and the everyday set (requests about tags the catalogue has)."""
  sets = {"generator held-out": generated_requests(config.dpr.domain, "heldout",
                                                   config.parser.heldout_requests,
                                                   config.train.seed + 1, tag_names),
          "templates held-out": template_requests(bank, "eval")}
  known = set(tag_names)
  daily = [r for r in everyday.load(config.dpr.domain) if set(r.want + r.avoid) <= known]
  sets["everyday"] = ([r.text for r in daily], [(r.want, r.avoid) for r in daily])
  out = {}
  for name, (texts, labels) in sets.items():
    parses = parse(texts)
    ok, inv = exact(parses, labels), inverted(parses, labels)
    marked = marked_unsure(parses)
    out[name] = {"requests": len(texts), "accuracy": float(ok.mean()) if len(ok) else 0.0,
                 "inverted": float(inv.mean()) if len(inv) else 0.0,
                 "inverted_marked_unsure": float(marked[inv].mean()) if inv.any() else None,
                 "right_marked_unsure": float(marked[ok].mean()) if ok.any() else None}
    if name == "everyday":
      for kind in everyday.KINDS:
        sel = np.array([r.kind == kind for r in daily], bool)
        out[name][kind] = float(ok[sel].mean()) if sel.any() else 0.0
  return out


def write_parser_results(run_dir, results: dict) -> str:
  path = atomic.as_path(run_dir) / "results_parser.json"
  atomic.write_text(path, json.dumps(results, indent=2))
  logging.info("request parser: %s", results)
  return str(path)

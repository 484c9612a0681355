"""All stages of one run, in order: the stage hand-off of dpr_jax/train/stages.py as code.

    stage 1  trainer.train_and_evaluate      -> <run>/stage1, results_seq.{json,md}
    stage 2  steering.run_stage(2)          -> <run>/stage2
             parser.train_parser             -> <run>/stage2/parser, results_parser.json
    stage 3  steering.run_stage(3)          -> <run>/stage3, results_steering.{json,md,png}

Stages not listed in ``config.stages`` are restored from their checkpoints when a later stage
or the steering evaluation needs them; a training run without stage 3 on a run whose stage 3 was
never trained (``--config.stages=1,2``) stops after stage 2, its parser evaluated.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import config as config_lib
from dpr_jax import atomic, checkpoint, distributed, sharding
from dpr_jax.data.prepare import default_cache_dir, prepare, require_tags
from dpr_jax.errors import CheckpointError
from dpr_jax.eval import steering as steering_eval
from dpr_jax.models import build_head, retrieval
from dpr_jax.prompts import everyday, reader
from dpr_jax.prompts.bank import build_bank, item_text_embeddings, text_features
from dpr_jax.train import parser as parser_lib
from dpr_jax.train import examples, steering, trainer
from dpr_jax.train.logbook import Logbook
from dpr_jax.train.stages import parse_stages


def run(config, mode: str = "train") -> dict:
  """Runs (or, with mode="eval", restores and evaluates) the configured stages."""
  stages = parse_stages(config.stages)
  out: dict = {"files": []}
  trainer.check_config(config)  # config mistakes before anything is written
  if max(stages) > 1:  # refuse data without tags before stage 1 spends its time
    require_tags(distributed.first_process_then_others("prepare", lambda: prepare(config.data)),
                 config.data)
    if config.parser.mix_encoder:  # and a second encoder that is not there
      from dpr_jax.prompts.encoder import resolve_model_dir

      resolve_model_dir(config.parser.mix_encoder)

  def save_config():  # what `dpr_jax.recommend --run` reads; only once the checkpoints fit it
    if mode == "train" and jax.process_index() == 0:
      config_lib.save_run_config(config, config.run.dir)

  if 1 in stages:
    out |= trainer.train_and_evaluate(config, mode=mode)
    save_config()
  if max(stages) == 1:
    return out
  files = out.pop("files", [])

  # ------------------------------------------------------------------ frozen backbone context
  # Caches are built by process 0 first, then read by the others.
  data = distributed.first_process_then_others("prepare", lambda: prepare(config.data))
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.model)
  model, backbone_params = checkpoint.load_backbone(config, data, mesh)
  if 1 not in stages:
    save_config()
  table = model.apply({"params": backbone_params}, method=model.item_table)
  catalogue = examples.FrozenCatalogue.create(table, data)
  cache_dir = atomic.as_path(config.data.cache_dir or default_cache_dir())
  encoder = config.dpr.text_encoder or None
  bank = distributed.first_process_then_others(
      "prompt-bank", lambda: build_bank(config.dpr.domain, data.tag_names, cache_dir, encoder))
  logbook = Logbook(config.run.dir, enabled=jax.process_index() == 0)
  train = mode == "train"

  # ------------------------------------------------------------------ stage 2: align
  head_params = steering.init_head_params(config, len(data.tag_names), bank.features.shape[1],
                                         config.train.seed)
  head_params = steering.run_stage(
      2, config, data, mesh, catalogue, examples.alignment_examples(bank, data.tag_names), None,
      head_params, logbook, train=train and 2 in stages)

  # ------------------------------------------------------------------ stage 2: request parser
  # Trained with every stage 2, whichever reader serves (dpr.reader is inference-only); a run
  # from before the parser has none, which only the parser reader needs.
  try:
    parser_params = parser_lib.train_parser(config, data.tag_names, bank, mesh, cache_dir,
                                            encoder, logbook, train=train and 2 in stages)
    mix_params = parser_lib.train_mix_parser(config, data.tag_names, bank, mesh, cache_dir,
                                             logbook, train=train and 2 in stages)
  except CheckpointError:
    if config.dpr.reader == "parser":
      raise
    parser_params = mix_params = None
  if parser_params is not None:
    parse = reader.make_parse(config, parser_params, data.tag_names, cache_dir, encoder,
                              mix_params=mix_params)
    parsed = parser_lib.evaluate_parser(config, parse, bank, data.tag_names)
    if jax.process_index() == 0:
      files.append(parser_lib.write_parser_results(config.run.dir, parsed))
  if train and 3 not in stages and not checkpoint.has_checkpoint(
      checkpoint.stage_dir(config.run.dir, 3) / "checkpoints"):
    # e.g. --config.stages=1,2: nothing to restore for stage 3, so no steering evaluation yet.
    logging.warning("stage 3 has not been trained in %s: stopping after stage 2 (train it with"
                    " --config.stages=3; the steering evaluation follows it)", config.run.dir)
    logbook.close()
    return out | {"files": files}

  # ------------------------------------------------------------------ stage 3: steer
  h_all = examples.user_vectors(
      model, backbone_params, data.train_inputs,
      dropout_seed=config.train.seed if config.stage3.noisy_user_vectors else None, mesh=mesh)
  arrays, prompts = examples.steering_examples(data, h_all, catalogue, bank, config.stage3,
                                               config.train.seed, config.dpr.user_profile)
  head_params = steering.widen_for_profile(config, head_params)
  del h_all
  if checkpoint.tunes_backbone(config, 3):  # the backbone trains too: one forward per user
    arrays = examples.group_by_user(arrays, data, config.stage3.positions_per_user)
    head_params = dict(head_params, backbone=backbone_params)
  else:  # frozen: every example's user vector is already computed
    arrays = examples.frozen_backbone_examples(arrays)
  head_params, tuned = checkpoint.split_backbone(steering.run_stage(
      3, config, data, mesh, catalogue, arrays, prompts, head_params, logbook,
      train=train and 3 in stages, backbone=model))

  # ------------------------------------------------------------------ steering evaluation
  head = build_head(config, len(data.tag_names))
  item_text = distributed.first_process_then_others("item-text", lambda: item_text_embeddings(
      data.item_titles, data.item_tags, data.tag_names, cache_dir,
      f"{config.data.name}-{config.data.format}", encoder))
  vocab = table.shape[0]
  item_text = np.concatenate([item_text, np.zeros((vocab - len(item_text), item_text.shape[1]),
                                                  np.float32)])
  item_tags = np.zeros((vocab, data.item_tags.shape[1]), bool)
  item_tags[:len(data.item_tags)] = data.item_tags
  # Every primary row ranks with the backbone DPR ranks with (stage 3's when it was tuned);
  # stage 1's is then a reference row (docs/protocol.md).
  primary = backbone_params if tuned is None else tuned
  scorer = steering_eval.Scorer(
      user_vectors=lambda x: model.apply({"params": primary}, x, method=model.user_vector),
      steer=steering_eval.head_steer(head, head_params),
      table=model.apply({"params": primary}, method=model.item_table),
      item_text=jnp.asarray(item_text), item_tags=jnp.asarray(item_tags),
      num_items=data.num_items, negative_steering=config.dpr.negative_steering,
      positive_steering=config.dpr.positive_steering,
      positive_scale=config.dpr.positive_scale,
      filter_positive_scale=config.dpr.filter_positive_scale,
      filter_negative_scale=config.dpr.filter_negative_scale,
      reference_user_vectors=None if tuned is None else (
          lambda x: model.apply({"params": backbone_params}, x, method=model.user_vector)),
      reference_table=None if tuned is None else table,
      routes=steering_eval.head_routes(head, head_params),
      mesh=mesh)
  top10 = {split: _backbone_top10(scorer, data, split) for split in ("valid", "test")}
  if config.dpr.reader == "parser":  # requests read as the recommender reads them
    read = reader.parser_reader(parse, reader.canonical_features(bank, data.tag_names,
                                                                config.dpr.canonical_want))
  else:
    read = reader.rules_reader(lambda texts: text_features(
        texts, cache_dir, f"combined-{config.dpr.domain}", encoder))
  results = steering_eval.evaluate_steering(scorer, data, bank, config.train.seed, top10,
                                            config.dpr.domain, read, config.dpr.num_experts,
                                            everyday.load(config.dpr.domain),
                                            progress=config.run.progress
                                            and jax.process_index() == 0)
  if jax.process_index() == 0:
    files += [str(f) for f in steering_eval.write_steering_results(
        config.run.dir, results, data.manifest, config.train.seed,
        {"model": config.model.name, "dpr": config.dpr.to_dict(),
         "prompt_bank": bank.manifest,
         "parser": request_reading(config),
         "dpr_backbone": ("stage 1 (frozen in stage 3)" if tuned is None else
                          f"stage 3 (tuned at lr {config.stage3.backbone_lr}); every primary"
                          " row uses it, the 'stage1' rows stage 1's")})]
  for switch, choice in results["selection"].items():
    if choice.get("configured", choice.get("best_on_valid")) != choice.get("best_on_valid"):
      logging.warning("dpr.%s=%r, but %r is better on validation (%s)", switch,
                      choice["configured"], choice["best_on_valid"], choice["valid ndcg@10"])
  logbook.close()
  logging.info("steering results: %s", {k: results[k] for k in steering_eval.TABLE_KEYS[1:]
                                         if k in results})
  return out | {"steering": results, "files": files}


def request_reading(config) -> dict | None:
  """How the steering evaluation read its requests, for the results' protocol: the parser's
  settings (its ensemble: ``members``, a second encoder's ``mix_*``), or None when the rules
  reader read them (``dpr.reader = "rules"``)."""
  return config.parser.to_dict() if config.dpr.reader == "parser" else None


def _backbone_top10(scorer, data, split: str, batch_size: int = 512) -> np.ndarray:
  """int[U, 10]: the backbone's unprompted top-10 (seen items masked) for NEG user selection;
  the users split over the scorer's mesh."""
  from dpr_jax.eval.ranking import seen_mask
  from dpr_jax.models import valid_item_mask

  _, targets, seen_len = data.eval_split(split)
  users = scorer.user_table(data, split)
  vocab = scorer.table.shape[0]

  def top(h, hist, slen, tgt):
    s = retrieval.scores(h, scorer.table)
    ok = valid_item_mask(vocab, scorer.num_items)[None, :] & ~seen_mask(hist, slen, tgt, vocab)
    return retrieval.top_k(s, ok, 10)[1]

  run = sharding.RowParallel(top, scorer.mesh)
  out = []
  for i in range(0, data.num_users, batch_size):
    rows = np.minimum(np.arange(i, i + batch_size), data.num_users - 1)  # the last one padded
    out.append(run(users[rows], data.history[rows], seen_len[rows], targets[rows]))
  return np.concatenate(out)[:data.num_users]


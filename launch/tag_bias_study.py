"""Where does DPR + filter's margin over the filter come from on POS and NUANCED? (issue 17;
reports/experiments.md, 2026-12-05.)

    python launch/tag_bias_study.py --config configs/ml1m_sasrec.py:dpr --config.run.dir=RUN

RUN is a trained DPR run (stages 1-3). The script restores it as ``--mode eval --config.stages=3``
does (stage 1 is not evaluated again), builds the steering tasks, and, in place of the steering
evaluation, prints the study below as markdown for **validation** users; no test figure is
computed and no results file in RUN is written (nor the parser's; as any ``--mode eval``, the
logbook opens an empty TensorBoard event file).

Under the hard filter every remaining item carries the asked tag g, so DPR can only reorder
them, through two things the head outputs for the request: the item-space offset ``h' - h``
and the tag coordinates ``b`` (``scores = h' E^T + b tags^T``; ``b_g`` is the same for every
allowed item). Rows (DPR + filter NDCG@10 over the filter's, the same users and requests):

* as evaluated: offset and tag coordinates at ``dpr.filter_positive_scale``;
* offset only / tag coordinates only;
* the tag coordinates with their other tags' values replaced by a function of the tag's share
  of the user's history alone (the mean over share buckets, of tags *not* rarer than g): what
  a profile-only prior gives;
* the tag coordinates minus their relative-to-g part (per share bucket, the mean extra weight a
  tag rarer than g gets over a tag of the same share that is not);
* the tasks' selection rule alone, no learning: -4 on every tag rarer than g in the user's
  history (g is the target's rarest off-habit tag, so an item carrying a rarer tag is never the
  target; ``selection_bound`` is this rule as a hard filter).

and the mean tag coordinate per share bucket, for tags rarer than g and tags that are not.
"""

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app

from dpr_jax import launch
from dpr_jax.eval import steering as steering_eval
from dpr_jax.eval.metrics import metrics_at_k, target_rank
from dpr_jax.eval.ranking import seen_mask
from dpr_jax.eval.steering.tasks import build_tasks
from dpr_jax.models import retrieval, valid_item_mask
from dpr_jax.models.dpr import positive_part
from dpr_jax.prompts.combine import is_negative
from dpr_jax.train import parser as parser_lib

EDGES = (0.0, 1e-9, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 1.01)  # share buckets
TAG_SCALES = (0.125, 0.25, 0.5, 1.0)  # strengths of the tag coordinates compared
RULE_PENALTY = 4.0  # the rule's row: subtracted per tag rarer than g (saturates from ~4 on)


def steered(scorer, h, prompts, share, batch=512):
  """The head's (h' float[U, d], b float[U, T]) for positive requests, as DPR + filter steers
  them (``positive_part`` in the configured mode; scales applied later)."""
  users, biases = [], []
  for s in range(0, len(h), batch):
    neg = jnp.zeros(len(h[s:s + batch]), bool)
    u, b = scorer.steer(jnp.asarray(h[s:s + batch]), jnp.asarray(prompts[s:s + batch]),
                        jnp.asarray(share[s:s + batch]), neg)
    users.append(np.asarray(u))
    biases.append(np.asarray(positive_part(b, ~neg, scorer.positive_steering)))
  return np.concatenate(users), np.concatenate(biases)


@functools.partial(jax.jit, static_argnames="num_items")
def _filtered_ndcg(h, u, b, g, history, seen_len, target, table, item_tags, s_u, s_b, num_items):
  """float32[B]: NDCG@10 of ``h + s_u (u - h)`` with tag coordinates ``s_b b`` among the
  unseen valid items of tag ``g`` -- the evaluation's "dpr+filter" ranking with the offset and
  the tag coordinates scaled apart."""
  vocab = table.shape[0]
  scores = retrieval.scores(h + s_u * (u - h), table, s_b * b, item_tags)
  candidates = valid_item_mask(vocab, num_items)[None, :] & ~seen_mask(history, seen_len, target,
                                                                        vocab)
  candidates &= jnp.take(item_tags, g, axis=1).T
  rank = target_rank(retrieval.mask(scores, candidates), target, candidates)
  return metrics_at_k(rank, (10,))["ndcg@10"]


def filtered_ndcg(scorer, data, users, tag, h, u, b, s_u, s_b, batch=512):
  """float: mean over ``users`` (validation) of :func:`_filtered_ndcg`."""
  _, targets, seen_len = data.eval_split("valid")
  out = []
  for s in range(0, len(users), batch):
    rows, us = slice(s, s + batch), users[s:s + batch]
    out.append(np.asarray(_filtered_ndcg(
        h[rows], u[rows], b[rows], tag[rows], data.history[us], seen_len[us], targets[us],
        scorer.table, scorer.item_tags, s_u, s_b, num_items=scorer.num_items)))
  return float(np.concatenate(out).mean())


def study_tables(scorer, data, bank, seed, backbone_top10, domain=None, read=None) -> dict:
  """The study on validation users: {task: {"users", "filter", "rows": {row: {tag scale:
  ratio}}, "rarer", "other" (mean tag coordinate per share bucket), "asked"}}."""
  tasks = build_tasks(data, "valid", bank, backbone_top10["valid"], seed, domain, read)
  scale = scorer.filter_positive_scale
  out = {}
  for name in ("POS", "NUANCED"):
    task = tasks[name]
    # The users whose request was read as one positive part (the others are steered another
    # way by the evaluation; counted, not studied).
    negative = (np.array([is_negative(t) for t in bank.texts], bool) if task.negative is None
                else task.negative)
    one_part = (task.prompt >= 0) & ~negative[np.maximum(task.prompt, 0)]
    if task.prompt2 is not None:
      one_part &= task.prompt2 < 0
    users, g, prompt = task.users[one_part], task.tag[one_part], task.prompt[one_part]
    rows = np.arange(len(users))
    h = scorer.user_table(data, "valid")[users]
    share = scorer.tag_share(data, "valid")[users].astype(np.float32)
    prompts = (bank.features if task.features is None else task.features)[prompt]
    u, b = steered(scorer, h, prompts.astype(np.float32), share)
    other = np.ones_like(b, bool)
    other[rows, g] = False
    rarer = other & (share < share[rows, g][:, None])
    bucket = np.digitize(share, EDGES) - 1

    def bucket_mean(mask):
      return np.array([b[mask & (bucket == i)].mean() if (mask & (bucket == i)).any()
                       else np.nan for i in range(len(EDGES) - 1)])

    plain, extra = bucket_mean(other & ~rarer), bucket_mean(rarer)
    plain = np.where(np.isnan(plain), bucket_mean(other), plain)
    delta = np.nan_to_num(extra - plain)  # the relative-to-g part, per bucket
    keep_g = lambda x: np.where(other, x, b).astype(np.float32)  # noqa: E731
    base = filtered_ndcg(scorer, data, users, g, h, u, np.zeros_like(b), 0.0, 0.0)

    def ratio(bias, s_u, s_b):
      return filtered_ndcg(scorer, data, users, g, h, u, bias, s_u, s_b) / base

    table = {f"as evaluated (offset and tags at {scale})": {scale: ratio(b, scale, scale)},
             f"offset only (at {scale}, tags 0)": {scale: ratio(b, scale, 0.0)}}
    for label, bias in (("tag coordinates only", b),
                        ("tags: share-only prior", keep_g(plain[bucket])),
                        ("tags minus their relative-to-g part", keep_g(b - delta[bucket] * rarer))):
      table[label] = {s: ratio(bias, 0.0, s) for s in TAG_SCALES}
    table[f"the selection rule alone (-{RULE_PENALTY:g} per tag rarer than g)"] = {
        1.0: ratio(keep_g(-RULE_PENALTY * rarer), 0.0, 1.0)}
    out[name] = {"users": len(users), "not_read": int((~one_part).sum()), "filter": base,
                 "rows": table, "rarer": extra, "other": plain,
                 "asked": float(b[rows, g].mean()), "scale": scale}
  return out


def markdown(tables: dict) -> str:
  lines = []
  for name, t in tables.items():
    lines += [f"## {name}: {t['users']} validation users, filter NDCG@10 {t['filter']:.4f}"
              f" (dpr.filter_positive_scale = {t['scale']}; {t['not_read']} users whose request"
              " was not read as one positive part left out)", "",
              "| DPR + filter / filter | as named | " + " | ".join(
                  f"tag scale {s}" for s in TAG_SCALES) + " |",
              "|---|---|" + "---|" * len(TAG_SCALES)]
    for label, by_scale in t["rows"].items():
      if len(by_scale) == 1:  # one strength, named in the row
        cells = [f"{next(iter(by_scale.values())):.3f}"] + [""] * len(TAG_SCALES)
      else:
        cells = [""] + [f"{by_scale[s]:.3f}" for s in TAG_SCALES]
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| share of the user's history | " + " | ".join(
        f"[{lo:g}, {hi:g})" for lo, hi in zip(EDGES[:-1], EDGES[1:])) + " |",
              "|---|" + "---|" * (len(EDGES) - 1),
              "| mean tag coordinate, tags rarer than g | " + " | ".join(
                  "-" if np.isnan(x) else f"{x:+.2f}" for x in t["rarer"]) + " |",
              "| mean tag coordinate, other tags | " + " | ".join(
                  f"{x:+.2f}" for x in t["other"]) + " |", "",
              f"(the asked tag's own coordinate: mean {t['asked']:+.2f})", ""]
  return "\n".join(lines)


def study(scorer, data, bank, seed, backbone_top10, domain=None, read=None, *args, **kwargs):
  print("# Where DPR + filter's margin comes from (validation users)\n")
  print(markdown(study_tables(scorer, data, bank, seed, backbone_top10, domain, read)),
        flush=True)
  raise SystemExit(0)  # before the run's results files are touched


def main():
  steering_eval.evaluate_steering = study  # run.run calls both through their modules
  parser_lib.write_parser_results = lambda run_dir, results: "(not written)"
  sys.argv += ["--mode", "eval", "--config.stages=3"]  # last: over any given on the command line
  app.run(launch.main)


if __name__ == "__main__":
  main()

"""Steering evaluation: tasks SEQ, POS, NEG, NUANCED, POLARITY of PROTOCOL.md section 4, and
COMBINED (ours, beyond the protocol's set; defined below).

Every task runs every method on the same users and stage 1's checkpoint:

  backbone       the prompt is ignored: ``h @ E^T``
  filter         backbone scores, items failing the (oracle) tag constraint removed
  text_rerank    backbone top-100 reranked by ``alpha * z(backbone) + (1 - alpha) * cos(p, item
                 text)``; ``alpha`` tuned per task on validation users built the same way
  dpr            ``h' @ E^T`` with ``h'`` the steered user vector
  dpr+filter     DPR scores with the filter

and, for POS and NUANCED only, a bound rather than a method:

  selection_bound  the filter that also knows PROTOCOL's selection rule: it keeps only the items
                   of g for which g would be *the* prompted tag (g is their rarest off-habit tag
                   for this user). The target always passes, so this is the filter's best case
                   when the prompt's only information is which tag was picked; a steering model
                   that beats the filter by more has learnt to rank inside the tag better than
                   the backbone, not just the rule.

DPR ranks with stage 1's backbone unless stage 3 tuned it (``stage3.backbone_lr > 0``); then DPR
uses stage 3's backbone, the other methods keep stage 1's (``Scorer.dpr_user_vectors``), and two
more rows, ``tuned backbone`` and ``tuned filter``, give the backbone and filter baselines on
stage 3's backbone, so a gain from the tuning alone is visible as such.

Seen items are masked (the target stays rankable). Users and prompts come from the split's
inputs and held-out ("eval") prompts only; every random choice is drawn from a seeded generator.
POLARITY counts a user when the positive prompt raises the tag's share of the top-10 over the
method's own unprompted list and the negative prompt lowers it. A share already at its limit
cannot move further, so a positive prompt that keeps it at 1.0, or a negative one that keeps it
at 0.0, counts as moving it (``polarity``); ``polarity_strict`` gives the positive side no such
rule (the definition before 2026-11: users whose unprompted top-10 already carries the tag 10
times out of 10 always failed it).

COMBINED (PROTOCOL.md section 4): one request asks for a tag g and excludes another, h ("a comedy
film, but no romance please"), in held-out phrasings (``templates.COMBINED``; nothing is trained
on them). g is the target's rarest off-habit tag (as in POS); h is the tag the backbone's top-10
carries most among the tags the target lacks, kept when it fills at least
``COMBINED_MIN_COUNT`` slots ("frequent"). The text is split by
``dpr_jax.prompts.combine.split_request``; DPR steers with both parts at once
(``dpr_jax.models.dpr.compose``); the filter keeps items with g and without h. Metrics: target
NDCG@10 / Recall@10 and ``satisfied@10``, the share of the top-10 that has g and lacks h.
``split_ok`` is the share of requests the splitter cut into exactly one positive and one negative
part. Text rerank is not run on this task (one query embedding cannot express the exclusion).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import atomic
from dpr_jax.data.split import SplitData
from dpr_jax.eval.metrics import metrics_at_k, target_rank
from dpr_jax.eval.ranking import seen_mask
from dpr_jax.eval.report import markdown_table, protocol_fields
from dpr_jax.models import valid_item_mask
from dpr_jax.models.dpr import compose, negative_part, positive_part
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import PromptBank
from dpr_jax.prompts.combine import is_negative, split_request

METHODS = ("backbone", "filter", "text_rerank", "dpr", "dpr+filter", "selection_bound")
OFF_HABIT_SHARE = 0.2
RERANK_DEPTH = 100
ALPHAS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
COMBINED_MIN_COUNT = 2  # COMBINED's excluded tag fills at least this many of the top-10 slots
ALPHA_TUNING_USERS = 1000  # validation users (seeded sample) per task for tuning alpha
_NEG = -1e30


@dataclasses.dataclass(frozen=True)
class Task:
  """One task's users with their tag, prompt and target (U' users)."""

  name: str
  users: np.ndarray  # int[U'] rows of the split
  tag: np.ndarray  # int[U'] the tag g
  prompt: np.ndarray  # int[U'] bank row of the prompt (-1: none)
  polarity: int  # +1 keep g, -1 remove g, 0 no constraint
  # COMBINED only: the excluded tag h and the negative part's prompt row; with ``features``
  # set, ``prompt`` and ``prompt2`` index it instead of the bank's features.
  tag2: np.ndarray | None = None  # int[U']
  prompt2: np.ndarray | None = None  # int[U'] (-1: the splitter found no negative part)
  features: np.ndarray | None = None  # float32[P', D_t + 1]
  negative: np.ndarray | None = None  # bool[P'] which rows of ``features`` are negative parts
  texts: tuple[str, ...] = ()  # COMBINED: the request text of each user


@dataclasses.dataclass
class Scorer:
  """Device-side pieces every method needs."""

  user_vectors: Callable  # (inputs int[B, L]) -> float[B, d]
  # (h float[B, d], p float[B, D_t], tag profile float[B, T])
  #   -> (h' float[B, d], tag_bias float[B, T])
  steer: Callable
  table: jax.Array  # float[V, d]
  item_text: jax.Array  # float[V, D_t] (unit rows; zeros for padding)
  item_tags: jax.Array  # bool[V, T]
  num_items: int
  negative_steering: str = "subtract"  # config.dpr.negative_steering
  positive_steering: str = "focus"  # config.dpr.positive_steering
  # DPR's own backbone when stage 3 tuned it (None: the methods share ``user_vectors``/``table``).
  dpr_user_vectors: Callable | None = None  # (inputs int[B, L]) -> float[B, d]
  dpr_table: jax.Array | None = None  # float[V, d]
  _steps: dict = dataclasses.field(default_factory=dict, repr=False)
  _shares: dict = dataclasses.field(default_factory=dict, repr=False)

  def tag_share(self, data: SplitData, split: str) -> np.ndarray:
    """float[U, T]: each user's tag shares before the split's target (computed once)."""
    if split not in self._shares:
      self._shares[split] = _tag_share(data, split)
    return self._shares[split]

  def step(self, method: str):
    """The compiled per-batch evaluation of ``method`` (compiled once, reused for every task)."""
    if method not in self._steps:
      self._steps[method] = jax.jit(_make_step(self, method))
    return self._steps[method]


def _tag_share(data: SplitData, split: str) -> np.ndarray:
  """float[U, T]: share of each tag among the items seen before the split's target."""
  _, _, seen_len = data.eval_split(split)
  valid = np.arange(data.history.shape[1])[None, :] < seen_len[:, None]
  counts = np.zeros((data.num_users, data.item_tags.shape[1]))
  for u in range(data.num_users):
    counts[u] = data.item_tags[data.history[u][valid[u]]].sum(0)
  return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def build_tasks(data: SplitData, split: str, bank: PromptBank, backbone_top10: np.ndarray,
                seed: int, domain: str | None = None, embed=None) -> dict[str, Task]:
  """Selects users, tags and held-out prompts of every task (PROTOCOL.md section 4).

  COMBINED is built when ``domain`` and ``embed`` (texts -> float32[n, D_t + 1] features) are
  given.
  """
  rng = np.random.default_rng([seed, 0 if split == "test" else 1])
  _, targets, _ = data.eval_split(split)
  target_tags = data.item_tags[targets]  # [U, T]
  share = _tag_share(data, split)
  noise = rng.random(share.shape) * 1e-9

  def pick_prompt(family: str, g: int) -> int:
    rows = bank.select(family, "eval", data.tag_names[g])
    return int(rng.choice(rows)) if len(rows) else -1

  # POS / NUANCED: the rarest off-habit tag of the target.
  off = target_tags & (share < OFF_HABIT_SHARE)
  pos_users = np.nonzero(off.any(1))[0]
  pos_tag = np.argmin(np.where(off, share + noise, np.inf), axis=1)[pos_users]
  # NEG: the tag most frequent in the backbone's top-10, when the target lacks it.
  top_counts = data.item_tags[np.minimum(backbone_top10, data.num_items)].sum(1)  # [U, T]
  lean = np.argmax(top_counts + noise, axis=1)
  neg_users = np.nonzero(~target_tags[np.arange(data.num_users), lean])[0]
  neg_tag = lean[neg_users]

  def task(name, users, tags, family, polarity):
    prompts = np.array([pick_prompt(family, g) for g in tags], np.int64)
    keep = prompts >= 0
    return Task(name, users[keep], tags[keep], prompts[keep], polarity)

  all_users = np.arange(data.num_users)
  tasks = {
      "SEQ": Task("SEQ", all_users, np.zeros_like(all_users), -np.ones_like(all_users), 0),
      "POS": task("POS", pos_users, pos_tag, "positive", +1),
      "NEG": task("NEG", neg_users, neg_tag, "negative", -1),
      "NUANCED": task("NUANCED", pos_users, pos_tag, "nuanced", +1),
  }
  pol_users = np.concatenate([pos_users, neg_users])
  pol_tags = np.concatenate([pos_tag, neg_tag])
  tasks["POLARITY+"] = task("POLARITY+", pol_users, pol_tags, "positive", +1)
  neg_prompts = np.array([pick_prompt("negative", g) for g in tasks["POLARITY+"].tag], np.int64)
  tasks["POLARITY-"] = Task("POLARITY-", tasks["POLARITY+"].users, tasks["POLARITY+"].tag,
                            neg_prompts, -1)
  if domain is not None and embed is not None:
    # h: the tag the backbone's top-10 shows most among those t lacks, if it fills >= 2 slots.
    lacked = np.where(target_tags, -1, top_counts + noise)  # [U, T]
    h = np.argmax(lacked, axis=1)
    ok = lacked[np.arange(data.num_users), h] >= COMBINED_MIN_COUNT
    keep = ok[pos_users]
    tasks["COMBINED"] = combined_task(pos_users[keep], pos_tag[keep], h[pos_users][keep],
                                      data.tag_names, domain, embed, rng)
  return tasks


def combined_task(users: np.ndarray, pos_tag: np.ndarray, neg_tag: np.ndarray,
                  tag_names, domain: str, embed, rng: np.random.Generator) -> Task:
  """The COMBINED task: one held-out template per user, split into its two parts."""
  phrasings = templates.COMBINED[domain]
  texts = [templates.combined_prompt(domain, phrasings[rng.integers(len(phrasings))],
                                     tag_names[gp], tag_names[gn])
           for gp, gn in zip(pos_tag, neg_tag)]
  parts = [split_request(t) for t in texts]
  unique = sorted({p for r in parts for p in (r.positive, r.negative) if p})
  row = {p: i for i, p in enumerate(unique)}
  features = embed(unique) if unique else np.zeros((0, 1), np.float32)
  prompt = np.array([row.get(r.positive, -1) for r in parts], np.int64)
  prompt2 = np.array([row.get(r.negative, -1) for r in parts], np.int64)
  negatives = {r.negative for r in parts}
  return Task("COMBINED", users, pos_tag, prompt, 2, tag2=neg_tag, prompt2=prompt2,
              features=np.asarray(features, np.float32),
              negative=np.array([p in negatives for p in unique], bool), texts=tuple(texts))


def _scores_fn(scorer: Scorer, method: str):
  """``batch -> scores float[B, V]`` for one method (seen items not yet masked)."""

  tuned = scorer.dpr_user_vectors is not None and method.startswith(("dpr", "tuned "))
  user_vectors, table = ((scorer.dpr_user_vectors, scorer.dpr_table) if tuned
                         else (scorer.user_vectors, scorer.table))
  method = method.removeprefix("tuned ")

  def fn(batch):
    h = user_vectors(batch["inputs"])
    base = jnp.einsum("bd,vd->bv", h, table, preferred_element_type=jnp.float32)
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
        u_j, b_j = negative_part(h, *scorer.steer(h, batch[key], batch["share"]), negative,
                                 scorer.negative_steering)
        b_j = positive_part(b_j, ~negative, scorer.positive_steering)
        steered.append((jnp.where(on, u_j, h), jnp.where(on, b_j, 0.0)))
      u, tag_bias = compose(h, steered)
      scores = (jnp.einsum("bd,vd->bv", u, table, preferred_element_type=jnp.float32)
                + jnp.einsum("bt,vt->bv", tag_bias, scorer.item_tags.astype(jnp.float32)))
    if method == "text_rerank":
      masked = jnp.where(batch["seen"], _NEG, base)
      kth = jax.lax.top_k(masked, RERANK_DEPTH)[0][:, -1:]
      in_top = masked >= kth
      mean = jnp.sum(jnp.where(in_top, base, 0), 1, keepdims=True) / RERANK_DEPTH
      std = jnp.sqrt(jnp.sum(jnp.where(in_top, (base - mean) ** 2, 0), 1, keepdims=True)
                     / RERANK_DEPTH) + 1e-6
      text = batch["prompt"][:, :scorer.item_text.shape[1]]  # the sentence embedding part
      cos = jnp.einsum("bt,vt->bv", text, scorer.item_text)
      alpha = batch["alpha"][:, None]
      mixed = alpha * (base - mean) / std + (1 - alpha) * cos
      scores = jnp.where(in_top | ~batch["has_prompt"][:, None], jnp.where(
          batch["has_prompt"][:, None], mixed, base), _NEG)
    if method.endswith("filter") or method == "selection_bound":
      scores = jnp.where(allowed, scores, _NEG)
    return scores

  return fn


def _evaluate_method(scorer: Scorer, data: SplitData, split: str, task: Task, bank: PromptBank,
                     method: str, alpha: float = 1.0, batch_size: int = 512):
  """Per-user arrays: ndcg@10, recall@10, and the tag share of the top-10."""
  inputs, targets, seen_len = data.eval_split(split)
  step = scorer.step(method)
  features = bank.features if task.features is None else task.features
  negative = (np.array([is_negative(t) for t in bank.texts], bool) if task.negative is None
              else task.negative)
  tag2 = task.tag2 if task.tag2 is not None else np.zeros_like(task.tag)
  prompt2 = task.prompt2 if task.prompt2 is not None else -np.ones_like(task.prompt)
  out = [[], [], []]
  share = scorer.tag_share(data, split)  # the tag profile DPR's head may read; the bound's rule

  def rows_of(arr, start, n, pad):
    return np.concatenate([arr[start:start + n], np.full(pad, arr[start + n - 1])])

  def feats(rows):
    return np.where((rows >= 0)[:, None], features[np.maximum(rows, 0)], 0.0).astype(np.float32)

  for start in range(0, len(task.users), batch_size):
    u = task.users[start:start + batch_size]
    n = len(u)
    pad = batch_size - n
    idx = np.concatenate([u, np.full(pad, u[-1])])
    rows = rows_of(task.prompt, start, n, pad)
    rows2 = rows_of(prompt2, start, n, pad)
    tags = rows_of(task.tag, start, n, pad)
    batch = {
        "inputs": inputs[idx], "targets": targets[idx], "history": data.history[idx],
        "seen_len": seen_len[idx], "tag": tags.astype(np.int32),
        "polarity": np.full(batch_size, task.polarity, np.int32),
        "alpha": np.full(batch_size, alpha, np.float32), "has_prompt": rows >= 0,
        "prompt": feats(rows), "has_prompt2": rows2 >= 0, "prompt2": feats(rows2),
        "prompt_negative": negative[np.maximum(rows, 0)] & (rows >= 0),
        "prompt2_negative": negative[np.maximum(rows2, 0)] & (rows2 >= 0),
        "tag2": rows_of(tag2, start, n, pad).astype(np.int32),
        "share": share[idx].astype(np.float32)}
    for acc, v in zip(out, step(batch)):
      acc.append(np.asarray(v)[:n])
  return [np.concatenate(a) if a else np.zeros(0) for a in out]


def _make_step(scorer: Scorer, method: str):
  num_items, vocab = scorer.num_items, scorer.table.shape[0]
  score = _scores_fn(scorer, method)

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
    top_scores, top = jax.lax.top_k(jnp.where(candidates, scores, 2 * _NEG), 10)
    real = top_scores > _NEG / 2
    has_tag = jnp.take_along_axis(jnp.take(scorer.item_tags, batch["tag"], axis=1).T, top, axis=1)
    has_tag2 = jnp.take_along_axis(jnp.take(scorer.item_tags, batch["tag2"], axis=1).T, top,
                                   axis=1)
    hit = jnp.where(batch["polarity"][:, None] == 2, has_tag & ~has_tag2, has_tag)
    share = jnp.sum(hit & real, 1) / 10.0
    return m["ndcg@10"], m["recall@10"], share

  return step


def _subsample(task: Task, n: int, seed: int) -> Task:
  if len(task.users) <= n:
    return task
  keep = np.sort(np.random.default_rng(seed).choice(len(task.users), n, replace=False))
  return dataclasses.replace(task, users=task.users[keep], tag=task.tag[keep],
                             prompt=task.prompt[keep])


def evaluate_steering(scorer: Scorer, data: SplitData, bank: PromptBank, seed: int,
                      backbone_top10: dict[str, np.ndarray], domain: str | None = None,
                      embed=None) -> dict:
  """All tasks x methods on test users; text-rerank's alpha tuned on validation users.

  COMBINED runs when ``domain`` and ``embed`` (texts -> prompt features) are given.
  """
  tasks = {"valid": build_tasks(data, "valid", bank, backbone_top10["valid"], seed),
           "test": build_tasks(data, "test", bank, backbone_top10["test"], seed, domain, embed)}
  results, alphas = {}, {}
  for name in ("SEQ", "POS", "NEG", "NUANCED"):
    if name != "SEQ":
      # Tune alpha on validation: the target NDCG@10 (ties: the larger alpha).
      tune = _subsample(tasks["valid"][name], ALPHA_TUNING_USERS, seed)
      val = [(np.mean(_evaluate_method(scorer, data, "valid", tune, bank, "text_rerank", a)[0]),
              a) for a in ALPHAS]
      alphas[name] = float(max(val)[1])
    task = tasks["test"][name]
    row = {}
    tuned_rows = ("tuned backbone", "tuned filter") if scorer.dpr_user_vectors is not None else ()
    for method in METHODS + tuned_rows:
      if name == "SEQ" and method in ("filter", "text_rerank", "dpr+filter", "tuned filter"):
        continue
      if method == "selection_bound" and name not in ("POS", "NUANCED"):
        continue
      if method == "selection_bound" and name == "NUANCED" and _same_users_and_tags(
          task, tasks["test"]["POS"]):  # the bound ignores the prompt: POS's row holds
        row[method] = results["POS"]["methods"][method]
        continue
      ndcg, recall, share = _evaluate_method(scorer, data, "test", task, bank, method,
                                             alphas.get(name, 1.0))
      metrics = {"ndcg@10": float(np.mean(ndcg)), "recall@10": float(np.mean(recall))}
      if name in ("POS", "NUANCED"):
        metrics["tag_precision@10"] = float(np.mean(share))
      if name == "NEG":
        metrics["violation@10"] = float(np.mean(share))
      row[method] = metrics
    results[name] = {"users": int(len(task.users)), "methods": row}
  # POLARITY: positive raises, negative lowers the tag's share of the top-10.
  pos, neg = tasks["test"]["POLARITY+"], tasks["test"]["POLARITY-"]
  unprompted = dataclasses.replace(pos, prompt=-np.ones_like(pos.prompt), polarity=0)
  row = {}
  # Each method against its own unprompted list: DPR's is its backbone's (stage 3's if tuned).
  for method, unprompted_method in (("text_rerank", "backbone"), ("dpr", "dpr")):
    base_share = _evaluate_method(scorer, data, "test", unprompted, bank, unprompted_method)[2]
    up = _evaluate_method(scorer, data, "test", dataclasses.replace(pos, polarity=0), bank,
                          method, alphas.get("POS", 1.0))[2]
    down = _evaluate_method(scorer, data, "test", dataclasses.replace(neg, polarity=0), bank,
                            method, alphas.get("NEG", 1.0))[2]
    ok, strict = polarity_moves(base_share, up, down)
    row[method] = {"polarity": float(np.mean(ok)), "polarity_strict": float(np.mean(strict))}
  results["POLARITY"] = {"users": int(len(pos.users)), "methods": row}
  if "COMBINED" in tasks["test"]:
    results["COMBINED"] = _combined_results(scorer, data, tasks["test"]["COMBINED"], bank)
  results["text_rerank_alpha"] = alphas
  return results


def _same_users_and_tags(a: Task, b: Task) -> bool:
  return np.array_equal(a.users, b.users) and np.array_equal(a.tag, b.tag)


def polarity_moves(base: np.ndarray, up: np.ndarray, down: np.ndarray):
  """POLARITY per user (module docstring): (ok bool[U], strict bool[U]).

  Args: the tag's share of the top-10 unprompted (``base``), under the positive prompt (``up``)
  and under the negative one (``down``), float[U] in {0, 0.1, ..., 1}.
  """
  lowered = (down < base) | ((base == 0) & (down == 0))
  raised = (up > base) | ((base == 1) & (up == 1))
  return raised & lowered, (up > base) & lowered


def _combined_results(scorer: Scorer, data: SplitData, task: Task, bank: PromptBank) -> dict:
  row = {}
  tuned_rows = ("tuned backbone", "tuned filter") if scorer.dpr_user_vectors is not None else ()
  for method in ("backbone", "filter", "dpr", "dpr+filter") + tuned_rows:
    ndcg, recall, share = _evaluate_method(scorer, data, "test", task, bank, method)
    row[method] = {"ndcg@10": float(np.mean(ndcg)), "recall@10": float(np.mean(recall)),
                   "satisfied@10": float(np.mean(share))}
  split_ok = float(np.mean((task.prompt >= 0) & (task.prompt2 >= 0))) if len(task.users) else 0.0
  return {"users": int(len(task.users)), "methods": row, "split_ok": split_ok,
          "examples": list(task.texts[:5])}


def write_steering_results(directory: str | pathlib.Path, results: dict, manifest: dict,
                           seed: int, extra: dict) -> list[pathlib.Path]:
  """``results_steering.{json,md,png}`` with the protocol fields."""
  directory = atomic.as_path(directory)
  fields = protocol_fields(manifest, seed, masking="seen items masked",
                           templates="held-out (eval) templates and nuanced prompts") | extra
  json_path = directory / "results_steering.json"
  atomic.write_text(json_path, json.dumps({"protocol": fields, "results": results}, indent=2))
  lines = ["# results_steering", ""]
  for task, r in results.items():
    if task == "text_rerank_alpha":
      continue
    cols = sorted({k for m in r["methods"].values() for k in m})
    lines += [f"## {task} ({r['users']} users)", "", markdown_table(r["methods"], cols)]
    if task == "COMBINED":
      lines += [f"- requests split into one positive and one negative part: {r['split_ok']:.3f}",
                "- e.g. " + "; ".join(repr(t) for t in r["examples"]), ""]
  lines += [f"- text_rerank alpha (tuned on validation): {results['text_rerank_alpha']}"]
  lines += [f"- {k}: {v}" for k, v in fields.items() if k != "dataset_files"]
  md_path = directory / "results_steering.md"
  atomic.write_text(md_path, "\n".join(lines) + "\n")
  png_path = directory / "results_steering.png"
  _bar_chart(results, png_path)
  return [json_path, md_path, png_path]


def _bar_chart(results: dict, path: pathlib.Path) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [("SEQ", "ndcg@10"), ("POS", "ndcg@10"), ("POS", "tag_precision@10"),
            ("NEG", "ndcg@10"), ("NEG", "violation@10"), ("NUANCED", "tag_precision@10"),
            ("POLARITY", "polarity")]
  panels += [("COMBINED", m) for m in ("ndcg@10", "satisfied@10") if "COMBINED" in results]
  fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
  for ax, (task, metric) in zip(axes, panels):
    methods = results[task]["methods"]
    names = [m for m in methods if metric in methods[m]]
    ax.bar(range(len(names)), [methods[m][metric] for m in names], color="C0")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_title(f"{task}: {metric}", fontsize=9)
  fig.tight_layout()
  atomic.write_with(path, lambda f: fig.savefig(f, format="png", dpi=110))
  plt.close(fig)

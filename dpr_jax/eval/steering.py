"""Steering evaluation: tasks SEQ, POS, NEG, NUANCED, POLARITY of docs/protocol.md, and
COMBINED (ours, beyond the protocol's set; defined below).

Every task is built on both splits (docs/protocol.md): on validation (validation target,
history before it, no test item anywhere) and on test. Every method runs on the same users and
the same backbone, the one DPR ranks with (docs/protocol.md):

  backbone       the prompt is ignored: ``h @ E^T``
  filter         backbone scores, items failing the (oracle) tag constraint removed
  text_rerank    backbone top-100 reranked by ``alpha * z(backbone) + (1 - alpha) * c`` where
                 ``c`` is the cosine of the prompt and the item's text, with the sign of the
                 prompt's polarity (a negative part subtracts its similarity; COMBINED adds
                 both parts'); at ``alpha = 1`` it is the backbone exactly. ``alpha`` is tuned
                 per task on validation users.
  dpr            ``h' @ E^T`` with ``h'`` the steered user vector
  dpr+filter     DPR scores with the filter

and, for POS and NUANCED only, a bound rather than a method:

  selection_bound  the filter that also knows the protocol's selection rule: it keeps only the items
                   of g for which g would be *the* prompted tag (g is their rarest off-habit tag
                   for this user). The target always passes, so this is the filter's best case
                   when the prompt's only information is which tag was picked; a steering model
                   that beats the filter by more has learnt to rank inside the tag better than
                   the backbone, not just the rule.

DPR ranks with stage 1's backbone unless stage 3 tuned it (``stage3.backbone_lr > 0``); then every
primary row uses stage 3's backbone, and two reference rows, ``stage1 backbone`` and ``stage1
filter``, give the baselines on stage 1's (``Scorer.reference_user_vectors``), so a gain from the
tuning alone is visible as such.

Selection: every choice is made on the validation tables and recorded in ``selection`` (the
text-rerank mix per task; the steering modes ``dpr.positive_steering`` / ``negative_steering``,
compared on validation POS / NEG NDCG@10: the test rows use the configured modes, the ones the
recommender serves, and ``selection`` says whether validation agrees). ``routing`` reports, per
split, which experts the positive and the negative requests of POLARITY go to, and the usage
entropy.

Seen items are masked (the target stays rankable). Users and prompts come from the split's
inputs and held-out ("eval") prompts only; every random choice is drawn from a seeded generator.
POLARITY counts a user when the positive prompt raises the tag's share of the top-10 over the
method's own unprompted list and the negative prompt lowers it (``polarity``, the protocol's strict
definition and the primary figure: a share already at 10/10 cannot be raised, so such a user
fails). ``polarity_loose`` is the looser variant, named as such: a positive prompt that keeps the
share at 1.0 counts as raising it. Both count a negative prompt that keeps a share of 0 as
lowering it.

COMBINED (docs/protocol.md): one request asks for a tag g and excludes another, h ("a comedy
film, but no romance please"), in held-out phrasings (``templates.COMBINED``; nothing is trained
on them). g is the target's rarest off-habit tag (as in POS); h is the tag the backbone's top-10
carries most among the tags the target lacks, kept when it fills at least
``COMBINED_MIN_COUNT`` slots ("frequent"). The text is read into its two parts by the configured
reader (dpr_jax.prompts.reader); DPR steers with both parts at once
(``dpr_jax.models.dpr.compose``); the filter keeps items with g and without h. Metrics: target
NDCG@10 / Recall@10 and ``satisfied@10``, the share of the top-10 that has g and lacks h.
``split_ok`` is the share of requests read as exactly one positive and one negative part. Text rerank adds the wanted part's similarity and subtracts the excluded part's.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax import atomic, console
from dpr_jax.data.split import SplitData
from dpr_jax.eval.metrics import metrics_at_k, target_rank
from dpr_jax.eval.ranking import seen_mask
from dpr_jax.eval.report import markdown_table, protocol_fields
from dpr_jax.models import retrieval, valid_item_mask
from dpr_jax.models.dpr import (NEGATIVE_STEERING, POSITIVE_STEERING, compose, negative_part,
                                positive_part)
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import PromptBank
from dpr_jax.prompts.combine import is_negative

METHODS = ("backbone", "filter", "text_rerank", "dpr", "dpr+filter", "selection_bound")
REFERENCE_METHODS = ("stage1 backbone", "stage1 filter")  # only when stage 3 tuned the backbone
OFF_HABIT_SHARE = 0.2
RERANK_DEPTH = 100
ALPHAS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
COMBINED_MIN_COUNT = 2  # COMBINED's excluded tag fills at least this many of the top-10 slots
ALPHA_TUNING_USERS = 1000  # validation users (seeded sample) per task for tuning alpha
_NEG = retrieval.NEG


@dataclasses.dataclass(frozen=True)
class Task:
  """One task's users with their tag, prompt and target (U' users)."""

  name: str
  users: np.ndarray  # int[U'] rows of the split
  tag: np.ndarray  # int[U'] the tag g
  # int[U'] the prompt's bank row, or once read (:func:`read_task`) its positive part's row of
  # ``features`` (-1: none)
  prompt: np.ndarray
  polarity: int  # +1 keep g, -1 remove g, 2 keep g and remove tag2, 0 no constraint
  tag2: np.ndarray | None = None  # int[U'] COMBINED / EVERYDAY: the excluded tag h
  prompt2: np.ndarray | None = None  # int[U'] the negative part's row of ``features`` (-1: none)
  features: np.ndarray | None = None  # float32[P', D_t + 1] the read parts (None: the bank's)
  negative: np.ndarray | None = None  # bool[P'] which rows of ``features`` are negative parts
  texts: tuple[str, ...] = ()  # the request text of each user, once read


@dataclasses.dataclass
class Scorer:
  """Device-side pieces every method needs."""

  user_vectors: Callable  # (inputs int[B, L]) -> float[B, d]; the backbone DPR ranks with
  # (h float[B, d], p float[B, D_t], tag profile float[B, T], negative bool[B])
  #   -> (h' float[B, d], tag_bias float[B, T])
  steer: Callable
  table: jax.Array  # float[V, d]
  item_text: jax.Array  # float[V, D_t] (unit rows; zeros for padding)
  item_tags: jax.Array  # bool[V, T]
  num_items: int
  negative_steering: str = "subtract"  # config.dpr.negative_steering
  positive_steering: str = "focus"  # config.dpr.positive_steering
  # Stage 1's backbone when stage 3 tuned another one (None: no reference rows).
  reference_user_vectors: Callable | None = None  # (inputs int[B, L]) -> float[B, d]
  reference_table: jax.Array | None = None  # float[V, d]
  # (p float[B, D_t], negative bool[B]) -> int[B, K]: the experts a prompt is routed to.
  routes: Callable | None = None
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
                seed: int, domain: str | None = None, read=None) -> dict[str, Task]:
  """Selects users, tags and held-out prompts of every task (docs/protocol.md).

  With ``read`` (texts -> dpr_jax.prompts.reader.Reading) every prompt is read as the
  recommender reads it, and COMBINED is built too (with ``domain``); without, the prompts are
  the bank's rows, each one part whose polarity the rules give.
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
  if read is not None:
    for name in ("POS", "NEG", "NUANCED", "POLARITY+", "POLARITY-"):
      t = tasks[name]
      tasks[name] = read_task(t, [bank.texts[r] for r in t.prompt], read)
  if domain is not None and read is not None:
    # h: the tag the backbone's top-10 shows most among those t lacks, if it fills >= 2 slots.
    lacked = np.where(target_tags, -1, top_counts + noise)  # [U, T]
    h = np.argmax(lacked, axis=1)
    ok = lacked[np.arange(data.num_users), h] >= COMBINED_MIN_COUNT
    keep = ok[pos_users]
    tasks["COMBINED"] = combined_task(pos_users[keep], pos_tag[keep], h[pos_users][keep],
                                      data.tag_names, domain, read, rng)
  return tasks


EVERYDAY_USERS = 100  # users per everyday request (seeded sample of those that qualify)
EVERYDAY_TASKS = {"positive": ("EVERYDAY+", "POS"), "negative": ("EVERYDAY-", "NEG"),
                  "combined": ("EVERYDAY+-", "COMBINED"), "vague": ("EVERYDAY?", "POS")}


def everyday_tasks(data: SplitData, split: str, requests, backbone_top10: np.ndarray,
                   seed: int, read) -> tuple[dict[str, Task], dict[str, float]]:
  """The EVERYDAY task (docs/protocol.md) from labelled requests
  (:mod:`dpr_jax.prompts.everyday`), one Task per kind, up to :data:`EVERYDAY_USERS` users per
  request, chosen as in POS / NEG / COMBINED for the request's own tags:

  * positive, wanting g (the first tag it wants): users whose target carries g and whose
    history holds g under ``OFF_HABIT_SHARE``;
  * negative, avoiding h (the first it avoids): users whose target lacks h while the backbone's
    unprompted top-10 shows h at least ``COMBINED_MIN_COUNT`` times;
  * combined: both;
  * vague: any user (the metric is how many of the 10 items change).

  Each request is read as the recommender reads it (``read``: its positive and its negative
  part); a misread shows in the scores. ``read_ok`` is the share of the kind's requests whose
  parts have the labelled polarities (vague: no part at all) and, with the parser, whose wanted
  and avoided tags are exactly the labelled ones.

  Returns ({task name: Task}, {task name: read_ok}).
  """
  rng = np.random.default_rng([seed, 2 if split == "test" else 3])
  _, targets, _ = data.eval_split(split)
  target_tags = data.item_tags[targets]  # [U, T]
  share = _tag_share(data, split)
  top_counts = data.item_tags[np.minimum(backbone_top10, data.num_items)].sum(1)  # [U, T]
  index = {name: i for i, name in enumerate(data.tag_names)}
  requests = [r for r in requests if set(r.want + r.avoid) <= index.keys()]  # tags it has
  reading = read([r.text for r in requests])
  at = {r.id: i for i, r in enumerate(requests)}
  tasks, read_ok_of = {}, {}
  for kind, (name, _) in EVERYDAY_TASKS.items():
    users, tag, tag2, prompt, prompt2, texts, read_ok = [], [], [], [], [], [], []
    for r in (r for r in requests if r.kind == kind):
      ok = np.ones(data.num_users, bool)
      g = index[r.want[0]] if r.want else 0
      h = index[r.avoid[0]] if r.avoid else 0
      if r.want:
        ok &= target_tags[:, g] & (share[:, g] < OFF_HABIT_SHARE)
      if r.avoid:
        ok &= ~target_tags[:, h] & (top_counts[:, h] >= COMBINED_MIN_COUNT)
      chosen = np.nonzero(ok)[0]
      if len(chosen) > EVERYDAY_USERS:
        chosen = np.sort(rng.choice(chosen, EVERYDAY_USERS, replace=False))
      i = at[r.id]
      pos_row, neg_row = int(reading.positive[i]), int(reading.negative[i])
      n = len(chosen)
      users.append(chosen)
      tag.append(np.full(n, h if kind == "negative" else g))
      tag2.append(np.full(n, h))
      prompt.append(np.full(n, pos_row))
      prompt2.append(np.full(n, neg_row))
      texts += [r.text] * n
      right = (pos_row >= 0) == bool(r.want) and (neg_row >= 0) == bool(r.avoid)
      if reading.parses:
        p = reading.parses[i]
        right &= ({t for t, _ in p.want} == set(r.want)
                  and {t for t, _ in p.avoid} == set(r.avoid))
      read_ok.append(right)
    cat = lambda a: np.concatenate(a).astype(np.int64) if a else np.zeros(0, np.int64)  # noqa
    polarity = {"positive": 1, "negative": -1, "combined": 2, "vague": 0}[kind]
    tasks[name] = Task(name, cat(users), cat(tag), cat(prompt), polarity, tag2=cat(tag2),
                       prompt2=cat(prompt2), features=reading.features,
                       negative=reading.part_negative, texts=tuple(texts))
    read_ok_of[name] = float(np.mean(read_ok)) if read_ok else 0.0
  return tasks, read_ok_of


def evaluate_everyday(scorer: Scorer, data: SplitData, split: str,
                      tasks: tuple[dict[str, Task], dict[str, float]], bank: PromptBank,
                      alphas: dict[str, float]) -> dict:
  """The EVERYDAY tables of one split: per kind, every method's target NDCG@10 / Recall@10 and
  the request's tag metric (positive: share of the wanted tag in the top-10; negative: share of
  the avoided tag, lower is better; combined: share meeting both); vague: ``changed@10``, the
  items of the unprompted top-10 that the prompted list replaces."""
  tasks, read_ok = tasks
  out = {}
  metric = {"EVERYDAY+": "tag_precision@10", "EVERYDAY-": "violation@10",
            "EVERYDAY+-": "satisfied@10"}
  for kind, (name, alpha_of) in EVERYDAY_TASKS.items():
    task = tasks[name]
    row = {}
    if kind == "vague":
      plain = _evaluate_method(scorer, data, split, task, bank, "backbone")[3]
      for method in ("text_rerank", "dpr"):
        top = _evaluate_method(scorer, data, split, task, bank, method,
                               alphas.get(alpha_of, 1.0))[3]
        kept = np.array([len(set(a[a >= 0]) & set(b[b >= 0])) for a, b in zip(top, plain)])
        row[method] = {"changed@10": float(np.mean(10 - kept)) if len(kept) else 0.0}
    else:
      for method in ("backbone", "filter", "text_rerank", "dpr", "dpr+filter"):
        ndcg, recall, share, _ = _evaluate_method(scorer, data, split, task, bank, method,
                                                  alphas.get(alpha_of, 1.0))
        row[method] = {"ndcg@10": float(np.mean(ndcg)) if len(ndcg) else 0.0,
                       "recall@10": float(np.mean(recall)) if len(recall) else 0.0,
                       metric[name]: float(np.mean(share)) if len(share) else 0.0}
    out[name] = {"users": int(len(task.users)), "methods": row,
                 "read_ok": read_ok[name]}
  return out


def read_task(task: Task, texts, read) -> Task:
  """``task`` with each user's request ``texts[i]`` read into its parts by ``read``."""
  r = read(list(texts))
  return dataclasses.replace(task, prompt=r.positive, prompt2=r.negative, features=r.features,
                             negative=r.part_negative, texts=tuple(texts))


def combined_task(users: np.ndarray, pos_tag: np.ndarray, neg_tag: np.ndarray,
                  tag_names, domain: str, read, rng: np.random.Generator) -> Task:
  """The COMBINED task: one held-out template per user, read into its two parts."""
  phrasings = templates.COMBINED[domain]
  texts = [templates.combined_prompt(domain, phrasings[rng.integers(len(phrasings))],
                                     tag_names[gp], tag_names[gn])
           for gp, gn in zip(pos_tag, neg_tag)]
  return read_task(Task("COMBINED", users, pos_tag, np.zeros(0, np.int64), 2, tag2=neg_tag),
                   texts, read)


def _scores_fn(scorer: Scorer, method: str):
  """``batch -> scores float[B, V]`` for one method (seen items not yet masked)."""

  reference = method.startswith("stage1 ")
  if reference and scorer.reference_user_vectors is None:
    raise ValueError(f"{method!r} needs the reference (stage 1) backbone")
  user_vectors, table = ((scorer.reference_user_vectors, scorer.reference_table) if reference
                         else (scorer.user_vectors, scorer.table))
  method = method.removeprefix("stage1 ")

  def fn(batch):
    h = user_vectors(batch["inputs"])
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
        steered.append((jnp.where(on, u_j, h), jnp.where(on, b_j, 0.0)))
      u, tag_bias = compose(h, steered)
      scores = retrieval.scores(u, table, tag_bias, scorer.item_tags)
    if method == "text_rerank":
      scores = _text_rerank(scorer, batch, base)
    if method.endswith("filter") or method == "selection_bound":
      scores = retrieval.mask(scores, allowed)
    return scores

  return fn


def _text_rerank(scorer: Scorer, batch, base: jax.Array) -> jax.Array:
  """The text-rerank scores float32[B, V] (module docstring) from the backbone's ``base``.

  ``alpha * z(base) + (1 - alpha) * c`` ranks as ``alpha * base + (1 - alpha) * std * c`` (std:
  the backbone scores' spread over the rerank window), which is ``base`` itself, bit for bit, at
  alpha = 1. Items outside the window (the backbone's top-``RERANK_DEPTH`` unseen valid items)
  are removed; an unprompted row is the backbone.
  """
  valid = valid_item_mask(base.shape[1], scorer.num_items)[None, :]
  window = jnp.where(batch["seen"] | ~valid, _NEG, base)
  kth = jax.lax.top_k(window, RERANK_DEPTH)[0][:, -1:]
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


def _evaluate_method(scorer: Scorer, data: SplitData, split: str, task: Task, bank: PromptBank,
                     method: str, alpha: float = 1.0, batch_size: int = 512):
  """Per-user arrays: ndcg@10, recall@10, the tag share of the top-10, and the top-10 itself
  (int[U', 10], -1 where a filter left fewer than 10 items)."""
  inputs, targets, seen_len = data.eval_split(split)
  step = scorer.step(method)
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
        "inputs": inputs[idx], "targets": targets[idx], "history": data.history[idx],
        "seen_len": seen_len[idx], "tag": tags.astype(np.int32),
        "polarity": np.full(batch_size, task.polarity, np.int32),
        "alpha": np.full(batch_size, alpha, np.float32), "has_prompt": rows >= 0,
        "prompt": feats(rows), "has_prompt2": rows2 >= 0, "prompt2": feats(rows2),
        "prompt_negative": take(negative, rows, False),
        "prompt2_negative": take(negative, rows2, False),
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
    return m["ndcg@10"], m["recall@10"], share, jnp.where(real, top, -1)

  return step


def _subsample(task: Task, n: int, seed: int) -> Task:
  """The task on a seeded sample of n of its users (every per-user field follows)."""
  if len(task.users) <= n:
    return task
  keep = np.sort(np.random.default_rng(seed).choice(len(task.users), n, replace=False))
  pick = lambda a: None if a is None else a[keep]  # noqa: E731
  return dataclasses.replace(task, users=task.users[keep], tag=task.tag[keep],
                             prompt=task.prompt[keep], tag2=pick(task.tag2),
                             prompt2=pick(task.prompt2),
                             texts=tuple(task.texts[i] for i in keep) if task.texts else ())


_ROW_METRIC = {"POS": "tag_precision@10", "NUANCED": "tag_precision@10", "NEG": "violation@10",
               "COMBINED": "satisfied@10"}
_RERANKED = ("POS", "NEG", "NUANCED", "COMBINED")  # the tasks text rerank runs on


def _methods_of(task: str, scorer: Scorer) -> tuple[str, ...]:
  """The rows of a task's table."""
  reference = REFERENCE_METHODS if scorer.reference_user_vectors is not None else ()
  if task == "SEQ":
    return ("backbone", "dpr") + reference[:1]
  bound = ("selection_bound",) if task in ("POS", "NUANCED") else ()
  return ("backbone", "filter", "text_rerank", "dpr", "dpr+filter") + bound + reference


def tune_alphas(scorer: Scorer, data: SplitData, tasks: dict[str, Task], bank: PromptBank,
                seed: int) -> dict[str, float]:
  """The text-rerank mix per task, on validation users: the alpha of the best target NDCG@10
  (ties: the larger alpha, i.e. closer to the backbone)."""
  alphas = {}
  for name in _RERANKED:
    if name not in tasks or not len(tasks[name].users):
      continue
    tune = _subsample(tasks[name], ALPHA_TUNING_USERS, seed)
    val = [(np.mean(_evaluate_method(scorer, data, "valid", tune, bank, "text_rerank", a)[0]), a)
           for a in ALPHAS]
    alphas[name] = float(max(val)[1])
  return alphas


def evaluate_split(scorer: Scorer, data: SplitData, split: str, tasks: dict[str, Task],
                   bank: PromptBank, alphas: dict[str, float]) -> dict:
  """Every task x method on one split's users: {task: {"users", "methods": {method: metrics}}}."""
  results = {}
  for name in ("SEQ", "POS", "NEG", "NUANCED", "COMBINED"):
    if name not in tasks:
      continue
    task, row = tasks[name], {}
    for method in _methods_of(name, scorer):
      if method == "selection_bound" and name == "NUANCED" and _same_users_and_tags(
          task, tasks["POS"]):  # the bound ignores the prompt: POS's row holds
        row[method] = results["POS"]["methods"][method]
        continue
      ndcg, recall, share, _ = _evaluate_method(scorer, data, split, task, bank, method,
                                                alphas.get(name, 1.0))
      metrics = {"ndcg@10": float(np.mean(ndcg)), "recall@10": float(np.mean(recall))}
      if name in _ROW_METRIC:
        metrics[_ROW_METRIC[name]] = float(np.mean(share))
      row[method] = metrics
    results[name] = {"users": int(len(task.users)), "methods": row}
    if name == "COMBINED":
      results[name]["split_ok"] = (float(np.mean((task.prompt >= 0) & (task.prompt2 >= 0)))
                                   if len(task.users) else 0.0)
      results[name]["examples"] = list(task.texts[:5])
  results["POLARITY"] = _polarity(scorer, data, split, tasks, bank, alphas)
  return results


def _polarity(scorer: Scorer, data: SplitData, split: str, tasks: dict[str, Task],
              bank: PromptBank, alphas: dict[str, float]) -> dict:
  """POLARITY: the positive prompt raises, the negative lowers the tag's share of the top-10,
  each method against its own unprompted list (the backbone's: DPR without a prompt is it)."""
  pos, neg = tasks["POLARITY+"], tasks["POLARITY-"]
  unprompted = dataclasses.replace(pos, prompt=-np.ones_like(pos.prompt), polarity=0)
  base_share = _evaluate_method(scorer, data, split, unprompted, bank, "backbone")[2]
  row = {}
  for method in ("text_rerank", "dpr"):
    up = _evaluate_method(scorer, data, split, dataclasses.replace(pos, polarity=0), bank,
                          method, alphas.get("POS", 1.0))[2]
    down = _evaluate_method(scorer, data, split, dataclasses.replace(neg, polarity=0), bank,
                            method, alphas.get("NEG", 1.0))[2]
    strict, loose = polarity_moves(base_share, up, down)
    row[method] = {"polarity": float(np.mean(strict)), "polarity_loose": float(np.mean(loose))}
  return {"users": int(len(pos.users)), "methods": row}


def select_modes(scorer: Scorer, data: SplitData, tasks: dict[str, Task],
                 bank: PromptBank) -> dict:
  """The steering modes compared on validation (POS NDCG@10 for ``positive_steering``, NEG
  NDCG@10 for ``negative_steering``): {switch: {"valid ndcg@10": {mode: x}, "best_on_valid",
  "configured", "split": "valid"}}."""
  out = {}
  for switch, modes, task in (("positive_steering", POSITIVE_STEERING, "POS"),
                              ("negative_steering", NEGATIVE_STEERING, "NEG")):
    if not len(tasks[task].users):
      continue
    scores = {}
    for mode in modes:
      variant = dataclasses.replace(scorer, **{switch: mode}, _steps={})
      scores[mode] = float(np.mean(_evaluate_method(variant, data, "valid", tasks[task], bank,
                                                    "dpr")[0]))
    configured = getattr(scorer, switch)
    best = max(modes, key=lambda m: (scores[m], m == configured))  # ties: the configured one
    out[switch] = {"valid ndcg@10": scores, "best_on_valid": best, "configured": configured,
                   "split": "valid", "task": task}
  return out


def routing_report(scorer: Scorer, bank: PromptBank, tasks: dict[str, Task],
                   num_experts: int) -> dict:
  """Which experts the POLARITY requests go to: per expert the share of the positive and of the
  negative request parts (as read) it receives, over the K choices of each, and the usage
  entropy (nats; log E when every expert is used equally)."""
  feats, negs = [], []
  for name in ("POLARITY+", "POLARITY-"):
    task = tasks[name]
    table = bank.features if task.features is None else task.features
    for key in ("prompt", "prompt2"):
      rows = getattr(task, key)
      rows = np.zeros(0, np.int64) if rows is None else rows[rows >= 0]
      feats.append(table[rows])
      negs.append(np.full(len(rows), task.polarity < 0) if task.negative is None
                  else task.negative[rows])
  feats, negs = np.concatenate(feats), np.concatenate(negs)
  counts = {}
  for name, flag in (("positive", False), ("negative", True)):
    sel = negs == flag
    chosen = (np.asarray(scorer.routes(jnp.asarray(feats[sel], jnp.float32),
                                       jnp.full(int(sel.sum()), flag)))
              if sel.any() else np.zeros((0, 1), np.int64))  # [n, K]
    counts[name] = np.bincount(chosen.ravel(), minlength=num_experts).astype(np.float64)
  total = counts["positive"] + counts["negative"]
  usage = total / max(total.sum(), 1.0)
  nonzero = usage[usage > 0]
  return {"experts": num_experts,
          "positive_share": (counts["positive"] / max(counts["positive"].sum(), 1.0)).tolist(),
          "negative_share": (counts["negative"] / max(counts["negative"].sum(), 1.0)).tolist(),
          "usage_entropy": float(-np.sum(nonzero * np.log(nonzero))),
          "max_entropy": float(np.log(num_experts))}


def evaluate_steering(scorer: Scorer, data: SplitData, bank: PromptBank, seed: int,
                      backbone_top10: dict[str, np.ndarray], domain: str | None = None,
                      read=None, num_experts: int | None = None, everyday=(),
                      progress: bool = False) -> dict:
  """Every task x method on validation and on test users (module docstring).

  Returns the test tables at the top level (the reported figures: {task: {"users", "methods"}}),
  ``valid`` (the same tables on validation users), ``selection`` (every choice, made on
  validation) and ``routing`` (per split, with ``scorer.routes`` and ``num_experts``).
  ``read`` (texts -> dpr_jax.prompts.reader.Reading) reads every request as the recommender
  does; COMBINED runs when it and ``domain`` are given, EVERYDAY when it and ``everyday``
  (:func:`dpr_jax.prompts.everyday.load`'s requests) are. ``progress`` shows a bar of the phases.
  """
  phases = console.Phases(6, "steering evaluation", disable=not progress)
  phases.start("tasks")
  tasks = {split: build_tasks(data, split, bank, backbone_top10[split], seed, domain, read)
           for split in ("valid", "test")}
  phases.start("text-rerank alpha (valid)")
  alphas = tune_alphas(scorer, data, tasks["valid"], bank, seed)
  phases.start("valid tables")
  valid = evaluate_split(scorer, data, "valid", tasks["valid"], bank, alphas)
  phases.start("test tables")
  results = evaluate_split(scorer, data, "test", tasks["test"], bank, alphas)
  phases.start("everyday requests")
  if everyday and read is not None:
    for split, tables in (("valid", valid), ("test", results)):
      tables |= evaluate_everyday(scorer, data, split, everyday_tasks(
          data, split, everyday, backbone_top10[split], seed, read), bank, alphas)
  results["valid"] = valid
  results["selection"] = {"text_rerank_alpha": {"values": alphas, "split": "valid",
                                                "criterion": "target NDCG@10"}}
  phases.start("steering modes and routing (valid)")
  results["selection"] |= select_modes(scorer, data, tasks["valid"], bank)
  if scorer.routes is not None and num_experts:
    results["routing"] = {split: routing_report(scorer, bank, tasks[split], num_experts)
                          for split in ("valid", "test")}
  phases.close()
  return results


TABLE_KEYS = ("SEQ", "POS", "NEG", "NUANCED", "COMBINED", "POLARITY") + tuple(
    name for name, _ in EVERYDAY_TASKS.values())


def _same_users_and_tags(a: Task, b: Task) -> bool:
  return np.array_equal(a.users, b.users) and np.array_equal(a.tag, b.tag)


def polarity_moves(base: np.ndarray, up: np.ndarray, down: np.ndarray):
  """POLARITY per user (module docstring): (strict bool[U], loose bool[U]).

  Args: the tag's share of the top-10 unprompted (``base``), under the positive prompt (``up``)
  and under the negative one (``down``), float[U] in {0, 0.1, ..., 1}.
  """
  lowered = (down < base) | ((base == 0) & (down == 0))
  raised_loose = (up > base) | ((base == 1) & (up == 1))
  return (up > base) & lowered, raised_loose & lowered


def write_steering_results(directory: str | pathlib.Path, results: dict, manifest: dict,
                           seed: int, extra: dict) -> list[pathlib.Path]:
  """``results_steering.{json,md,png}`` with the protocol fields."""
  directory = atomic.as_path(directory)
  fields = protocol_fields(manifest, seed, masking="seen items masked",
                           templates="held-out (eval) templates and nuanced prompts") | extra
  fields["splits"] = ("test: the reported tables (top level); valid: the same tasks on"
                      " validation targets, where every choice in 'selection' was made")
  json_path = directory / "results_steering.json"
  atomic.write_text(json_path, json.dumps({"protocol": fields, "results": results}, indent=2))
  lines = ["# results_steering", ""]
  for split, tables in (("test", results), ("valid", results.get("valid", {}))):
    lines += [f"# {split} users" + (" (reported)" if split == "test" else
                                     " (selection only)"), ""]
    for task in TABLE_KEYS:
      if task not in tables:
        continue
      r = tables[task]
      cols = sorted({k for m in r["methods"].values() for k in m})
      lines += [f"## {task} ({r['users']} users)", "", markdown_table(r["methods"], cols)]
      if "read_ok" in r:
        lines += [f"- requests read with the labelled polarities: {r['read_ok']:.3f}", ""]
      if task == "COMBINED":
        lines += [f"- requests split into one positive and one negative part:"
                  f" {r['split_ok']:.3f}",
                  "- e.g. " + "; ".join(repr(t) for t in r["examples"]), ""]
  lines += ["# selection (validation)", ""]
  for switch, choice in results.get("selection", {}).items():
    lines.append(f"- {switch}: {json.dumps(choice)}")
  for split, report in results.get("routing", {}).items():
    lines.append(f"- routing ({split}): {json.dumps(report)}")
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

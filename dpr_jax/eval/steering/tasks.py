"""Steering tasks (docs/protocol.md): which users, which tag, which request, on one split.

Every random choice is drawn from a seeded generator; users and prompts come from the split's
inputs and the held-out ("eval") prompts only. See :mod:`dpr_jax.eval.steering` for the tasks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dpr_jax.data.split import SplitData
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import PromptBank

OFF_HABIT_SHARE = 0.2  # POS / NUANCED: an off-habit tag holds under this share of the history
COMBINED_MIN_COUNT = 2  # COMBINED's excluded tag fills at least this many of the top-10 slots


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


def tag_share(data: SplitData, split: str) -> np.ndarray:
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
  share = tag_share(data, split)
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
  share = tag_share(data, split)
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


def subsample(task: Task, n: int, seed: int) -> Task:
  """The task on a seeded sample of n of its users (every per-user field follows)."""
  if len(task.users) <= n:
    return task
  keep = np.sort(np.random.default_rng(seed).choice(len(task.users), n, replace=False))
  pick = lambda a: None if a is None else a[keep]  # noqa: E731
  return dataclasses.replace(task, users=task.users[keep], tag=task.tag[keep],
                             prompt=task.prompt[keep], tag2=pick(task.tag2),
                             prompt2=pick(task.prompt2),
                             texts=tuple(task.texts[i] for i in keep) if task.texts else ())


def same_users_and_tags(a: Task, b: Task) -> bool:
  return np.array_equal(a.users, b.users) and np.array_equal(a.tag, b.tag)

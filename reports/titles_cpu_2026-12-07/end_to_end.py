"""Rule (c): the set's 24 title requests for 200 random users (seed 0): the mean genre overlap
(Jaccard of genre sets) of the top-10 with the named movie, against the unprompted list.
Runs on any version of the code (the baseline: before titles were read).

    DPR_DATA_DIR=... PYTHONPATH=. python reports/titles_cpu_2026-12-07/end_to_end.py RUN
"""
import json
import sys

import numpy as np

from dpr_jax.serve.recommender import Recommender, Request

rec = Recommender.load(sys.argv[1])
d = rec.data
rows = [json.loads(line) for line in open("dpr_jax/prompts/titles/requests.jsonl")]
rows = [r for r in rows if r["title"]]
users = np.random.default_rng(0).choice(len(d.user_ids), 200, replace=False)
tags = d.item_tags.astype(bool)


def overlap(items, named):
  a = tags[named]
  return float(np.mean([(tags[i] & a).sum() / max((tags[i] | a).sum(), 1) for i in items]))


def index(answer):
  return [d.item_titles.index(it["title"]) + 1 for it in answer["items"]]


plain = rec.recommend_many([Request(user=str(d.user_ids[u])) for u in users])
asked, base = [], []
for r in rows:
  named = d.item_titles.index(r["title"]) + 1
  answers = rec.recommend_many([Request(user=str(d.user_ids[u]), prompt=r["text"]) for u in users])
  a = float(np.mean([overlap(index(x), named) for x in answers]))
  b = float(np.mean([overlap(index(x), named) for x in plain]))
  asked.append(a)
  base.append(b)
  print(f"{r['id']}\t{r['text']!r}\tasked {a:.3f}\tunprompted {b:.3f}")
print(f"mean genre Jaccard of the top-10 with the named movie: asked {np.mean(asked):.3f},"
      f" unprompted {np.mean(base):.3f} (24 requests x 200 users)")

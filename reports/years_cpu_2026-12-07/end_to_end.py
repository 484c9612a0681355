"""Rule (b) of reading an era: the set's 16 era requests for 200 random users (seed 0): the share
of each top-10 released in the years meant, and of the wanted genre (requests that want one).
Runs on any version of the code (the baseline: before eras were read).

    DPR_DATA_DIR=... PYTHONPATH=. python reports/years_cpu_2026-12-07/end_to_end.py RUN
"""
import json
import re
import sys

import numpy as np

from dpr_jax.serve.recommender import Recommender, Request

rec = Recommender.load(sys.argv[1])
d = rec.data
rows = [json.loads(line) for line in open("dpr_jax/prompts/years/requests.jsonl")]
rows = [r for r in rows if r["years"]]
users = np.random.default_rng(0).choice(len(d.user_ids), 200, replace=False)
year = {t: int(re.search(r"\((\d{4})\)\s*$", t).group(1)) for t in d.item_titles}
in_era_all, genre = [], []
for r in rows:
  lo, hi = r["years"]
  answers = rec.recommend_many([Request(user=str(d.user_ids[u]), prompt=r["text"]) for u in users])
  lengths = [len(x["items"]) for x in answers]
  in_era = np.mean([np.mean([lo <= year[it["title"]] <= hi for it in x["items"]]) for x in answers])
  share = (np.mean([np.mean([all(w in it["tags"] for w in r["want"]) for it in x["items"]])
                    for x in answers]) if r["want"] else float("nan"))
  in_era_all.append(in_era)
  if r["want"]:
    genre.append(share)
  print(f"{r['id']}\t{r['text']!r}\tin the years {in_era:.3f}\twanted genre {share:.3f}"
        f"\tlist length min {min(lengths)}\tread as {answers[0].get('read_as')!r}")
print(f"mean share in the years {np.mean(in_era_all):.3f} ({sum(v == 1.0 for v in in_era_all)} of"
      f" {len(rows)} requests at 1.000); mean share of the wanted genre {np.mean(genre):.3f}"
      f" ({len(genre)} requests)")

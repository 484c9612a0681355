"""Rules (b) and (c) of intensifying idioms: every request of the project's sets that
dpr_jax.serve.idioms rewrites, and -- given an ML-1M run -- how the labelled ones among them are
read without and with the rewrite (the Recommender's reading with the rewrite switched off for
"before": every other step is the same code).

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/idioms_cpu_2026-12-07/finds.py [ML1M_RUN]
"""
import json
import sys
from unittest import mock

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.serve import idioms

rewrite = idioms.plain  # the listing's own reference: not switched off with the reading below

rec = None
if len(sys.argv) > 1:
  from dpr_jax.serve.recommender import Recommender

  rec = Recommender.load(sys.argv[1])


def parse(text, with_rewrite):
  rec._read_cache.clear()  # pylint: disable=protected-access
  if with_rewrite:
    return rec.read(text).parse
  with mock.patch("dpr_jax.serve.idioms.plain", lambda t: t):
    return rec.read(text).parse


def right(p, want, avoid):
  return {t for t, _ in p.want} == set(want) and {t for t, _ in p.avoid} == set(avoid)


def lines(path):
  return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]


for domain in ("ml-1m", "mind"):
  labelled = {
      "everyday": [(r.text, r.want, r.avoid) for r in everyday.load(domain)],
      "generator train (seed 0, 6000)": [(r.text, r.want, r.avoid)
                                         for r in generator.generate(domain, "train", 6000, 0)],
      "generator held-out (seeds 0, 1)": [(r.text, r.want, r.avoid) for s in (0, 1)
                                          for r in generator.generate(domain, "heldout", 1000, s)],
  }
  plain = {"templates": [p.text for p in templates.all_prompts(domain)]}
  for name in ("one_genre", "only", "typos", "languages") + (
      ("symbols", "effects", "years") if domain == "ml-1m" else ()):
    rows = [json.loads(x) for x in open(f"dpr_jax/prompts/{name}/requests.jsonl")]
    rows = [r for r in rows if r.get("domain", domain) == domain]
    if all("want" in r for r in rows):
      labelled[f"{name} set"] = [(r["text"], r["want"], r["avoid"]) for r in rows]
    else:
      plain[f"{name} set"] = [r["text"] for r in rows]
  if domain == "ml-1m":
    plain |= {"thirty hand-typed": lines("reports/parser_probe_cpu_2026-12-06/prompts.txt"),
              "forty hand-typed": lines("reports/hand_probe_cpu_2026-12-07/requests.txt")}
  else:
    plain |= {"twenty-six hand-typed": lines("reports/hand_probe_cpu_2026-12-07/mind_requests.txt")}
  print(f"== {domain}")
  for name, rows in labelled.items():
    hits = [(t, w, a) for t, w, a in rows if rewrite(t) != t]
    line = f"  {name}: {len(hits)} of {len(rows)} rewritten"
    if rec is not None and domain == "ml-1m" and hits:
      before = [right(parse(t, False), w, a) for t, w, a in hits]
      after = [right(parse(t, True), w, a) for t, w, a in hits]
      line += f"; of them read right {sum(before)} -> {sum(after)}"
    print(line + "".join(f"\n    {t!r} -> {rewrite(t)!r}" for t, _, _ in hits))
  for name, texts in plain.items():
    hits = [t for t in texts if rewrite(t) != t]
    line = f"  {name}: {len(hits)} of {len(texts)} rewritten"
    for t in hits:
      line += f"\n    {t!r} -> {rewrite(t)!r}"
      if rec is not None and domain == "ml-1m":
        line += f": {parse(t, False).describe()} -> {parse(t, True).describe()}"
    print(line)

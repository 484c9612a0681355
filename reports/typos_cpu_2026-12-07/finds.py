"""Rule (c) of reading typos in a genre's word: every request of the project's other sets that
the correction changes (dpr_jax.serve.typos), and -- given an ML-1M run -- how the labelled ones
among them are read without and with it (the Recommender's reading, the correction switched off
for "before": every other step of the reading is the same code).

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/typos_cpu_2026-12-07/finds.py [ML1M_RUN]
"""
import json
import sys

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.serve.typos import Speller


def lines(path):
  return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]


def texts_of(path, domain=None):
  rows = [json.loads(x) for x in open(path)]
  return [r["text"] for r in rows if domain is None or r.get("domain", domain) == domain]


rec = None
if len(sys.argv) > 1:
  from dpr_jax.serve.recommender import Recommender

  rec = Recommender.load(sys.argv[1])
vocabulary = TextEncoder.from_pretrained(None).tokenizer.get_vocab()


def reads_right(text, want, avoid, correct):
  rec._read_cache.clear()  # pylint: disable=protected-access
  speller, rec._speller = rec._speller, (rec._speller if correct else None)  # pylint: disable=protected-access
  try:
    p = rec.read(text).parse
  finally:
    rec._speller = speller  # pylint: disable=protected-access
  return {t for t, _ in p.want} == set(want) and {t for t, _ in p.avoid} == set(avoid)


for domain in ("ml-1m", "mind"):
  titles = rec.data.item_titles if rec is not None and domain == "ml-1m" else ()
  if domain == "ml-1m" and not titles:
    print("(ML-1M read without the catalogue's titles: give a run for them)")
  speller = Speller.build(domain, generator.DOMAIN_TAGS[domain], vocabulary, titles)
  plain = {"templates": [p.text for p in templates.all_prompts(domain)]}
  labelled = {
      "everyday": [(r.text, r.want, r.avoid) for r in everyday.load(domain)],
      "generator train (seed 0, 6000)": [(r.text, r.want, r.avoid)
                                         for r in generator.generate(domain, "train", 6000, 0)],
      "generator held-out (seeds 0, 1)": [(r.text, r.want, r.avoid) for s in (0, 1)
                                          for r in generator.generate(domain, "heldout", 1000, s)],
  }
  for name in ("one_genre", "languages", "only") + (("symbols", "effects", "years") if domain == "ml-1m" else ()):
    rows = [json.loads(x) for x in open(f"dpr_jax/prompts/{name}/requests.jsonl")]
    rows = [r for r in rows if r.get("domain", domain) == domain]
    if all("want" in r for r in rows):
      labelled[f"{name} set"] = [(r["text"], r["want"], r["avoid"]) for r in rows]
    else:  # the languages set: no labels
      plain[f"{name} set"] = [r["text"] for r in rows]
  if domain == "ml-1m":
    plain |= {"thirty hand-typed": lines("reports/parser_probe_cpu_2026-12-06/prompts.txt"),
              "forty hand-typed": lines("reports/hand_probe_cpu_2026-12-07/requests.txt")}
    for name in ("requests", "bare", "several"):
      plain[f"titles set ({name})"] = texts_of(f"dpr_jax/prompts/titles/{name}.jsonl")
  else:
    plain |= {"twenty-six hand-typed": lines("reports/hand_probe_cpu_2026-12-07/mind_requests.txt")}
  print(f"== {domain}")
  for name, rows in labelled.items():
    hits = [(t, speller.correct(t)[1], w, a) for t, w, a in rows if speller.correct(t)[1]]
    line = f"  {name}: {len(hits)} of {len(rows)} changed"
    if rec is not None and domain == "ml-1m":
      before = [reads_right(t, w, a, False) for t, _, w, a in hits]
      after = [reads_right(t, w, a, True) for t, _, w, a in hits]
      line += f"; of them read right {sum(before)} -> {sum(after)}"
      flips = [(h, b, a) for h, b, a in zip(hits, before, after) if b != a]
      line += "".join(f"\n    {'RIGHT -> wrong' if b else 'wrong -> RIGHT'}: {h[0]!r} {h[1]}"
                      f" (want {list(h[2])}, avoid {list(h[3])})" for h, b, a in flips)
    print(line + "".join(f"\n    {t!r} {f}" for t, f, _, _ in hits[:12])
          + (f"\n    ... {len(hits) - 12} more" if len(hits) > 12 else ""))
  for name, texts in plain.items():
    hits = [(t, speller.correct(t)[1]) for t in texts if speller.correct(t)[1]]
    print(f"  {name}: {len(hits)} of {len(texts)} changed"
          + "".join(f"\n    {t!r} {f}" for t, f in hits))

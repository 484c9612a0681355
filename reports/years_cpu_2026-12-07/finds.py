"""Rules (a) and (c) of reading an era (reports/experiments.md, 2026-12-07 session 25): the set's
eras as the Recommender reads them (a title first, then an era in the rest, clipped to the
catalogue's years; its stance, want / avoid / avoid a tag / unsure, as the parsers read it), and
which of the project's other requests are read as naming one -- for the generator's, labelled,
whether an era inside an avoided phrase is ever kept to (an inversion).

    DPR_DATA_DIR=... PYTHONPATH=. python reports/years_cpu_2026-12-07/finds.py RUN
"""
import json
import sys

from dpr_jax.models.parser import Parse
from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.serve.recommender import Recommender
from dpr_jax.serve.years import find_era

rec = Recommender.load(sys.argv[1])
lo, hi = rec._year_range


def era_of(text, stance=True):
  """(first, last, stance) the Recommender reads in ``text`` (None: no era)."""
  m = rec._titles.find(text)
  era = find_era(m.rest if m else text)
  if era is None:
    return None
  years = (max(era.first or lo, lo), min(era.last or hi, hi))
  if not stance:
    return years + ("",)
  rest = (rec._parse_one(era.rest, named=True).parse if any(c.isalpha() for c in era.rest)
          else Parse((), ()))  # as Recommender.read reads the rest
  return years + (rec._era_stance(m.rest if m else text, era, rest),)


def lines(path):
  return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]


print(f"catalogue years {lo}-{hi}")
print("(a) the set (dpr_jax/prompts/years/requests.jsonl)")
rows = [json.loads(line) for line in open("dpr_jax/prompts/years/requests.jsonl")]
right = {"era": 0, "ctl": 0}
for r in rows:
  got = era_of(r["text"])
  ok = got == (tuple(r["years"]) + ("want",) if r["years"] else None)
  right[r["kind"]] += ok
  print(f"  {r['id']}\t{'ok ' if ok else 'NO '}\t{r['text']!r}\t-> {got}")
print(f"eras read right (years and want) {right['era']} of 16; controls without an era {right['ctl']} of 6")
labelled = {}
for name, dom in (("ml-1m", "ml-1m"),):
  for split, seeds, n in (("train", (0,), 6000), ("heldout", (0, 1), 1000)):
    labelled[f"generator {split} ({name}, seeds {seeds}, {n} each)"] = [
        r for s in seeds for r in generator.generate(dom, split, n, s)]
sets = {
    "everyday (ml-1m)": [r.text for r in everyday.load("ml-1m")],
    "everyday (mind)": [r.text for r in everyday.load("mind")],
    "generator train (mind, seed 0, 6000)": [r.text for r in generator.generate("mind", "train", 6000, 0)],
    "generator held-out (mind, seeds 0, 1)": [r.text for s in (0, 1) for r in generator.generate("mind", "heldout", 1000, s)],
    "templates (ml-1m)": [p.text for p in templates.all_prompts("ml-1m")],
    "templates (mind)": [p.text for p in templates.all_prompts("mind")],
    "thirty hand-typed": lines("reports/parser_probe_cpu_2026-12-06/prompts.txt"),
    "forty hand-typed": lines("reports/hand_probe_cpu_2026-12-07/requests.txt"),
    "twenty-six hand-typed (mind)": lines("reports/hand_probe_cpu_2026-12-07/mind_requests.txt"),
}
for name in ("languages", "symbols", "only", "effects"):
  sets[f"{name} set"] = [json.loads(line)["text"] for line in open(f"dpr_jax/prompts/{name}/requests.jsonl")]
for name in ("requests", "bare", "several"):
  sets[f"titles set ({name})"] = [json.loads(line)["text"] for line in open(f"dpr_jax/prompts/titles/{name}.jsonl")]
print("(c) the project's other requests read as naming an era")
for name, texts in sets.items():
  hits = [(t, e) for t in texts if era_of(t, stance=False) and (e := era_of(t))]
  print(f"  {name}: {len(hits)} of {len(texts)}" + "".join(f"\n    {t!r} -> {e}" for t, e in hits))
print("(c) the generator's labelled requests naming an era: the era's stance against the labels of")
print("    the tag whose form carries it (an era kept to inside an avoided form is an inversion)")
for name, reqs in labelled.items():
  tally = {}
  for r in reqs:
    if not era_of(r.text, stance=False):
      continue
    e = era_of(r.text)
    # the form with the era in it, and whether its tag is wanted or avoided
    tag = next(t for t, f in zip(r.want + r.avoid, r.forms) if find_era(f))
    key = ("wanted" if tag in r.want else "avoided", e[2])
    tally[key] = tally.get(key, 0) + 1
    if key in (("avoided", "want"), ("wanted", "avoid")):
      print(f"    inversion: {r.text!r} ({key[0]} {tag}) -> {e}")
  print(f"  {name}: " + ", ".join(f"{k[0]} form read as {k[1]}: {v}" for k, v in sorted(tally.items())))

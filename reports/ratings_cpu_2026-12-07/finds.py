"""Rules (b) and (c) of session 27's serving changes: every request of the project's sets that
the change rewrites, and -- given a run of the domain -- how each is read without and with it (the
Recommender's reading with the change switched off for "before": every other step is the same
code). CHANGE: ``ratings`` (dpr_jax.serve.ratings, what the catalogue does not record),
``keep`` (dpr_jax.serve.keep, wishes said with "keep"), ``instead`` (dpr_jax.serve.instead,
one genre asked in place of another), ``litotes`` (dpr_jax.serve.litotes, a wish said by
denying an aversion), ``avoid_first`` (dpr_jax.serve.avoid_first, an avoid then a wish),
``breaks`` (dpr_jax.serve.breaks, an avoid said as a break) or ``kids_away``
(dpr_jax.serve.kids_away, the kids away or asleep).

    DPR_DATA_DIR=... DPR_CACHE_DIR=... PYTHONPATH=. python reports/ratings_cpu_2026-12-07/finds.py CHANGE DOMAIN [RUN]
"""
import json
import sys
from unittest import mock

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.serve import avoid_first, breaks, instead, keep, kids_away, litotes, ratings

# name: (the rewritten text, the function to switch off, what it returns when off); the listing
# keeps its own references, which are not switched off below.
CHANGES = {
    "ratings": (lambda t, f=ratings.unrecorded: f(t)[0], "dpr_jax.serve.ratings.unrecorded",
                lambda t: (t, ())),
    "keep": (keep.as_wish, "dpr_jax.serve.keep.as_wish", lambda t: t),
    "instead": (instead.in_place, "dpr_jax.serve.instead.in_place", lambda t: t),
    "litotes": (litotes.as_wish, "dpr_jax.serve.litotes.as_wish", lambda t: t),
    "avoid_first": (avoid_first.wish_first, "dpr_jax.serve.avoid_first.wish_first", lambda t: t),
    "breaks": (breaks.as_avoid, "dpr_jax.serve.breaks.as_avoid", lambda t: t),
    "kids_away": (kids_away.without, "dpr_jax.serve.kids_away.without", lambda t: t),
}
rewrite, target, off = CHANGES[sys.argv[1]]
domain = sys.argv[2]
rec = None
if len(sys.argv) > 3:
  from dpr_jax.serve.recommender import Recommender

  rec = Recommender.load(sys.argv[3])


def parse(text, with_change):
  rec._read_cache.clear()  # pylint: disable=protected-access
  if with_change:
    return rec.read(text).parse
  with mock.patch(target, off):
    return rec.read(text).parse


def right(p, want, avoid):
  return {t for t, _ in p.want} == set(want) and {t for t, _ in p.avoid} == set(avoid)


def lines(path):
  return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]


def changed(t):
  return rewrite(t) != t


labelled = {
    "everyday": [(r.text, r.want, r.avoid) for r in everyday.load(domain)],
    "generator train (seed 0, 6000)": [(r.text, r.want, r.avoid)
                                       for r in generator.generate(domain, "train", 6000, 0)],
    "generator held-out (seeds 0, 1)": [(r.text, r.want, r.avoid) for s in (0, 1)
                                        for r in generator.generate(domain, "heldout", 1000, s)],
}
# The templates by their polarity: a positive one wants its tags, a negative one avoids them.
labelled["templates (by polarity)"] = [
    (p.text, list(p.tags) if p.polarity > 0 else [], [] if p.polarity > 0 else list(p.tags))
    for p in templates.all_prompts(domain)]
plain = {}
for name in ("one_genre", "only", "typos", "idioms", "languages", "symbols", "effects", "years",
             "titles"):
  for path in (f"dpr_jax/prompts/{name}/requests.jsonl",) + (
      ("dpr_jax/prompts/titles/bare.jsonl", "dpr_jax/prompts/titles/several.jsonl")
      if name == "titles" else ()):
    rows = [json.loads(x) for x in open(path)]
    rows = [r for r in rows if r.get("domain", "ml-1m") == domain]
    if not rows:
      continue
    key = f"{path.split('/')[-2]}/{path.split('/')[-1]}"
    if all("want" in r and "avoid" in r for r in rows):
      labelled[key] = [(r["text"], r["want"], r["avoid"]) for r in rows]
    else:
      plain[key] = [r["text"] for r in rows]
if domain == "ml-1m":
  plain |= {"thirty hand-typed": lines("reports/parser_probe_cpu_2026-12-06/prompts.txt"),
            "forty hand-typed": lines("reports/hand_probe_cpu_2026-12-07/requests.txt")}
else:
  plain |= {"twenty-six hand-typed": lines("reports/hand_probe_cpu_2026-12-07/mind_requests.txt")}
if rec is not None:
  plain["the catalogue's titles"] = list(rec.data.item_titles)
print(f"== {domain}")
for name, rows in labelled.items():
  hits = [(t, w, a) for t, w, a in rows if changed(t)]
  line = f"  {name}: {len(hits)} of {len(rows)} changed"
  if rec is not None and hits:
    before = [right(parse(t, False), w, a) for t, w, a in hits]
    after = [right(parse(t, True), w, a) for t, w, a in hits]
    line += f"; of them read right {sum(before)} -> {sum(after)}"
  print(line + "".join(f"\n    {t!r} -> {rewrite(t)!r}" for t, _, _ in hits))
for name, texts in plain.items():
  hits = [t for t in texts if changed(t)]
  line = f"  {name}: {len(hits)} of {len(texts)} changed"
  for t in hits:
    line += f"\n    {t!r} -> {rewrite(t)!r}"
    if rec is not None and name != "the catalogue's titles":
      line += f": {parse(t, False).describe()} -> {parse(t, True).describe()}"
  print(line)

"""Rule (c) of reading one genre typed alone: which of the project's other requests the rule
reads (every one is then a wish of that genre, whatever the parsers said), with the labels where
the request has them.

    PYTHONPATH=. python reports/one_genre_cpu_2026-12-07/finds.py
"""
import json

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.serve.one_genre import genre_alone, genre_forms


def lines(path):
  return [line.strip() for line in open(path) if line.strip() and not line.startswith("#")]


for domain in ("ml-1m", "mind"):
  forms = genre_forms(domain, generator.DOMAIN_TAGS[domain])
  labelled = {
      "everyday": [(r.text, r.want, r.avoid) for r in everyday.load(domain)],
      "generator train (seed 0, 6000)": [(r.text, r.want, r.avoid)
                                         for r in generator.generate(domain, "train", 6000, 0)],
      "generator held-out (seeds 0, 1)": [(r.text, r.want, r.avoid) for s in (0, 1)
                                          for r in generator.generate(domain, "heldout", 1000, s)],
  }
  plain = {"templates": [p.text for p in templates.all_prompts(domain)]}
  if domain == "ml-1m":
    plain |= {"thirty hand-typed": lines("reports/parser_probe_cpu_2026-12-06/prompts.txt"),
              "forty hand-typed": lines("reports/hand_probe_cpu_2026-12-07/requests.txt")}
    for name in ("symbols", "effects", "years"):
      plain[f"{name} set"] = [json.loads(x)["text"] for x in open(f"dpr_jax/prompts/{name}/requests.jsonl")]
    for name in ("requests", "bare", "several"):
      plain[f"titles set ({name})"] = [json.loads(x)["text"]
                                       for x in open(f"dpr_jax/prompts/titles/{name}.jsonl")]
  else:
    plain |= {"twenty-six hand-typed": lines("reports/hand_probe_cpu_2026-12-07/mind_requests.txt")}
  plain["languages set"] = [json.loads(x)["text"] for x in open("dpr_jax/prompts/languages/requests.jsonl")
                            if json.loads(x)["domain"] == domain]
  plain["only set"] = [json.loads(x)["text"] for x in open("dpr_jax/prompts/only/requests.jsonl")
                       if json.loads(x)["domain"] == domain]
  print(f"== {domain}")
  for name, rows in labelled.items():
    hits = [(t, genre_alone(t, forms), w, a) for t, w, a in rows if genre_alone(t, forms)]
    wrong = [h for h in hits if tuple(h[2]) != (h[1],) or h[3]]
    print(f"  {name}: {len(hits)} of {len(rows)} read by the rule, {len(wrong)} against the label"
          + "".join(f"\n    {t!r} -> want {g} (labelled want {w}, avoid {a})" for t, g, w, a in wrong)
          + "".join(f"\n    {t!r} -> want {g}" for t, g, _, _ in hits[:8]))
  for name, texts in plain.items():
    hits = [(t, genre_alone(t, forms)) for t in texts if genre_alone(t, forms)]
    print(f"  {name}: {len(hits)} of {len(texts)} read by the rule"
          + "".join(f"\n    {t!r} -> want {g}" for t, g in hits))

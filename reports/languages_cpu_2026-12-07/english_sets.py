import collections, json, pathlib, sys
from dpr_jax.prompts import generator, templates, everyday, language
flagged = collections.defaultdict(list); counts = {}
def check(name, texts):
    texts = list(texts); counts[name] = len(texts)
    for t in texts:
        l = language.other_language(t)
        if l: flagged[name].append((t, l))
for d in ("ml-1m", "mind"):
    check(f"{d} everyday", [r.text for r in everyday.load(d)])
    check(f"{d} generator train (seed 0, 6000)", [r.text for r in generator.generate(d, "train", 6000, 0)])
    check(f"{d} generator held-out (seed 0, 1000)", [r.text for r in generator.generate(d, "heldout", 1000, 0)])
    check(f"{d} generator held-out (seed 1, 1000)", [r.text for r in generator.generate(d, "heldout", 1000, 1)])
    check(f"{d} templates (every prompt)", [p.text for p in templates.all_prompts(d)])
check("thirty hand-typed", [l.strip() for l in open("reports/parser_probe_cpu_2026-12-06/prompts.txt") if l.strip() and not l.startswith("#")])
for k, n in counts.items():
    print(f"{k}: {len(flagged[k])} of {n} flagged" + "".join(f"\n    {t!r} -> {l}" for t, l in flagged[k][:10]))

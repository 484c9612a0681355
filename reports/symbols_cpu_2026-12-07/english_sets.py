"""Rule (a): how many requests of the project's sets the spelling-out changes (it must be none).

    PYTHONPATH=. python reports/symbols_cpu_2026-12-07/english_sets.py
"""
import json
import pathlib

from dpr_jax.prompts import everyday, generator, templates
from dpr_jax.prompts.symbol_words import NO, spell_out

counts, changed = {}, {}


def check(name, texts):
  texts = list(texts)
  counts[name] = len(texts)
  changed[name] = [t for t in texts if spell_out(t) != t]


for d in ("ml-1m", "mind"):
  check(f"{d} everyday", [r.text for r in everyday.load(d)])
  check(f"{d} generator train (seed 0, 6000)", [r.text for r in generator.generate(d, "train", 6000, 0)])
  check(f"{d} generator held-out (seeds 0, 1; 1000 each)",
        [r.text for s in (0, 1) for r in generator.generate(d, "heldout", 1000, s)])
  check(f"{d} templates (every prompt)", [p.text for p in templates.all_prompts(d)])
check("thirty hand-typed", [line.strip() for line in open("reports/parser_probe_cpu_2026-12-06/prompts.txt")
                            if line.strip() and not line.startswith("#")])
check("languages set (79 + 30 controls)",
      [json.loads(line)["text"] for line in open("dpr_jax/prompts/languages/requests.jsonl")])
# The generator's word lists themselves: a "no" symbol anywhere would reach training texts.
lists = "".join(p.read_text() for p in pathlib.Path("dpr_jax/prompts/generator").glob("*.json"))
print("generator word lists holding a 'no' symbol:", sum(c in NO for c in lists))
for k, n in counts.items():
  print(f"{k}: {len(changed[k])} of {n} changed" + "".join(f"\n    {t!r}" for t in changed[k][:10]))

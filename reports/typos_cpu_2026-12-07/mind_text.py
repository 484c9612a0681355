"""Rule (b) of reading typos: what the correction makes of MIND's requests of the set (text only:
no MIND run with parsers was at hand), with the encoder's vocabulary and no titles.

    PYTHONPATH=. python reports/typos_cpu_2026-12-07/mind_text.py
"""
import json

from dpr_jax.prompts import generator
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.serve.typos import Speller

speller = Speller.build("mind", generator.DOMAIN_TAGS["mind"],
                        TextEncoder.from_pretrained(None).tokenizer.get_vocab())
for line in open("dpr_jax/prompts/typos/requests.jsonl"):
  r = json.loads(line)
  if r["domain"] == "mind":
    text, fixes = speller.correct(r["text"])
    words = {speller.targets[m] for _, m in fixes}
    print(f"{r['id']}\t{r['kind']}\t{r['text']!r} -> {text!r}\tgenres named {sorted(words)}"
          f"\tlabelled {r['want'] + r['avoid']}")

"""Writes the held-out compound requests of a domain's grammar ("a gore-free night") as a TSV.

    python launch/compound_requests.py ml-1m OUT.tsv [N] [SEED]

The generator's held-out split, N requests (default 4,000) drawn with SEED (default 3, default
noise), those whose construction has a compound slot (`dpr_jax.prompts.generator`); one line per
request: ``text<TAB>wanted tags<TAB>avoided tags`` (comma-separated). `launch/parser_validation.py
DOMAIN read=OUT.tsv` scores a parser on them, also one trained on a grammar without compound
slots (reports/experiments.md, 2026-12-06 session 16).
"""

import sys

from dpr_jax.prompts import generator


def main(argv):
  if len(argv) < 3:
    sys.exit(__doc__)
  domain, out = argv[1], argv[2]
  n = int(argv[3]) if len(argv) > 3 else 4000
  seed = int(argv[4]) if len(argv) > 4 else 3
  reqs = [r for r in generator.generate(domain, "heldout", n, seed)
          if generator.compound_slots(r.construction)]
  if not reqs:
    sys.exit(f"error: the {domain} grammar has no held-out construction with a compound slot")
  with open(out, "w", encoding="utf-8") as f:
    for r in reqs:
      f.write(f"{r.text}\t{','.join(r.want)}\t{','.join(r.avoid)}\n")
  print(f"{len(reqs)} held-out compound requests of {domain} -> {out}")


if __name__ == "__main__":
  main(sys.argv)

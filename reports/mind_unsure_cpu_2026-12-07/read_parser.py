"""The figures stage 2 writes to `results_parser.json`, for a trained parser run folder of
`launch/parser_validation.py` (its members restore by fingerprint; nothing is retrained):
the generator's held-out split, the held-out templates and the everyday set, each with the share
read right, read as its opposite, and how many of each the answer marks as unsure
(reports/experiments.md, 2026-12-07 session 19; a reported figure, no choice).

    PYTHONPATH=. python reports/mind_unsure_cpu_2026-12-07/read_parser.py RUN DOMAIN MEMBERS OUT.json
"""

import json
import sys
import time

from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.data.prepare import default_cache_dir
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.reader import make_parse
from dpr_jax.train import parser as parser_lib
from dpr_jax.train.logbook import Logbook


def main(run, domain, members, out):
  c = default_config()
  c.dpr.domain, c.run.dir, c.run.progress = domain, run, False
  c.parser.members = int(members)
  tags = templates.tags_for(domain)
  cache = default_cache_dir()
  bank = build_bank(domain, tags, cache, None)
  start = time.time()
  params = parser_lib.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, None,
                                   Logbook(run))
  took = time.time() - start
  assert took < 180, f"{took:.0f} s: the parser was retrained, not restored"
  results = parser_lib.evaluate_parser(c, make_parse(c, params, tags, cache, None), bank, tags)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main(*sys.argv[1:])

"""Reads `dpr_jax/prompts/only/requests.jsonl` with a parser_validation.py run's MIND parsers
(restored, not retrained) and says per request how it was read and whether that is what was meant.

    DPR_CACHE_DIR=... PYTHONPATH=. python reports/mind_only_cpu_2026-12-07/read_set.py RUN MEMBERS
"""
import collections
import json
import sys
import time

from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.data.prepare import default_cache_dir
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.prompts.reader import make_parse
from dpr_jax.train import parser as parser_lib
from dpr_jax.train.logbook import Logbook

c = default_config()
c.dpr.domain, c.run.dir, c.run.progress = "mind", sys.argv[1], False
c.parser.members = int(sys.argv[2])
tags = templates.tags_for("mind")
cache = default_cache_dir()
bank = build_bank("mind", tags, cache, None)
start = time.time()
params = parser_lib.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, None,
                                 Logbook(sys.argv[1]))
assert time.time() - start < 180, "the parsers were retrained, not restored"
parse = make_parse(c, params, tags, cache, None, text_encoder=TextEncoder.from_pretrained(None))
rows = [json.loads(line) for line in open("dpr_jax/prompts/only/requests.jsonl")]
right, total = collections.Counter(), collections.Counter()
for r, p in zip(rows, parse([r["text"] for r in rows])):
  ok = {t for t, _ in p.want} == set(r["want"]) and {t for t, _ in p.avoid} == set(r["avoid"])
  right[r["kind"]] += ok
  total[r["kind"]] += 1
  print(f"{r['id']}\t{'ok ' if ok else 'NO '}\t{r['text']}\t{p.describe()}")
print("read right:", {k: f"{right[k]}/{total[k]}" for k in total})

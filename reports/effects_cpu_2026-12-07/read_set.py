"""Reads an evaluation set (``dpr_jax/prompts/<set>/requests.jsonl``) with a run's trained
parsers (restored, not retrained) and says per request how it was read and whether that is what
was meant (the parse's want and avoid sets equal the set's ``want`` and ``avoid``).

    DPR_CACHE_DIR=... PYTHONPATH=. python reports/effects_cpu_2026-12-07/read_set.py RUN SET [KEY=VALUE ...]

RUN: a run folder (a DPR run, or a parser_validation.py run) whose config the parsers were
trained under; KEY=VALUE: config overrides, e.g. ``parser.members=10``.
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

run, name = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(f"dpr_jax/prompts/{name}/requests.jsonl")]
c = default_config()
c.dpr.domain, c.run.dir, c.run.progress = rows[0]["domain"], run, False
for kv in sys.argv[3:]:
  key, value = kv.split("=", 1)
  section, field = key.split(".")
  old = getattr(getattr(c, section), field)
  setattr(getattr(c, section), field, type(old)(value == "True" if isinstance(old, bool) else value))
tags = templates.tags_for(c.dpr.domain)
cache = default_cache_dir()
bank = build_bank(c.dpr.domain, tags, cache, None)
start = time.time()
params = parser_lib.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, None, Logbook(run))
assert time.time() - start < 180, "the parsers were retrained, not restored"
parse = make_parse(c, params, tags, cache, None, text_encoder=TextEncoder.from_pretrained(None))
right, total = collections.Counter(), collections.Counter()
for r, p in zip(rows, parse([r["text"] for r in rows])):
  ok = {t for t, _ in p.want} == set(r["want"]) and {t for t, _ in p.avoid} == set(r["avoid"])
  right[r["kind"]] += ok
  total[r["kind"]] += 1
  print(f"{r['id']}\t{'ok ' if ok else 'NO '}\t{r['text']}\t{p.describe()}")
print("read right:", {k: f"{right[k]}/{total[k]}" for k in total})

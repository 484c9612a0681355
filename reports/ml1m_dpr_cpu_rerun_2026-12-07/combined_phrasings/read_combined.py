"""Diagnostic (session 20; no choice is made on it): a restored ten-member ML-1M parser (a
`launch/parser_validation.py` run folder; nothing is retrained) reads every COMBINED phrasing x
every ordered pair of genres and writes each request's stance probabilities (JSON lines).
SENT=1 reads with each sentence encoded on its own (`parser.sentence_states`); CLAUSE=1 restores
and reads parsers trained with `parser.clause_cue` (session 21).

    PYTHONPATH=. [SENT=1] [CLAUSE=1] python read_combined.py RUN OUT.jsonl [sentence_states of the run: 0/1]
    PYTHONPATH=. python analyse.py OUT.jsonl
"""
import itertools
import json
import os
import sys
import time

import numpy as np
from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.data.prepare import default_cache_dir
from dpr_jax.models.parser import NONE
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.reader import _probs_fn
from dpr_jax.train import parser as parser_lib
from dpr_jax.train.logbook import Logbook

run, out = sys.argv[1], sys.argv[2]
c = default_config()
c.dpr.domain, c.run.dir, c.run.progress = "ml-1m", run, False
c.parser.members, c.train.seed = 10, 0
c.parser.sentence_states = len(sys.argv) > 3 and sys.argv[3] == "1"  # how RUN was trained
SENT = os.environ.get("SENT") == "1"
c.parser.clause_cue = os.environ.get("CLAUSE") == "1"  # session 21: how RUN was trained
tags = templates.tags_for("ml-1m")
cache = default_cache_dir()
bank = build_bank("ml-1m", tags, cache, None)
t0 = time.time()
params = parser_lib.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, None, Logbook(run))
assert time.time() - t0 < 120
c.parser.sentence_states = SENT
probs_fn = _probs_fn(c, params, tags, cache, None)
texts, labels = [], []
for k, tpl in enumerate(templates.COMBINED["ml-1m"]):
  for g, h in itertools.permutations(tags, 2):
    texts.append(templates.combined_prompt("ml-1m", tpl, g, h)); labels.append((k, g, h))
probs = np.asarray(probs_fn(texts))
with open(out, "w") as f:
  for text, (k, g, h), p in zip(texts, labels, probs):
    f.write(json.dumps({"tpl": k, "text": text, "want": g, "avoid": h,
                        "p": {tag: [round(float(x), 4) for x in p[i]] for i, tag in enumerate(tags)
                              if p[i].argmax() != NONE or tag in (g, h)}}) + "\n")
print("done", len(texts))

"""How sure is the parser when it reads a request as its opposite? (reports/experiments.md,
2026-12-06 session 18; validation sets only, the everyday set is not read.)

Restores a trained parser (a `launch/parser_validation.py` run folder: its members restore by
fingerprint, nothing is retrained) and writes, for each request of the validation sets, the
ensemble's stance probabilities of every tag it reads as wanted or avoided and whether that
stance is right, the opposite of the label, or names a tag the request does not:

    PYTHONPATH=. python reports/parser_negation_cpu_2026-12-06/calibrate.py RUN MEMBERS SEED B.tsv OUT.jsonl
"""

import json
import sys
import time

import numpy as np

from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.data.prepare import default_cache_dir
from dpr_jax.models.parser import AVOID, NONE, WANT
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.reader import _probs_fn
from dpr_jax.train import parser as parser_lib
from dpr_jax.train.logbook import Logbook


def main(run, members, seed, b_file, out):
  c = default_config()
  c.dpr.domain, c.run.dir, c.run.progress = "ml-1m", run, False
  c.parser.members, c.train.seed = int(members), int(seed)
  tags = templates.tags_for("ml-1m")
  cache = default_cache_dir()
  bank = build_bank("ml-1m", tags, cache, None)
  start = time.time()
  params = parser_lib.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, None,
                                   Logbook(run))
  took = time.time() - start
  assert took < 120, f"{took:.0f} s: the parser was retrained, not restored"
  probs_fn = _probs_fn(c, params, tags, cache, None)
  rows = [line.rstrip("\n").split("\t") for line in open(b_file, encoding="utf-8") if line.strip()]
  split = lambda field: tuple(t for t in field.split(",") if t)  # noqa: E731
  sets = {"B": ([r[0] for r in rows], [(split(r[1]), split(r[2])) for r in rows]),
          "templates": parser_lib.template_requests(bank, "eval")}
  with open(out, "w", encoding="utf-8") as f:
    for name, (texts, labels) in sets.items():
      probs = np.asarray(probs_fn(texts))  # float32[n, T, 3]
      for text, (want, avoid), p in zip(texts, labels, probs):
        stances = []
        for t, tag in enumerate(tags):
          best = int(p[t].argmax())
          if best == NONE:
            continue
          truth = WANT if tag in want else AVOID if tag in avoid else NONE
          verdict = ("right" if truth == best else "none" if truth == NONE else "opposite")
          stances.append({"tag": tag, "stance": "want" if best == WANT else "avoid",
                          "p": [round(float(x), 4) for x in p[t]], "verdict": verdict})
        missed = [tag for tag in want + avoid
                  if int(p[tags.index(tag)].argmax()) == NONE] if all(
                      tag in tags for tag in want + avoid) else []
        f.write(json.dumps({"set": name, "text": text, "want": want, "avoid": avoid,
                            "stances": stances, "missed": missed}) + "\n")
  print(f"restored in {took:.0f} s -> {out}")


if __name__ == "__main__":
  main(*sys.argv[1:])

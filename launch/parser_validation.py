"""Trains the request parser alone and scores it on its validation sets (reports/experiments.md).

    python launch/parser_validation.py ml-1m [parser.hidden=128 parser.form_dropout=0.6 ...]
    python launch/parser_validation.py ml-1m dpr.text_encoder=~/models/all-mpnet-base-v2
    python launch/parser_validation.py mind read=requests.tsv   # also reads a labelled file

``read=FILE[,FILE...]``: TSVs of ``text<TAB>wanted tags<TAB>avoided tags`` (tags
comma-separated, as ``python launch/compound_requests.py`` writes), each read and scored beside
the validation sets, so that two grammars can be scored on the same requests.

Validation = the generator's held-out constructions and forms (1,000 requests, seed 1) and the
held-out templates; the everyday set is not read here (it is the reported figure, never a
choice). Prints the share of requests with every tag read right (with ``parser.members=K``,
the ensemble's and each member's) and of those read as their opposite (a wanted tag read as
avoided or back), how many of those and of the right ones the answer would mark as unsure
(``parser.unsure_at``), a few misreadings, and the same share for forms of one
split in constructions of the other.
"""

import os
import sys
import time

import jax

from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.data.prepare import default_cache_dir
from dpr_jax.prompts import generator, templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.reader import make_parse
from dpr_jax.train import parser as parser_lib
from dpr_jax.train.logbook import Logbook


def main(argv):
  c = default_config()
  c.dpr.domain = argv[1] if len(argv) > 1 else "ml-1m"
  # One folder per process: two runs started in the same second must not share one.
  c.run.dir = f"runs/parser_validation_{c.dpr.domain}_{int(time.time())}_{os.getpid()}"
  c.run.progress = False
  extra = []
  for kv in argv[2:]:
    key, value = kv.split("=")
    if key == "read":
      extra = [f for f in value.split(",") if f]
      continue
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    kind = type(node[leaf])
    node[leaf] = value.lower() in ("1", "true") if kind is bool else kind(value)
  tags = templates.tags_for(c.dpr.domain)
  cache = default_cache_dir()
  encoder = c.dpr.text_encoder or None  # dpr.text_encoder=FOLDER: another frozen encoder
  bank = build_bank(c.dpr.domain, tags, cache, encoder)
  start = time.time()
  params = parser_lib.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, encoder,
                                   Logbook(c.run.dir))
  mix = parser_lib.train_mix_parser(c, tags, bank, sharding.make_mesh(1, 1), cache,
                                    Logbook(c.run.dir))  # parser.mix_encoder=FOLDER
  print(f"trained in {time.time() - start:.0f} s", flush=True)
  parse = make_parse(c, params, tags, cache, encoder, mix_params=mix)
  # An ensemble (parser.members > 1): each member alone as well.
  alone = [make_parse(c, jax.tree.map(lambda x, k=k: x[k:k + 1], params), tags, cache, encoder)
           for k in range(c.parser.members)] if c.parser.members > 1 else []
  sets = {"generator held-out": parser_lib.generated_requests(c.dpr.domain, "heldout", 1000, 1,
                                                              tags),
          "templates held-out": parser_lib.template_requests(bank, "eval")}
  for path in extra:
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8") if line.strip()]
    split = lambda field: tuple(t for t in field.split(",") if t)
    sets[f"file {path}"] = ([r[0] for r in rows], [(split(r[1]), split(r[2])) for r in rows])
  for name, (texts, labels) in sets.items():
    parses = parse(texts)
    ok = parser_lib.exact(parses, labels)
    members = " / ".join(f"{parser_lib.exact(p(texts), labels).mean():.4f}" for p in alone)
    inv = parser_lib.inverted(parses, labels)
    marked = parser_lib.marked_unsure(parses)
    share = lambda m, sel: f"{m[sel].mean():.3f}" if sel.any() else "-"  # noqa: E731
    print(f"{name}: {len(texts)} requests, accuracy {ok.mean():.4f}, inverted {inv.mean():.4f}"
          f" (marked unsure: {share(marked, inv)} of those inverted, {share(marked, ok)} of"
          " those right)" + (f" (members alone: {members})" if alone else ""), flush=True)
    for text, label, p, good in list(zip(texts, labels, parses, ok))[:400]:
      if not good:
        print(f"    {text!r}: labelled {label}, read as {p.describe()}")
  # Which unseen part fails: forms of one split in constructions of the other (noise as usual).
  print("forms x constructions (every tag right / the set of named tags right):")
  for forms_from, cons in (("train", "train"), ("heldout", "train"), ("train", "heldout"),
                           ("heldout", "heldout")):
    reqs = generator.generate(c.dpr.domain, cons, 1000, 7, tags=tags, forms_from=forms_from)
    parses = parse([r.text for r in reqs])
    ok = parser_lib.exact(parses, [(r.want, r.avoid) for r in reqs])
    named = [{t for t, _ in p.want + p.avoid} == {*r.want, *r.avoid}
             for p, r in zip(parses, reqs)]
    print(f"  {forms_from:7s} forms, {cons:7s} constructions: {ok.mean():.3f} / "
          f"{sum(named) / len(named):.3f}", flush=True)


if __name__ == "__main__":
  main(sys.argv)

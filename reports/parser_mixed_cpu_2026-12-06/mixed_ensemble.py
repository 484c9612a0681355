"""One ensemble of both encoders' parsers (reports/experiments.md, 2026-12-06 session 11)."""
import numpy as np, jax, jax.numpy as jnp
from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.models.parser import ensemble_probs, decode
from dpr_jax.prompts import generator, templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.reader import build_parser, known_forms, token_inputs
from dpr_jax.train import parser as P
from dpr_jax.train.logbook import Logbook

MPNET = "/work/models/all-mpnet-base-v2"
tags = templates.tags_for("ml-1m")
import os
if os.environ.get("MEMBERS") == "default":  # the two ensembles of three at 6,000 requests, 20 epochs (2026-12-05 night)
  groups = {"minilm": dict(cache="/work/mpnet/cache_minilm", enc=None, epochs=20, requests=6000, ensemble="/work/mpnet/ens_minilm"),
            "mpnet": dict(cache="/work/mpnet/cache_port", enc=MPNET, epochs=20, requests=6000, ensemble="/work/mpnet/ens_mpnet")}
else:  # plan 4's MiniLM three and plan 3's MPNet three (18,000 requests)
  groups = {"minilm": dict(cache="/work/mpnet/cache_minilm", enc=None, epochs=20, requests=18000, runs="/work/pr3/minilm_r18k_e20_s{}"),
            "mpnet": dict(cache="/work/mpnet/cache_port", enc=MPNET, epochs=7, requests=18000, runs="/work/pr3/mpnet_r18k_s{}")}
bank = build_bank("ml-1m", tags, groups["minilm"]["cache"], None)
sets = {"generator held-out": P.generated_requests("ml-1m", "heldout", 1000, 1, tags),
        "templates held-out": P.template_requests(bank, "eval")}
for forms_from, cons in (("train", "train"), ("heldout", "train"), ("train", "heldout"), ("heldout", "heldout")):
  reqs = generator.generate("ml-1m", cons, 1000, 7, tags=tags, forms_from=forms_from)
  sets[f"{forms_from} forms / {cons} constructions"] = ([r.text for r in reqs], [(r.want, r.avoid) for r in reqs])
probs = {}
for g, v in groups.items():
  members = []
  for s in range(1 if "ensemble" in v else 3):
    c = default_config(); c.dpr.domain = "ml-1m"; c.train.seed = s
    c.parser.members = 3 if "ensemble" in v else 1
    c.parser.requests = v["requests"]; c.parser.epochs = v["epochs"]; c.dpr.text_encoder = "" if "ensemble" in v else (v["enc"] or "")  # 2026-12-05's MPNet members predate the port: no encoder in their fingerprint
    c.run.dir = v.get("ensemble") or v["runs"].format(s); c.run.progress = False
    b = build_bank("ml-1m", tags, v["cache"], v["enc"])
    members.append(P.train_parser(c, tags, b, sharding.make_mesh(1, 1), v["cache"], v["enc"], Logbook(c.run.dir), train=False))
  params = jax.tree.map(lambda *x: jnp.concatenate(x), *members)
  model = build_parser(c, len(tags))
  forms, form_tag = (jnp.asarray(a) for a in known_forms("ml-1m", tags, v["cache"], v["enc"]))
  fn = jax.jit(lambda p, t, m, cu: ensemble_probs(model, p, t, m, cu, forms, form_tag))
  for name, (texts, labels) in sets.items():
    x = token_inputs(texts, v["cache"], v["enc"], c.parser.max_tokens)
    probs[g, name] = np.concatenate([np.asarray(fn(params, x["tokens"][i:i + 256], x["mask"][i:i + 256], x["cue"][i:i + 256])) for i in range(0, len(texts), 256)])
  print(g, "loaded", flush=True)
for name, (texts, labels) in sets.items():
  row = {g: P.exact(decode(probs[g, name], tags), labels).mean() for g in groups}
  W = float(__import__("os").environ.get("MINILM_WEIGHT", "0.5")); mixed = P.exact(decode(W * probs["minilm", name] + (1 - W) * probs["mpnet", name], tags), labels)
  print(f"{name}: MiniLM three {row['minilm']:.4f} | MPNet three {row['mpnet']:.4f} | all six (MiniLM weight {W}) {mixed.mean():.4f}", flush=True)
  if name == "templates held-out":
    for t, l, p, ok in zip(texts, labels, decode(W * probs["minilm", name] + (1 - W) * probs["mpnet", name], tags), mixed):
      if not ok: print(f"    {t!r}: labelled {l}, read as {p.describe()}")

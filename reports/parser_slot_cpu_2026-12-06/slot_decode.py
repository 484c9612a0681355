"""Arm 3 (reports/experiments.md, 2026-12-06 session 11): tags read from the marked spans."""
import sys, numpy as np, jax, jax.numpy as jnp
from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.data.prepare import default_cache_dir
from dpr_jax.models.parser import WANT, AVOID, decode
from dpr_jax.prompts import templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.prompts.reader import build_parser, known_forms, token_inputs
from dpr_jax.train import parser as P
from dpr_jax.train.logbook import Logbook

tags = templates.tags_for("ml-1m"); T = len(tags); cache = default_cache_dir()
bank = build_bank("ml-1m", tags, cache, None)
enc = TextEncoder.from_pretrained(None); tok = enc.tokenizer
forms, form_tag = (np.asarray(a) for a in known_forms("ml-1m", tags, cache, None))
cent = np.stack([forms[form_tag == j].sum(0) for j in range(T)]); cent /= np.linalg.norm(cent, axis=1, keepdims=True)
sets = {"generator held-out": P.generated_requests("ml-1m", "heldout", 1000, 1, tags),
        "templates held-out": P.template_requests(bank, "eval")}
inputs = {k: token_inputs(v[0], cache, None, 32) for k, v in sets.items()}
encs = {k: tok.encode_batch(v[0]) for k, v in sets.items()}
arm = sys.argv[1]
for seed, run in enumerate(sys.argv[2:]):
  c = default_config(); c.dpr.domain = "ml-1m"; c.parser.members = 1; c.parser.slot_loss = 1.0
  c.train.seed = seed; c.run.dir = run; c.run.progress = False
  params = jax.tree.map(lambda x: x[0], P.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, None, Logbook(run), train=False))
  model = build_parser(c, T)
  for name, (texts, labels) in sets.items():
    x = inputs[name]
    logits, aux = model.apply({"params": params}, x["tokens"], x["mask"], x["cue"], forms, form_tag, mutable=["intermediates"])
    probs = np.asarray(jax.nn.softmax(logits, -1)); marks = np.asarray(aux["intermediates"]["slot_logits"][0]) > 0
    base = decode(probs, tags)
    states = x["tokens"].astype(np.float32)
    res = {"parser": [], "a": [], "b": []}
    span_texts, owners = [], []
    reads = {"a": [], "b": []}
    for i, text in enumerate(texts):
      n = int(x["mask"][i].sum()); inner = marks[i].copy(); inner[0] = False; inner[n - 1:] = False
      runs, s0 = [], None
      for j, f in enumerate(list(inner) + [False]):
        if f and s0 is None: s0 = j
        if not f and s0 is not None: runs.append((s0, j)); s0 = None
      got_a = []
      for a, b in runs:
        v = states[i, a:b].mean(0); v /= max(np.linalg.norm(v), 1e-9)
        got_a.append(int((cent @ v).argmax()))
        off = encs[name][i].offsets
        span_texts.append(text[off[a][0]:off[b - 1][1]] or text); owners.append(i)
      reads["a"].append((runs, got_a))
    iso = enc.encode(span_texts) if span_texts else np.zeros((0, cent.shape[1]))
    iso_tag = (iso @ cent.T).argmax(1)
    per_b = {}
    for o, t in zip(owners, iso_tag): per_b.setdefault(o, []).append(int(t))
    for key in ("a", "b"):
      ok = []
      for i, (w, av) in enumerate(labels):
        runs, got_a = reads["a"][i]
        got = got_a if key == "a" else per_b.get(i, [])
        if not runs:
          pw = {t for t, _ in base[i].want}; pa = {t for t, _ in base[i].avoid}
        else:
          pw, pa = set(), set()
          for t in got:
            (pw if probs[i, t, WANT] >= probs[i, t, AVOID] else pa).add(tags[t])
        ok.append(pw == set(w) and pa == set(av))
      res[key] = float(np.mean(ok))
    res["parser"] = float(P.exact(base, labels).mean())
    print(f"arm {arm} seed {seed} {name}: parser {res['parser']:.4f} | spans (a) in-request {res['a']:.4f} | (b) alone {res['b']:.4f}", flush=True)

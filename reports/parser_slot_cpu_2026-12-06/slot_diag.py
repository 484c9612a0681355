import sys, numpy as np, jax, jax.numpy as jnp
from dpr_jax import sharding
from dpr_jax.config import default_config
from dpr_jax.data.prepare import default_cache_dir
from dpr_jax.prompts import generator, templates
from dpr_jax.prompts.bank import build_bank
from dpr_jax.prompts.encoder import TextEncoder
from dpr_jax.prompts.reader import build_parser, known_forms, token_inputs
from dpr_jax.train import parser as P
from dpr_jax.train.logbook import Logbook

c = default_config(); c.dpr.domain = "ml-1m"; c.parser.members = 1; c.parser.slot_loss = 1.0
c.train.seed = int(sys.argv[1]); c.run.dir = sys.argv[2]; c.run.progress = False
tags = templates.tags_for("ml-1m"); cache = default_cache_dir()
bank = build_bank("ml-1m", tags, cache, None)
params = jax.tree.map(lambda x: x[0], P.train_parser(c, tags, bank, sharding.make_mesh(1, 1), cache, None, Logbook(c.run.dir), train=False))
model = build_parser(c, len(tags)); forms, form_tag = known_forms("ml-1m", tags, cache, None)
tok = TextEncoder.from_pretrained(None).tokenizer
for name, args in (("train/train", ("train", 500, 11)), ("heldout forms/train cons", ("train", 500, 7, "heldout")),
                   ("train forms/heldout cons", ("heldout", 500, 7, "train")), ("heldout/heldout", ("heldout", 500, 1))):
  reqs = generator.generate("ml-1m", *args[:3], tags=tags, noise=0.0, forms_from=args[3] if len(args) > 3 else None)
  texts = [r.text for r in reqs]
  x = token_inputs(texts, cache, None, c.parser.max_tokens)
  tgt, known = P.slot_targets(texts, [r.forms for r in reqs], tok, c.parser.max_tokens)
  _, aux = model.apply({"params": params}, x["tokens"], x["mask"], x["cue"], forms, form_tag, mutable=["intermediates"])
  pred = np.asarray(aux["intermediates"]["slot_logits"][0]) > 0
  m = x["mask"] & known[:, None]
  tp = (pred & tgt & m).sum(); prec = tp / max((pred & m).sum(), 1); rec = tp / max((tgt & m).sum(), 1)
  ex = np.mean([np.array_equal(pred[i][x["mask"][i]], tgt[i][x["mask"][i]]) for i in range(len(texts)) if known[i]])
  print(f"{name}: token precision {prec:.3f} recall {rec:.3f} requests exactly right {ex:.3f}", flush=True)
  cls = pred[:, 0].mean(); last = np.array([pred[i][x["mask"][i]][-1] for i in range(len(texts))]).mean()
  inner = x["mask"].copy(); inner[:, 0] = False
  for i in range(len(texts)): inner[i, x["mask"][i].sum() - 1] = False
  mi = inner & known[:, None]
  tp = (pred & tgt & mi).sum(); prec = tp / max((pred & mi).sum(), 1)
  ex = np.mean([np.array_equal(pred[i][inner[i]], tgt[i][inner[i]]) for i in range(len(texts)) if known[i]])
  print(f"   CLS marked {cls:.3f} SEP marked {last:.3f}; inner precision {prec:.3f} exact {ex:.3f}")
  if name == "heldout/heldout":
    enc = tok.encode_batch(texts[:8])
    for i in range(8):
      print("   ", " ".join((w.upper() if pred[i, j] else w) for j, w in enumerate(enc[i].tokens[:32])), "|", reqs[i].forms)

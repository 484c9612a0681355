"""Scratch: launch/parser_validation.py where the parser's span matching reads MPNet's token
states and forms and its token projection MiniLM's (reports/experiments.md, 2026-12-06).
Both encoders' states are concatenated behind TextEncoder ([MiniLM 384 | MPNet 768]); the
parser module is loaded from the repo's source with its two reads sliced."""
import importlib.util, os, runpy, sys
import numpy as np

REPO = os.environ.get("REPO", "/work/in")
MINI_D = 384
src = open(f"{REPO}/dpr_jax/models/parser.py").read()
a = "      x = tokens.astype(jnp.float32)  # [B, S, D]"
b = "      match = span_matches(states, mask, forms, form_tag, self.num_tags,"
assert src.count(a) == 1 and src.count(b) == 1
src = src.replace(a, f"      x = tokens[..., :{MINI_D}].astype(jnp.float32)  # MiniLM's part")
src = src.replace(b, f"      match = span_matches(states[..., {MINI_D}:], mask, _unit(forms[..., {MINI_D}:]),"
                     " form_tag, self.num_tags,")
spec = importlib.util.spec_from_loader("dpr_jax.models.parser", loader=None)
mod = importlib.util.module_from_spec(spec)
mod.__file__ = f"{REPO}/dpr_jax/models/parser.py"
sys.modules["dpr_jax.models.parser"] = mod
exec(compile(src, mod.__file__, "exec"), mod.__dict__)
import dpr_jax.models
dpr_jax.models.parser = mod

from dpr_jax.prompts import encoder as enc_mod
_orig = enc_mod.TextEncoder.from_pretrained
MINI = _orig(None)
MP = _orig("/work/models/all-mpnet-base-v2")

class Both:
  dim = MINI.dim + MP.dim
  def encode(self, texts, batch_size=64):
    return np.concatenate([MINI.encode(texts), MP.encode(texts)], -1) / np.sqrt(2.0)
  def token_states(self, texts, max_tokens, batch_size=64):
    a, ma = MINI.token_states(list(texts), max_tokens)
    b, mb = MP.token_states(list(texts), max_tokens)
    m = ma & mb
    return np.where(m[..., None], np.concatenate([a, b], -1), 0).astype(np.float16), m

_both = Both()
enc_mod.TextEncoder.from_pretrained = staticmethod(lambda path=None: _both)
enc_mod.encoder_id = lambda path: "minilm+mpnet-concat"

sys.argv = ["launch/parser_validation.py"] + sys.argv[1:]
runpy.run_path(f"{REPO}/launch/parser_validation.py", run_name="__main__")

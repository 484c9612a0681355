"""SASRec on MIND (news clicks), docs/protocol.md settings: max_len 50, full softmax.

    python -m dpr_jax.launch --config configs/mind_sasrec.py --config.data.dir=/path/to/MIND
    python -m dpr_jax.launch --config configs/mind_sasrec.py:dpr --config.data.dir=...

The data folder holds news.tsv + behaviors.tsv, or MIND-small's MINDsmall_train/ folder
(https://msnews.github.io/); DPR_DATA_DIR works too. Prompts use the news categories.
Both commands use the same run directory, so the `:dpr` run reuses a finished stage 1.
"""

from dpr_jax.config import default_config, finalize


def get_config(arg: str | None = None):
  c = default_config()
  c.data.name = "mind"
  c.data.format = "mind"
  c.data.max_len = 50
  c.dpr.domain = "mind"
  # Not tuned on MIND yet: SASRec's usual small size for short sequences.
  c.model.embed_dim = 64
  c.model.mlp_dim = 256
  c.model.dropout = 0.2
  c.run.dir = "runs/mind_sasrec"
  return finalize(c, arg)

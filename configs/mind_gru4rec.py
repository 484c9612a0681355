"""GRU4Rec on MIND (news clicks), docs/protocol.md settings: max_len 50, full softmax.

    python -m dpr_jax.launch --config configs/mind_gru4rec.py --config.data.dir=/path/to/MIND
    python -m dpr_jax.launch --config configs/mind_gru4rec.py:dpr --config.data.dir=...

The data folder holds news.tsv + behaviors.tsv, or MIND-small's MINDsmall_train/ folder
(https://msnews.github.io/); DPR_DATA_DIR works too. Prompts use the news categories.
Both commands use the same run directory, so the `:dpr` run reuses a finished stage 1.
"""

from dpr_jax.config import default_config, finalize


def get_config(arg: str | None = None):
  c = default_config()
  c.model.name = "gru4rec"
  c.data.name = "mind"
  c.data.format = "mind"
  c.data.max_len = 50
  c.dpr.domain = "mind"
  # Not tuned on MIND yet: a small GRU, as for short sequences.
  c.model.embed_dim = 64
  c.model.gru_dim = 128
  c.model.dropout = 0.2
  c.run.dir = "runs/mind_gru4rec"
  return finalize(c, arg)

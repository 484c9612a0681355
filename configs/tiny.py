"""Tiny synthetic run for tests and smoke checks (runs in seconds on a laptop CPU).

    python -m dpr_jax.launch --config configs/tiny.py
    python -m dpr_jax.launch --config configs/tiny.py:gru4rec
"""

from dpr_jax.config import default_config, finalize


def get_config(arg: str | None = None):
  c = default_config()
  c.data.name = "synthetic"
  c.data.format = "synthetic"
  c.data.max_len = 20
  c.model.name = arg or "sasrec"
  c.model.embed_dim = 32
  c.model.mlp_dim = 64
  c.model.gru_dim = 32
  c.model.vocab_multiple = 8
  c.train.batch_size = 32
  c.train.num_epochs = 20
  c.train.lr = 3e-3
  c.train.steps_per_call = 4
  c.train.packing_levels = 1  # one compiled step: tests stay fast
  c.train.eval_every_epochs = 5
  c.eval.batch_size = 64
  c.parser.requests = 800  # a small request parser: tests stay fast
  c.parser.heldout_requests = 200
  c.parser.epochs = 8
  c.parser.hidden = 64
  c.parser.members = 2  # an ensemble of two: the end-to-end tests read through one
  c.run.dir = "runs/tiny"
  return finalize(c)

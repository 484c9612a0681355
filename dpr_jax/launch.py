"""Command line entry point.

    python -m dpr_jax.launch --config configs/ml1m_sasrec.py [--config.train.lr=3e-4 ...]
                             [--mode train|eval]

``--config`` is a Python file whose ``get_config()`` returns a locked ``ConfigDict`` (see
``dpr_jax/config.py`` for every field); ``--config.<key>=<value>`` overrides a field, and an
unknown key or a value of the wrong type is refused with a message naming the key. ``--mode eval``
restores the best checkpoint of ``config.run.dir`` and evaluates it without training.

User mistakes (bad data, bad config values, incompatible checkpoints) print one ``error:`` line
and exit with status 2.
"""

from __future__ import annotations

import json
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

from dpr_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                          lock_config=True)
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (or resume) then evaluate,"
                          " or only evaluate the best checkpoint.")
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.getLogger().setLevel(logging.INFO)
  from dpr_jax import distributed  # Late: jax start-up after flag errors are reported.
  from dpr_jax.train import run as run_lib

  try:
    distributed.initialize(_CONFIG.value.distributed)
    results = run_lib.run(_CONFIG.value, mode=_MODE.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  summary = {split: {k: round(v, 4) for k, v in results[split].items() if "@10" in k}
             for split in ("valid", "test") if split in results}
  if "steering" in results:
    summary["steering"] = {task: r["methods"] for task, r in results["steering"].items()
                           if isinstance(r, dict) and "methods" in r}
  print(json.dumps(summary, indent=1))
  for f in results["files"]:
    print(f"wrote {f}")


def _parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with config mistakes reported as one ``error:`` line (exit status 2)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # wrong type, missing --config, bad --mode
    message = str(e)
  except (AttributeError, KeyError) as e:  # an unknown --config.<key>
    detail = " ".join(str(e).replace("\\n", " ").replace("\\'", "").strip("'\"").split())
    names = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    words = set(detail.split())
    key = next((n for n in names if words & set(n[len("--config."):].split("."))), "--config.<key>")
    message = f"unknown config key {key} ({detail})"
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def run():
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()

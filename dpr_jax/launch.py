"""Command line entry point.

    python -m dpr_jax.launch --config configs/ml1m_sasrec.py [--config.train.lr=3e-4 ...]
                             [--mode train|eval]

``--config`` is a Python file whose ``get_config()`` returns a locked ``ConfigDict`` (see
``dpr_jax/config.py`` for every field); ``--config.<key>=<value>`` overrides a field, and an
unknown key or a value of the wrong type is refused with a message naming the key. ``--mode eval``
restores the best checkpoint of ``config.run.dir`` and evaluates it without training.

User mistakes (bad data, bad config values, incompatible checkpoints) print one ``error:`` line
and exit with status 2. absl and orbax INFO lines are off unless ``--verbosity`` is given.
"""

from __future__ import annotations

import faulthandler
import json
import os
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
  del argv  # checked in _parse_flags
  from dpr_jax import console
  console.quiet_libraries(verbose=flags.FLAGS["verbosity"].present)
  if os.environ.get("DPR_DUMP_STACKS_EVERY_S"):  # debugging hangs (e.g. multi-process runs)
    faulthandler.dump_traceback_later(float(os.environ["DPR_DUMP_STACKS_EVERY_S"]), repeat=True)
  from dpr_jax import distributed  # Late: jax start-up after flag errors are reported.
  from dpr_jax.train import run as run_lib

  try:
    distributed.initialize(_CONFIG.value.distributed)
    results = run_lib.run(_CONFIG.value, mode=_MODE.value)
  except UserError as e:
    print("error: " + " ".join(str(e).splitlines()), file=sys.stderr)  # always one line
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
  """absl flag parsing with config mistakes reported as one ``error:`` line (exit status 2).

  Covers a missing or unloadable config file, an unknown ``--config.<key>``, a value of the wrong
  type, a bad preset argument (``configs/x.py:what``) and stray positional arguments.
  """
  if any(a in ("-h", "--help", "-?", "--helpshort", "--helpfull") for a in argv[1:]):
    print(__doc__.strip() + "\n\nOptions:\n" + _OPTIONS)
    sys.exit(0)
  try:
    rest = flags.FLAGS(argv)
    _CONFIG.value.distributed  # pylint: disable=pointless-statement  # load errors surface here
  except flags.Error as e:  # wrong type, missing --config, bad --mode
    message = str(e)
  except (AttributeError, KeyError) as e:  # an unknown --config.<key>
    detail = " ".join(str(e).replace("\\n", " ").replace("\\'", "").strip("'\"").split())
    names = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    words = set(detail.split())
    key = next((n for n in names if words & set(n[len("--config."):].split("."))), "--config.<key>")
    message = f"unknown config key {key} ({detail})"
  except UserError as e:  # raised by the preset itself (e.g. an unknown preset argument)
    message = f"--config {_config_arg(argv)}: {e}"
  except SyntaxError as e:  # the config file is not valid Python
    message = f"{e.filename}:{e.lineno}: syntax error in the config file ({e.msg})"
  except OSError as e:  # the config file cannot be read
    path = _config_arg(argv).rsplit(":", 1)[0] if ":" in _config_arg(argv) else _config_arg(argv)
    if not os.path.isfile(path):
      message = f"--config {_config_arg(argv)}: no such config file"
    else:
      message = f"--config {_config_arg(argv)}: " + " ".join(str(e).split())
  else:
    if len(rest) > 1:
      message = (f"unexpected arguments: {' '.join(rest[1:])} (options are --config, "
                 f"--config.<key>=<value> and --mode)")
    else:
      return rest
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


_OPTIONS = """\
  --config PATH[:ARG]         the config file (configs/*.py; e.g. configs/ml1m_sasrec.py:dpr)
  --config.<key>=<value>      override one field (dpr_jax/config.py lists every field)
  --mode train|eval           train (or resume) then evaluate, or only evaluate (default: train)
  --verbosity N, -v N         absl/orbax log lines too (0: INFO); by default they are off
  --help                      this text"""


def _config_arg(argv: list[str]) -> str:
  """The value given to --config (for messages)."""
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      return a.split("=", 1)[1]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return "?"


def run():
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()

"""Dispatch ``python -m dpr_jax.bench <what> [args]`` to the benchmark module of that name."""

import importlib
import sys

from dpr_jax.errors import UserError

# Suite name -> module under dpr_jax.bench (imported only when asked for).
SUITES = {"ce": "ce", "train": "train", "eval": "eval", "serve": "serve", "moe": "moe",
          "scale": "scale", "peer": "peer"}


def main() -> None:
  if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
    got = f" (got {sys.argv[1]!r})" if len(sys.argv) > 1 else ""
    print(f"usage: python -m dpr_jax.bench {{{','.join(SUITES)}}} [args]{got}", file=sys.stderr)
    sys.exit(2)
  what = sys.argv.pop(1)
  try:
    importlib.import_module(f"dpr_jax.bench.{SUITES[what]}").main()
  except UserError as e:  # a bad preset or override: one line, no traceback (dpr_jax/errors.py)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  main()

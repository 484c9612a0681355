"""Dispatch ``python -m dpr_jax.bench <what> [args]`` to the benchmark module of that name."""

import importlib
import sys

from dpr_jax.errors import UserError

# Suite name -> module under dpr_jax.bench (imported only when asked for).
SUITES = {"ce": "ce", "train": "train", "eval": "eval", "serve": "serve", "moe": "moe",
          "scale": "scale", "peer": "peer", "shard": "shard", "ttq": "ttq",
          "parser": "parser"}


def _summary(name: str) -> str:
  """The first line of a suite module's docstring (read without importing it)."""
  import ast  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel
  source = pathlib.Path(__file__).with_name(f"{name}.py").read_text(encoding="utf-8")
  return (ast.get_docstring(ast.parse(source)) or "").splitlines()[0]


def main() -> None:
  if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help", "help"):
    print(f"usage: python -m dpr_jax.bench {{{','.join(SUITES)}}} [args]  (docs/benchmarks.md)\n"
          "\nsuites (python -m dpr_jax.bench <suite> --help for a suite's options):")
    for name, module in SUITES.items():
      print(f"  {name:6s} {_summary(module)}")
    sys.exit(0)
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

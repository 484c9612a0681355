"""Dispatch ``python -m dpr_jax.bench <what> [args]`` to the benchmark module of that name."""

import sys

from dpr_jax.bench import ce

SUITES = {"ce": ce.main}


def main() -> None:
  if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
    print(f"usage: python -m dpr_jax.bench {{{','.join(SUITES)}}} [args]", file=sys.stderr)
    sys.exit(2)
  what = sys.argv.pop(1)
  SUITES[what]()


if __name__ == "__main__":
  main()

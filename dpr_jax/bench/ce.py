"""Dense vs tiled full-catalogue cross-entropy: loss+grad time and compiled memory.

  python -m dpr_jax.bench ce --time 6400 3456 --memory 25600 100000 --tiles 1024 4096

Timing runs the jitted value_and_grad (after one compile + warm-up call), median of --reps.
Memory only compiles (nothing is run) and reads ``memory_analysis()``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dpr_jax.bench import common
from dpr_jax.train import loss as loss_lib


def _grad_fn(fn, num_items: int):
  """jit(value_and_grad) of the mean loss w.r.t. (h, table)."""
  return jax.jit(jax.value_and_grad(lambda h, t, y: fn(h, t, y, num_items)[0], argnums=(0, 1)))


def _variants(tiles: list[int]):
  out = [("dense", loss_lib.full_softmax_ce)]
  for tile in tiles:
    out.append((f"tiled/{tile}",
                lambda h, t, y, n, tile=tile: loss_lib.tiled_softmax_ce(h, t, y, n, tile_size=tile)))
  return out


def time_case(n: int, v: int, d: int, tiles: list[int], reps: int) -> None:
  b, l = 128, n // 128
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.standard_normal((b, l, d)) * 0.3, jnp.float32)
  table = jnp.asarray(rng.standard_normal((v, d)) * 0.3, jnp.float32)
  num_items = v - 7
  targets = jnp.asarray(rng.integers(0, num_items + 1, (b, l)), jnp.int32)
  for name, fn in _variants(tiles):
    f = _grad_fn(fn, num_items)
    jax.block_until_ready(f(h, table, targets))  # compile + warm-up
    times = []
    for _ in range(reps):
      t0 = time.perf_counter()
      jax.block_until_ready(f(h, table, targets))
      times.append(time.perf_counter() - t0)
    print(f"time   N={n} V={v} d={d} {name:>11}: median {statistics.median(times) * 1e3:8.1f} ms "
          f"over {reps}")


def memory_case(n: int, v: int, d: int, tiles: list[int], skip_dense: bool) -> None:
  b, l = 128, n // 128
  args = (jax.ShapeDtypeStruct((b, l, d), jnp.float32), jax.ShapeDtypeStruct((v, d), jnp.float32),
          jax.ShapeDtypeStruct((b, l), jnp.int32))
  print(f"memory N={n} V={v} d={d}: logits alone {n * v * 4 / 2**30:.2f} GiB")
  for name, fn in _variants(tiles):
    if skip_dense and name == "dense":
      continue
    stats = _grad_fn(fn, v - 7).lower(*args).compile().memory_analysis()
    if stats is None:
      print("  memory_analysis() unavailable on this backend")
      return
    print(f"  {name:>11}: temp {stats.temp_size_in_bytes / 2**20:10.1f} MiB, args "
          f"{stats.argument_size_in_bytes / 2**20:.1f} MiB, out {stats.output_size_in_bytes / 2**20:.1f} MiB")


def main() -> None:
  p = argparse.ArgumentParser()
  positive = common.positive_int  # counts and sizes: >= 1
  p.add_argument("--time", nargs=2, type=positive, metavar=("N", "V"), action="append", default=[])
  p.add_argument("--memory", nargs=2, type=positive, metavar=("N", "V"), action="append",
                 default=[])
  p.add_argument("--memory-tiled-only", nargs=2, type=positive, metavar=("N", "V"), action="append",
                 default=[], help="compile only the tiled variants (for catalogues too big for dense)")
  p.add_argument("--d", type=positive, default=64)
  p.add_argument("--tiles", nargs="+", type=positive, default=[loss_lib.DEFAULT_TILE_SIZE])
  p.add_argument("--reps", type=positive, default=5)
  a = p.parse_args()
  print(jax.devices()[0].device_kind, jax.__version__)
  for n, v in a.time:
    time_case(n, v, a.d, a.tiles, a.reps)
  for n, v in a.memory:
    memory_case(n, v, a.d, a.tiles, skip_dense=False)
  for n, v in a.memory_tiled_only:
    memory_case(n, v, a.d, a.tiles, skip_dense=True)


if __name__ == "__main__":
  main()

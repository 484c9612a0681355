#!/usr/bin/env bash
# A two-process stage-1 run of configs/tiny.py (one CPU device per process, gloo), trained and
# then rerun with --mode eval, both on one fresh persistent compilation cache folder; a process
# that has not finished 90 s after starting is killed and the rerun reported as a hang.
# Usage: check.sh PYTHON CHECKOUT   (CHECKOUT: a dpr_jax working tree, e.g. a clone at 9d35a22,
# before the guard in dpr_jax/distributed.py, or at HEAD)
PY=$1; CODE=$(cd "$2" && pwd); T=$(mktemp -d)
export JAX_COMPILATION_CACHE_DIR=$T/xla JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=3 \
  XLA_FLAGS=--xla_force_host_platform_device_count=1 PYTHONPATH=$CODE DPR_CACHE_DIR=$T/cache
two() {  # two() NAME [FLAGS...]: both processes of one run, each logging to $T/NAME<i>.log
  local name=$1 port=$((20000 + RANDOM % 20000)); shift
  for i in 0 1; do
    (cd "$CODE" && timeout -s KILL 90 "$PY" -m dpr_jax.launch --config configs/tiny.py \
      --config.run.dir="$T/run" --config.run.progress=False --config.train.num_epochs=4 \
      --config.train.eval_every_epochs=2 --config.model.num_blocks=1 \
      --config.distributed.coordinator=localhost:$port --config.distributed.num_processes=2 \
      --config.distributed.process_id=$i "$@" > "$T/$name$i.log" 2>&1) &
  done
  wait
}
two train
two eval --mode=eval
echo "jax $("$PY" -c 'import jax; print(jax.__version__)'), $(git -C "$CODE" log -1 --format=%h):" \
  "train $(grep -q results_seq.json "$T/train0.log" && echo finished || echo HANG)," \
  "rerun --mode eval $(grep -q results_seq.json "$T/eval0.log" && echo finished || echo HANG)" \
  "$(grep -q "compilation cache off" "$T/eval0.log" && echo '(cache turned off)')"
rm -rf "$T"

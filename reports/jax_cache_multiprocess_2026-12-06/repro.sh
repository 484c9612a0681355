#!/usr/bin/env bash
# Runs repro.py twice in two processes on one fresh cache folder; a run that does not finish in
# 60 s is killed and reported as a hang. Usage: repro.sh [PYTHON] [one|two]
PY=${1:-python}; KIND=${2:-two}; DIR=$(cd "$(dirname "$0")" && pwd); CACHE=$(mktemp -d)
for run in 1 2; do
  port=$((20000 + RANDOM % 20000))
  for i in 0 1; do
    JAX_PLATFORMS=cpu timeout -s KILL 60 "$PY" "$DIR/repro.py" $i $port "$CACHE" $KIND \
      > "$CACHE/run$run.$i.log" 2>&1 &
  done
  wait
  for i in 0 1; do
    if grep -q "result" "$CACHE/run$run.$i.log"; then echo "run $run, process $i: finished"
    else echo "run $run, process $i: HANG (killed after 60 s)"; fi
    grep -E "^process|^  " "$CACHE/run$run.$i.log" | grep -v result | sed 's/^/    /'
  done
done
rm -rf "$CACHE"

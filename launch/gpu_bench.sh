#!/usr/bin/env bash
# The benchmark suite at ML-1M shapes, then one full ML-1M SASRec training, on one accelerator,
# in under 8 minutes (each part has its own time limit, so a slow part cannot eat the rest).
#
#   OUT=runs/gpu_bench bash launch/gpu_bench.sh
#
# Writes $OUT/bench_gpu/<suite>.{json,md} (the reports committed under reports/bench_gpu/) and
# the training run under $OUT/ml1m_sasrec/ (results_seq.{json,md}, metrics.jsonl), and a log
# per part in $OUT/logs/. Installs nothing from the network; like launch/gpu_ml1m.sh it needs
# the ML-1M files (DPR_DATA_DIR, default .gpu/data/ml-1m) and, where ml_collections is missing,
# its wheel in .whl/ -- carry both folders to the machine. No tensorflow or torch needed: the
# input pipeline falls back to numpy. QUICK=1 shrinks every shape and skips the training (a CPU
# dry run of the script: QUICK=1 TIME_SCALE=4 OUT=/tmp/gb bash launch/gpu_bench.sh).
set -uo pipefail
OUT=${OUT:-runs/gpu_bench}
REPORTS=${REPORTS:-$OUT/bench_gpu}
mkdir -p "$OUT/logs" "$REPORTS"
if ! python3 -c "import ml_collections" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null

if [[ "${QUICK:-0}" == 1 ]]; then
  SHAPE=(--items 500 --len 16 --batch 8); STEPS=1; USERS=64; SCALE=(--items 500 2000 --batch 8 --len 16)
  MOE=(--experts 4 16 --batches 64); SERVE=(--calls 20 --batches 1 8); DPRB=(--dpr-batch 64)
else
  SHAPE=(); STEPS=20; USERS=6040; SCALE=(--items 3416 100000 1000000 --steps 3)
  MOE=(--experts 4 8 16 32 64 --batches 512 8192); SERVE=(--calls 200 --batches 1 16 64 256 1024)
  DPRB=()
fi
PRESETS=(--config configs/ml1m_sasrec.py --config configs/ml1m_gru4rec.py)

part() {  # part NAME SECONDS COMMAND...: runs one part under its time limit, logs, reports time
  local name=$1 limit=$(( $2 * ${TIME_SCALE:-1} )); shift 2
  local start=$(date +%s)
  timeout "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
  local rc=$?
  grep -v -E "^(W|I)[0-9]{4}" "$OUT/logs/$name.log" | tail -n 30
  echo "== $name rc=$rc wall_s=$(( $(date +%s) - start )) (limit $limit)"
}

start_all=$(date +%s)
# The full training first: it is the number that matters most if time runs short. All of the
# preset's 55 epochs run (patience 0: no early stop), so its wall time is the full training's.
if [[ "${QUICK:-0}" != 1 ]]; then
  part ml1m_sasrec 150 env OUT="$OUT" CONFIGS=ml1m_sasrec bash launch/gpu_ml1m.sh \
    --config.train.patience=0
fi
part train 75 python3 -m dpr_jax.bench train "${PRESETS[@]}" "${SHAPE[@]}" "${DPRB[@]}" \
  --steps "$STEPS" --out "$REPORTS"
part eval 70 python3 -m dpr_jax.bench eval "${PRESETS[@]}" "${SHAPE[@]}" --users "$USERS" \
  --reps 3 --out "$REPORTS"
part serve 35 python3 -m dpr_jax.bench serve --config configs/ml1m_sasrec.py \
  --config configs/ml1m_gru4rec.py "${SHAPE[@]}" "${SERVE[@]}" --out "$REPORTS"
part moe 40 python3 -m dpr_jax.bench moe --config configs/ml1m_sasrec.py "${MOE[@]}" \
  --reps 10 --out "$REPORTS"
part scale 90 python3 -m dpr_jax.bench scale "${SCALE[@]}" --out "$REPORTS"
echo "== all wall_s=$(( $(date +%s) - start_all ))"
ls "$REPORTS"

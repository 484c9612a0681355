#!/usr/bin/env bash
# Full ML-1M trainings (SASRec, then GRU4Rec) on one accelerator, back to back.
#
#   DPR_DATA_DIR=/path/to/ml-1m OUT=runs/gpu bash launch/gpu_ml1m.sh [extra --config.* flags]
#   PRESET_ARG=dpr ... bash launch/gpu_ml1m.sh     # stages 1, 2, 3 and the steering table
#
# DPR stages read the prompt and item-text embeddings from the data cache ($DPR_CACHE_DIR,
# default $OUT/cache); precompute them where the text encoder is installed (any CPU machine:
# python -m dpr_jax.launch ... :dpr builds them) and copy the cache along, since the encoder's
# weights need not be on the accelerator machine.
#
# Installs nothing from the network: where ml_collections is missing (a bare accelerator image),
# put its wheel in .whl/ and it is installed from there. Without tensorflow the input pipeline
# uses its numpy prefetcher (dpr_jax/data/pipeline.py). Each run writes results_seq.{json,md}
# and metrics.jsonl under $OUT/<config>/.
set -uo pipefail
OUT=${OUT:-runs/gpu}
DATA=${DPR_DATA_DIR:-.gpu/data/ml-1m}
CACHE=${DPR_CACHE_DIR:-$OUT/cache}
SUFFIX=${PRESET_ARG:+:$PRESET_ARG}
if ! python3 -c "import ml_collections" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
for cfg in ${CONFIGS:-ml1m_sasrec ml1m_gru4rec}; do
  start=$(date +%s)
  python3 -m dpr_jax.launch --config "configs/$cfg.py$SUFFIX" --config.data.dir="$DATA" \
    --config.data.cache_dir="$CACHE" --config.run.dir="$OUT/$cfg" --config.run.progress=False \
    --config.train.steps_per_call=47 "$@" 2>&1 | grep -v -E "^(W|I)[0-9]{4}" | tail -n 25
  echo "$cfg wall_s=$(( $(date +%s) - start ))"
done

#!/usr/bin/env bash
# Session 23: stage 1 with seed 1 for both presets (the DPR command, ten seed-0 clause-cue parsers copied in).
set -u
cd /work/s23/st1
export DPR_DATA_DIR=/work/shared/data/ml-1m DPR_CACHE_DIR=/work/s18/cache_base PYTHONPATH=/work/s23/st1
L() { echo "$(date -u +%H:%M:%S) $*" >> /work/s23/drive.log; }
one() {  # name cfg
  L "$1 start"
  timeout -s KILL 8400 python -m dpr_jax.launch --config $2 --config.run.dir=runs/$1 --config.train.seed=1 \
      > /work/s23/$1.log 2>&1
  L "$1 rc=$?"
}
one sas_s1 configs/ml1m_sasrec.py:dpr & one gru_s1 configs/ml1m_gru4rec.py:dpr & wait
L "all done"

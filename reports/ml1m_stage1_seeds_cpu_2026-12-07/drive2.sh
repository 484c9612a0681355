#!/usr/bin/env bash
# Session 23: after seed 1, stage 1 with seed 2 for both presets (same recipe).
set -u
cd /work/s23/st1
export DPR_DATA_DIR=/work/shared/data/ml-1m DPR_CACHE_DIR=/work/s18/cache_base PYTHONPATH=/work/s23/st1
L() { echo "$(date -u +%H:%M:%S) $*" >> /work/s23/drive.log; }
while ! grep -q "all done" /work/s23/drive.log; do sleep 20; done
one() {  # name cfg
  L "$1 start"
  timeout -s KILL 6000 python -m dpr_jax.launch --config $2 --config.run.dir=runs/$1 --config.train.seed=2 \
      > /work/s23/$1.log 2>&1
  L "$1 rc=$?"
}
one sas_s2 configs/ml1m_sasrec.py:dpr & one gru_s2 configs/ml1m_gru4rec.py:dpr & wait
L "seed 2 done"

#!/usr/bin/env bash
# Session 24: both presets' three stage-1 seeds read again with --mode eval, the grid with 0.1 (two at a time).
set -u
cd /work/s24/tree
export DPR_DATA_DIR=/work/shared/data/ml-1m DPR_CACHE_DIR=/work/s18/cache_base PYTHONPATH=/work/s24/tree
L() { echo "$(date -u +%H:%M:%S) $*" >> /work/s24/drive.log; }
one() {  # name src cfg seed
  rm -rf /work/s24/runs/$1; mkdir -p /work/s24/runs/$1
  cp -r $2/stage1 $2/stage2 $2/stage3 /work/s24/runs/$1/
  L "$1 eval start"
  timeout -s KILL 2400 python -m dpr_jax.launch --config $3 --config.run.dir=/work/s24/runs/$1 --mode eval \
      --config.stages=3 --config.train.seed=$4 > /work/s24/$1.log 2>&1
  L "$1 eval rc=$?"
}
S=configs/ml1m_sasrec.py:dpr; G=configs/ml1m_gru4rec.py:dpr
one gru4rec_seed0 /work/s21/pv/runs/gru_clause $G 0 & one sasrec_seed0 /work/s21/pv/runs/sas_clause $S 0 & wait
one gru4rec_seed1 /work/s23/st1/runs/gru_s1 $G 1 & one sasrec_seed1 /work/s23/st1/runs/sas_s1 $S 1 & wait
one gru4rec_seed2 /work/s23/st1/runs/gru_s2 $G 2 & one sasrec_seed2 /work/s23/st1/runs/sas_s2 $S 2 & wait
L "all done"

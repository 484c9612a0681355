#!/usr/bin/env bash
# If parser.clause_cue is adopted: the README's six runs read again with the clause-cue parser (--mode eval), two at a time.
set -u
cd /work/s21/pv
export DPR_DATA_DIR=/work/shared/data/ml-1m DPR_CACHE_DIR=/work/s18/cache_base PYTHONPATH=/work/s21/pv
L() { echo "$(date -u +%H:%M:%S) $*" >> /work/s21/drive_six.log; }
P=runs/parser_validation_ml-1m_1796628556_12206
L "parser $P"
one() {  # name src cfg seed
  rm -rf runs/six_$1; mkdir -p runs/six_$1
  cp -r $2/stage1 $2/stage2 $2/stage3 runs/six_$1/
  rm -rf runs/six_$1/stage2/parser; cp -r $P/stage2/parser runs/six_$1/stage2/parser
  L "$1 eval start"
  timeout -s KILL 3000 python -m dpr_jax.launch --config $3 --config.run.dir=runs/six_$1 --mode eval \
      --config.stages=3 --config.train.seed=$4 --config.parser.clause_cue=True > /work/s21/six_$1.log 2>&1
  L "$1 eval rc=$?"
}
S=configs/ml1m_sasrec.py:dpr; G=configs/ml1m_gru4rec.py:dpr
one sasrec_seed1 /work/s19/sas/runs/sas_s1 $S 1 & one sasrec_seed2 /work/s19/sas/runs/sas_s2 $S 2 & wait
one gru4rec_seed1 /work/s20/gru/runs/gru_s1 $G 1 & one gru4rec_seed2 /work/s20/gru/runs/gru_s2 $G 2 & wait
L "all done"

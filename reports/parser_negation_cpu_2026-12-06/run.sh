#!/bin/bash
# run.sh ARM SEED [MEMBERS]: one parser_validation reading of ML-1M (reports/experiments.md, session 18)
arm=$1; s=$2; m=${3:-1}
F=/work/s18/heldout_all.tsv,/work/s18/heldout_wish_negword.tsv,/work/s18/heldout_avoid_plain.tsv
log=/work/s18/pv_${arm}_m${m}_seed$s.log
echo "start $(date -u +%H:%M)" > $log
cd /work/s18/$arm && DPR_CACHE_DIR=/work/s18/cache_$arm PYTHONPATH=/work/s18/$arm \
  timeout -s KILL 3600 python launch/parser_validation.py ml-1m parser.members=$m train.seed=$s $EXTRA read=$F >> $log 2>&1
echo "rc $? $(date -u +%H:%M)" >> $log

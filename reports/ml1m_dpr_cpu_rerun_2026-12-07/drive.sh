#!/usr/bin/env bash
# Session 19: after runs/sas (seed 0) finishes, stage 3 seeds 1-2 in copies, then the rules reader on all three.
set -u
cd /work/s19/sas
export DPR_DATA_DIR=/work/shared/data/ml-1m DPR_CACHE_DIR=/work/s18/cache_base PYTHONPATH=/work/s19/sas
L() { echo "$(date -u +%H:%M:%S) $*" >> /work/s19/drive_sas.log; }
while pgrep -f "run.dir=runs/sas " > /dev/null || pgrep -f "run.dir=runs/sas$" > /dev/null; do sleep 30; done
[ -f runs/sas/results_steering.json ] || { L "seed 0 has no results_steering.json; stop"; exit 1; }
L "seed 0 done"
for s in 1 2; do
  rm -rf runs/sas_s$s; mkdir -p runs/sas_s$s
  cp -r runs/sas/stage1 runs/sas/stage2 runs/sas_s$s/
  L "seed $s stage 3 start"
  timeout -s KILL 3600 python -m dpr_jax.launch --config configs/ml1m_sasrec.py:dpr --config.run.dir=runs/sas_s$s \
    --config.stages=3 --config.train.seed=$s > /work/s19/sas_seed$s.log 2>&1 &
done
wait; L "seeds 1-2 done"
for s in 0 1 2; do
  src=runs/sas; [ $s = 0 ] || src=runs/sas_s$s
  rm -rf runs/sas_r$s; mkdir -p runs/sas_r$s
  cp -r $src/stage1 $src/stage2 $src/stage3 runs/sas_r$s/
done
run_rules() {
  L "rules seed $1 start"
  timeout -s KILL 2400 python -m dpr_jax.launch --config configs/ml1m_sasrec.py:dpr --config.run.dir=runs/sas_r$1 \
    --mode eval --config.stages=3 --config.train.seed=$1 --config.dpr.reader=rules > /work/s19/sas_rules$1.log 2>&1
  L "rules seed $1 rc=$?"
}
run_rules 0 & run_rules 1 & wait
run_rules 2
L "all done"

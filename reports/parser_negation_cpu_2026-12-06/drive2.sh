#!/bin/bash
while pgrep -f drive1.sh > /dev/null; do sleep 10; done
/work/s18/run.sh cand 0 & /work/s18/run.sh cand 1 & wait
echo "cand 0,1 done $(date -u +%H:%M)" >> /work/s18/drive.log
/work/s18/run.sh base 2 & /work/s18/run.sh cand 2 & wait
echo "seed 2 done $(date -u +%H:%M)" >> /work/s18/drive.log

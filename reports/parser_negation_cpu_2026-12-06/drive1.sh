#!/bin/bash
/work/s18/run.sh base 0 & /work/s18/run.sh base 1 & wait
echo "base 0,1 done $(date -u +%H:%M)" >> /work/s18/drive.log

#!/bin/bash
for s in 0 1 2; do EXTRA=parser.negation_cue=false /work/s18/run.sh nocue $s; done
echo "nocue done $(date -u +%H:%M)" >> /work/s18/drive.log

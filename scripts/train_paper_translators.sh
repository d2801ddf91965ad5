#!/usr/bin/env bash
# Train both translators with the `paper` preset to completion on the sample data, resumably.
#
#   bash scripts/train_paper_translators.sh            # start, or resume after a kill
#   PAPER_SIZE=256 bash scripts/train_paper_translators.sh   # the paper's resolution (a GPU job)
#
# Work folder: $PAPER_WD (default runs/paper): ingest of every sample folder, patient-level split, a plan
# of 180 images per domain (the sample has 141 COVID-19 training images with pixels, so each epoch is
# int(141/16) - 1 = 7 updates and the 100 epochs are 700 updates). The two translators train side by
# side, one thread each ($PAPER_THREADS), bf16 autocast and channels_last on the CPU. When both finish,
# the small artefacts (losses, grids, reports, fp16 generators) are copied to bench/results/paper-translators/.
source "$(dirname "$0")/_paper_env.sh"
SIZE=${PAPER_SIZE:-128}
THREADS=${PAPER_THREADS:-1}
[ -f "$WD/records.parquet" ] || $CX -w "$WD" ingest --workers 2
[ -f "$WD/splits.json" ] || $CX -w "$WD" split
[ -f "$WD/plan.json" ] || $CX -w "$WD" plan --per-domain 180
pids=()
for TASK in normal-covid pneumonia-covid; do
  RUN="$WD/translators/$TASK"
  if [ -f "$RUN/train_report.json" ] && .venv/bin/python -c "import json,sys; sys.exit(0 if json.load(open('$RUN/train_report.json'))['finished'] else 1)"; then
    echo "$TASK: already finished"; continue
  fi
  RESUME=; [ -f "$RUN/checkpoints/latest.json" ] && RESUME=--resume
  OMP_NUM_THREADS=$THREADS $CX -w "$WD" train --task "$TASK" --preset paper --size "$SIZE" \
    --set channels_last=true --set sample_every=70 --set save_every=70 $RESUME > "$WD/train-$TASK.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
.venv/bin/python bench/collect_translators.py "$WD" bench/results/paper-translators

#!/usr/bin/env bash
# Train both translators of one preset on the sample data, resumably (a second call after a kill resumes).
#
#   bash scripts/train_translators.sh paper                          # to completion (hours on 2 CPU cores)
#   TRAIN_SIZE=256 bash scripts/train_translators.sh paper           # the paper's resolution (a GPU job)
#   TRAIN_STEPS=400 bash scripts/train_translators.sh canonical      # as far as step 400, then stop
#   TRAIN_SETS="epochs_decay=100" bash scripts/train_translators.sh refined # extra --set values (k=v, spaces)
#
# Work folder $TRAIN_WD (default runs/PRESET): ingest of every sample folder, patient-level split, a plan
# of 180 images per domain. The two translators train side by side, one thread each ($TRAIN_THREADS).
# - paper: 128 px by default; the sample has 141 COVID-19 training images with pixels, so each epoch is
#   int(141/16) - 1 = 7 updates and the 100 epochs are 700 updates.
# - refined (issue 19): as paper (700 updates), with resize-convolution, reflection padding, spectral norm
#   and an EMA generator.
# - refined-thumbnail (issue 19): refined plus a second discriminator per domain that judges 32 px
#   thumbnails; 700 updates.
# - canonical: 256 px (ResNet-9, batch 1). Its schedule is 100 + 100 epochs of one pass over the 180
#   images of domain A, 36,000 steps per translator, about 3 days each on 2 CPU cores; so it stops at
#   $TRAIN_STEPS (default 400; the learning-rate schedule still assumes the whole run) and a later call
#   with a larger value resumes from the last checkpoint.
# Then the small artefacts (losses, grids, reports; the fp16 generator of a finished run) are copied to
# $TRAIN_OUT (default bench/results/PRESET-translators/; name another with TRAIN_SETS, and another TRAIN_WD).
source "$(dirname "$0")/_env.sh"
PRESET=${1:?usage: train_translators.sh paper|refined|refined-thumbnail|canonical}
WD=${TRAIN_WD:-runs/$PRESET}
THREADS=${TRAIN_THREADS:-1}
# The presets are the trainer's (PRESETS), asked here so that a typo fails before the ingest, not after it
.venv/bin/python -c "import sys; from cxrsynth.stages.translate.train import PRESETS as P
sys.exit(0 if sys.argv[1] in P else f'Error: unknown preset {sys.argv[1]!r} (known: {\", \".join(P)})')" "$PRESET"
case "$PRESET" in
  canonical) SIZE=${TRAIN_SIZE:-256}; STOP="--max-steps ${TRAIN_STEPS:-400}"; EVERY=100 ;;
  *) SIZE=${TRAIN_SIZE:-128}; STOP=${TRAIN_STEPS:+--max-steps $TRAIN_STEPS}; EVERY=70 ;;  # 700 updates
esac
SETS=(); for kv in ${TRAIN_SETS:-}; do SETS+=(--set "$kv"); done
[ -f "$WD/records.parquet" ] || $CX -w "$WD" ingest --workers 2
[ -f "$WD/splits.json" ] || $CX -w "$WD" split
[ -f "$WD/plan.json" ] || $CX -w "$WD" plan --per-domain 180
pids=()
for TASK in normal-covid pneumonia-covid; do
  RUN="$WD/translators/$TASK"
  if run_finished "$RUN"; then
    echo "$TASK: already finished"; continue
  fi
  RESUME=; [ -f "$RUN/checkpoints/latest.json" ] && RESUME=--resume
  # shellcheck disable=SC2086  # $STOP is zero or two words
  OMP_NUM_THREADS=$THREADS $CX -w "$WD" train --task "$TASK" --preset "$PRESET" --size "$SIZE" $STOP \
    --set channels_last=true --set sample_every=$EVERY --set save_every=$(( EVERY / 2 )) "${SETS[@]}" $RESUME \
    >> "$WD/train-$TASK.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
.venv/bin/python bench/collect_translators.py "$WD" "${TRAIN_OUT:-bench/results/$PRESET-translators}"

#!/usr/bin/env bash
# The demo: set up ./.venv, then run the whole pipeline on the sample data into ./demo-out.
# Data: $CXRSYNTH_SAMPLE_DATA (default ../shared/data); without it, stops naming the upstream URLs.
# The default is the quick tour (<= 10 minutes on 2 CPU cores): the authors' recipe for a few updates, one
# benchmark protocol with one seed. DEMO_FULL=1 runs the fuller demo (canonical preset, 150 steps, both
# protocols, 2 seeds, the audit with the classifier's features): 15-19 minutes on 2026-11-27, longer since.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
CX=".venv/bin/cxrsynth"
WD=${DEMO_OUT:-demo-out}
say() { echo "$1 [${SECONDS} s since the demo started]"; }

say "== 1. ingest every sample folder (records.parquet, ingest_report.json)"
$CX -w "$WD" ingest --workers 2
say "== 2. patient-level split (splits.json)"
$CX -w "$WD" split
say "== 3. release plan (plan.json)"
$CX -w "$WD" plan --per-domain 180

say "== 3b. the paper's plan from the real RSNA metadata alone (21,295 images)"
$CX -w "$WD/paper-plan" ingest "${CXRSYNTH_SAMPLE_DATA:-../shared/data}/rsna-pneumonia-detection-challenge" >/dev/null
$CX -w "$WD/paper-plan" split --method paper >/dev/null
$CX -w "$WD/paper-plan" plan | tail -n 1

# Translators: a short run at 128 px so the demo takes minutes on 2 CPU cores; the release uses 256 px and
# the full schedule. DEMO_PRESET=paper trains the authors' recipe (U-Net, batch 16) instead of the canonical
# CycleGAN (batch 1): 30 of its updates take about two thirds of the time of 150 canonical steps (README).
# --resume continues a run.
FULL=${DEMO_FULL:-0}
if [ "$FULL" = 1 ]; then PRESET=${DEMO_PRESET:-canonical}; else PRESET=${DEMO_PRESET:-paper}; fi
if [ "$PRESET" = paper ]; then STEPS=${DEMO_STEPS:-$([ "$FULL" = 1 ] && echo 30 || echo 12)}; else STEPS=${DEMO_STEPS:-150}; fi
for TASK in normal-covid pneumonia-covid; do
  say "== 4. train $TASK ($PRESET preset, $STEPS steps at 128 px)"
  if [ -f "$WD/translators/$TASK/checkpoints/latest.json" ]; then RESUME=--resume; else RESUME=; fi
  $CX -w "$WD" train --task "$TASK" --preset "$PRESET" --size 128 --max-steps "$STEPS" --set save_every=50 \
    --set sample_every=$(( (STEPS + 2) / 3 )) $RESUME
done
say "== 5. generate (the first ${DEMO_IMAGES:-200} planned images per config; resumable)"
$CX -w "$WD" generate --limit "${DEMO_IMAGES:-200}"


say "== 6. release: package what was generated, card, checks, verify (staging -> renamed into place)"
# the quick tour audits with a smaller sample and a briefly trained fidelity encoder (every section still runs)
if [ "$FULL" = 1 ]; then AUDIT=(); else AUDIT=(--set audit.fidelity_encoder_epochs=3 --set audit.inverse_sample=50 --set audit.quality_repeats=3); fi
$CX -w "$WD" release --out "$WD/release" --limit "${DEMO_IMAGES:-200}" --preset "$PRESET" --set "train.max_steps=$STEPS" \
  "${AUDIT[@]}" --replace
$CX verify "$WD/release/covid-cxr-synth"
echo "load it:  cd $WD/release && python -c \"from datasets import load_dataset; print(load_dataset('covid-cxr-synth'))\""

BENCH="--release $WD/release/covid-cxr-synth --model resnet18 --init random --image-size 64 --max-epochs 3 --limit 60"
if [ "$FULL" = 1 ]; then
  say "== 7. benchmark every arm and both tasks, both protocols (resnet18 at 64 px, 3 epochs, 60 images a class: minutes)"
  $CX -w "$WD" benchmark $BENCH --seeds 2 --out "$WD/benchmark"
  $CX -w "$WD" benchmark $BENCH --protocol paper --out "$WD/benchmark-paper"
  say "== 8. audit summary (also in the card; full results in $WD/audit/)"
  $CX -w "$WD" audit "$WD/release/covid-cxr-synth" --embedding "classifier:$WD/benchmark/runs/normal-covid/real/seed-0/model.safetensors" --out "$WD/audit-classifier"
else
  say "== 7. benchmark: real, real+own, the count-matched real-oversampled and the null translator, both tasks, rigorous"
  echo "   protocol, one seed (resnet18 at 64 px, 2 epochs, 40 images a class; DEMO_FULL=1 for every arm and both protocols)"
  $CX -w "$WD" benchmark --release "$WD/release/covid-cxr-synth" --model resnet18 --init random --image-size 64 \
    --max-epochs 2 --limit 40 --seeds 1 --arm real --arm real+own --arm real-oversampled --arm real+null \
    --set bootstrap=200 --out "$WD/benchmark"
fi
echo "demo done in ${SECONDS} s: $WD/ (release/covid-cxr-synth, benchmark/report.html, audit/)"

#!/usr/bin/env bash
# Reproduce the sample-scale release made with the fully trained `paper` translators, and everything
# committed under bench/results/sample-release/: card, manifest, audit summaries (pixel and classifier
# embeddings), benchmark tables and figures in both protocols.
#
#   bash scripts/train_translators.sh paper   # first (hours on 2 CPU cores; resumable)
#   bash bench/sample_release.sh              # resumable: a built release and finished cells are kept
#
# Benchmark model: $SR_MODEL (default resnet18, random init: no ImageNet weights offline) at $SR_SIZE px
# (default 128, the translators' size), $SR_EPOCHS epochs (default 6), $SR_SEEDS seeds in the rigorous
# protocol (default 2; one in the paper protocol, as the paper), the paper protocol on the arms
# $SR_PAPER_ARMS (default real, real+own, synthetic-only, and the controls real-oversampled and real+null,
# without which the paper protocol's rise in sensitivity at 0.5 cannot be told from a count effect; the
# committed run predates them): what ran in about 80 minutes on 2 shared cores. SR_REBUILD=1 rebuilds the release (its benchmark cells are then recomputed: they are keyed by
# the release's checksum).
source "$(dirname "$0")/../scripts/_env.sh"
WD=${PAPER_WD:-runs/paper}  # where scripts/train_translators.sh paper trained them
OUT=${SR_OUT:-bench/results/sample-release}
MODEL=${SR_MODEL:-resnet18}; SIZE=${SR_SIZE:-128}; EPOCHS=${SR_EPOCHS:-6}; SEEDS=${SR_SEEDS:-2}
PAPER_ARMS=${SR_PAPER_ARMS:-real real+own synthetic-only real-oversampled real+null}
for TASK in normal-covid pneumonia-covid; do
  run_finished "$WD/translators/$TASK" \
    || { echo "Error: the $TASK translator in $WD is not trained to completion; run scripts/train_translators.sh paper" >&2; exit 1; }
done
REL="$WD/release/covid-cxr-synth"
if [ "${SR_REBUILD:-0}" = 1 ] || [ ! -f "$REL/manifest.json" ]; then
  echo "== release: every planned train-split source image with pixels, translated once; audit (pixels); verify"
  $CX -w "$WD" release --out "$WD/release" --preset paper --replace
fi
$CX verify "$REL"
# fp32 classifier training: the committed numbers were made in fp32, before fit.precision (auto = bf16
# autocast where native) existed; SR_PRECISION=auto trains faster and gives slightly different numbers.
BENCH="--release $REL --model $MODEL --init random --image-size $SIZE --max-epochs $EPOCHS --set fit.precision=${SR_PRECISION:-fp32}"
echo "== benchmark, rigorous protocol ($MODEL, $SIZE px, $EPOCHS epochs, $SEEDS seeds)"
/usr/bin/time -f "benchmark rigorous: %e s, %M KB peak" $CX -w "$WD" benchmark $BENCH --seeds "$SEEDS" --out "$WD/benchmark"
echo "== benchmark, paper protocol (arms: $PAPER_ARMS; on this work folder's split: stated in its results)"
ARMS=""; for A in $PAPER_ARMS; do ARMS="$ARMS --arm $A"; done
/usr/bin/time -f "benchmark paper: %e s, %M KB peak" $CX -w "$WD" benchmark $BENCH $ARMS --protocol paper --out "$WD/benchmark-paper"
echo "== audit with the benchmark classifier's features"
$CX -w "$WD" audit "$REL" --embedding "classifier:$WD/benchmark/runs/normal-covid/real/seed-0/model.safetensors" \
  --out "$WD/audit-classifier"
echo "== collect into $OUT"
rm -rf "$OUT"; mkdir -p "$OUT/benchmark" "$OUT/benchmark-paper" "$OUT/audit" "$OUT/audit-classifier"
cp "$REL/README.md" "$OUT/card.md"; cp "$REL/manifest.json" "$REL/sample_grid.png" "$OUT/"
for A in audit audit-classifier; do
  SRC="$WD/$A"
  cp "$SRC"/audit.json "$OUT/$A/" 2>/dev/null || true
  find "$SRC" -maxdepth 2 -name '*.png' -size -400k -exec cp {} "$OUT/$A/" \;
done
for B in benchmark benchmark-paper; do
  cp "$WD/$B"/tables.md "$WD/$B"/results.json "$OUT/$B/" 2>/dev/null || true
  find "$WD/$B/figures" -maxdepth 1 -name '*.png' -size -400k -exec cp {} "$OUT/$B/" \; 2>/dev/null || true
done
echo "sample release reproduced: $OUT"

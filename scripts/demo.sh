#!/usr/bin/env bash
# The demo: set up ./.venv, then run the whole pipeline on the sample data into ./demo-out.
# Data: $CXRSYNTH_SAMPLE_DATA (default ../shared/data); without it, stops naming the upstream URLs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
CX=".venv/bin/cxrsynth"
WD=${DEMO_OUT:-demo-out}

echo "== 1. ingest every sample folder (records.parquet, ingest_report.json)"
$CX -w "$WD" ingest --workers 2
echo "== 2. patient-level split (splits.json)"
$CX -w "$WD" split
echo "== 3. release plan (plan.json)"
$CX -w "$WD" plan --per-domain 180

echo "== 3b. the paper's plan from the real RSNA metadata alone (21,295 images)"
$CX -w "$WD/paper-plan" ingest "${CXRSYNTH_SAMPLE_DATA:-../shared/data}/rsna-pneumonia-detection-challenge" >/dev/null
$CX -w "$WD/paper-plan" split --method paper >/dev/null
$CX -w "$WD/paper-plan" plan | tail -n 1

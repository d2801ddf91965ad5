#!/usr/bin/env bash
# The test command: set up ./.venv, then run the whole test suite on the sample data
# ($CXRSYNTH_SAMPLE_DATA, default ../shared/data). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TQDM_DISABLE=1
exec .venv/bin/python -m pytest -q "$@"

# Sourced by the scripts that run the CLI on the sample data (scripts/train_translators.sh,
# bench/sample_release.sh): strict mode, the repository root, the set-up, offline, and the CLI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1
CX=".venv/bin/cxrsynth"

# Sourced by scripts/train_paper_translators.sh and bench/sample_release.sh: the set-up, the CLI and the
# paper work folder ($PAPER_WD, default runs/paper) they share.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1
CX=".venv/bin/cxrsynth"
WD=${PAPER_WD:-runs/paper}

# Sourced by the scripts that run the CLI on the sample data (scripts/train_translators.sh,
# bench/sample_release.sh): strict mode, the repository root, the set-up, offline, and the CLI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1
CX=".venv/bin/cxrsynth"

# True when the translator run folder $1 has trained its whole schedule (train_report.json says finished).
run_finished() {
  [ -f "$1/train_report.json" ] && .venv/bin/python -c \
    "import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))['finished'] else 1)" "$1/train_report.json"
}

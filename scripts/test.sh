#!/usr/bin/env bash
# The test command: set up ./.venv, then run the whole test suite on the sample data
# ($CXRSYNTH_SAMPLE_DATA, default ../shared/data). Extra arguments go to pytest.
# The tests marked `slurm` run on a one-node SLURM cluster that this script starts first
# (scripts/slurm_local.sh; it installs slurm-wlm and munge with apt-get when missing) and stops at exit,
# unless it was already running. Where they cannot be installed the slurm tests are skipped, saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TQDM_DISABLE=1
# pytest-xdist workers: one per core, plus one (each runs torch on one thread: tests/conftest.py). The extra
# one is there because the SLURM tests, kept on one worker, mostly wait for the scheduler (a job waits out a
# 1-minute time limit); alone on the 2-core AMD EPYC: 2 workers 364 s, 3 workers 330 s, 4 workers 341 s.
# The session fixtures are built once and shared (tests/_once.py), and tests that share a module fixture or
# the SLURM cluster stay on one worker (--dist loadgroup). CXRSYNTH_TEST_WORKERS=N overrides; 0: no xdist.
workers="${CXRSYNTH_TEST_WORKERS:-$(( $(nproc) + 1 ))}"
xdist=()
if [ "$workers" != 0 ]; then xdist=(-n "$workers" --dist loadgroup); fi
if bash scripts/slurm_local.sh status 2>/dev/null; then
  eval "$(bash scripts/slurm_local.sh env)"
else
  rc=0 err="$(mktemp)"
  out="$(bash scripts/slurm_local.sh start 2>"$err")" || rc=$?
  why="$(tail -n 1 "$err")"; cat "$err" >&2; rm -f "$err"
  case $rc in
    0) eval "$out"; trap 'bash scripts/slurm_local.sh stop' EXIT ;;
    3) export CXRSYNTH_SLURM_SKIP="$why" ;;
    *) export CXRSYNTH_SLURM_ERROR="$why" ;;
  esac
fi
.venv/bin/python -m pytest -q "${xdist[@]}" "$@"

#!/usr/bin/env bash
# Reproduce a grid end to end: sweep (resumable), collect, report, figures.
#   scripts/reproduce.sh cpu      # every task x {muon, adamw} x softmax, 3 seeds, model=small (2-core CPU)
#   scripts/reproduce.sh paper    # the paper's grid (GPU); extra args go to `grokmuon train`
# It regenerates results/<experiment>/ (runs.csv, report.md, figures/) from multirun/<experiment>/: for a
# committed experiment `git diff results/<experiment>` then shows what changed. NAME=mine writes
# results/mine/ instead and leaves the committed folder alone. Complete cells are skipped, files untouched.
set -euo pipefail
experiment=${1:-cpu}; shift || true
cd "$(dirname "$0")/.."
bin=.venv/bin
[ -x $bin/grokmuon ] || make install
# One thread per process on a CPU: the sweep is many small matmuls; oversubscribed threads only spin.
$bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$bin/grokmuon train -m experiment="$experiment" "$@"
$bin/grokmuon collect "multirun/$experiment" ${NAME:+--name "$NAME"}
$bin/grokmuon report --runs "results/${NAME:-$experiment}/runs.csv"
$bin/grokmuon figures --runs "results/${NAME:-$experiment}/runs.csv"

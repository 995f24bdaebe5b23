#!/usr/bin/env bash
# Learning-rate scan, one task, both optimizers around their defaults (conf/experiment/lr_scan.yaml):
# two sweeps into multirun/lr_scan (resumable), then collect, report (with "By scanned value") and figures
# (with fig5_scan), regenerating the committed results/lr_scan/ (`git diff results/lr_scan` shows what
# changed). Extra args go to both sweeps, e.g. task=moddiv (new cells beside the committed ones).
#   scripts/lr_scan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
[ -x $bin/grokmuon ] || make install
$bin/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$bin/grokmuon train -m experiment=lr_scan "$@"
$bin/grokmuon train -m experiment=lr_scan optimizer=muon optimizer.lr=0.005,0.01,0.02,0.05 "$@"
$bin/grokmuon collect multirun/lr_scan
$bin/grokmuon report --runs results/lr_scan/runs.csv
$bin/grokmuon figures --runs results/lr_scan/runs.csv

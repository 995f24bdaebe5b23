#!/usr/bin/env bash
# The GPU campaign, for the first session that has a CUDA GPU: the GPU tests, the benchmark at E = 1, 8,
# 32, 128 in fp32 and bf16, then as much of experiment=paper as fits in PAPER_S seconds (resumable: run
# the script again to go on; cells stopped by the time limit resume from their checkpoints). Everything
# lands in results/gpu/ (and the run folders in multirun/paper/), packed into $OUT/gpu_campaign.tgz when
# OUT is set (the device tool brings back files under $OUT).
#   scripts/gpu_campaign.sh                 # PAPER_S=300 by default
#   PAPER_S=900 scripts/gpu_campaign.sh
# No network needed: where the machine's Python lacks hydra-core, omegaconf, entmax or pytest, put their
# wheels in .whl/ first (README, "GPU campaign"); the script installs from there with --no-index.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
RES=results/gpu
PAPER_S=${PAPER_S:-300}
log() { mkdir -p "$RES"; echo "== $(date -u +%H:%M:%S) $*" | tee -a "$RES/campaign.log"; }
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || {
  echo "grokmuon: error: no CUDA GPU visible to $PY; the GPU campaign needs one" >&2; exit 2; }

if [ -d .whl ]; then
  log "installing wheels from .whl/"
  $PY -m pip install -q --no-index --find-links .whl hydra-core omegaconf entmax pytest pandas scipy matplotlib tqdm \
    2>&1 | tail -n 3 | tee -a "$RES/campaign.log"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} WANDB_MODE=disabled
G="$PY -m grokmuon"
nvidia-smi > "$RES/nvidia-smi.txt" 2>&1
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  | tee -a "$RES/campaign.log"

log "GPU tests"
$PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider 2>&1 | tail -n 20 | tee "$RES/gpu_tests.txt"

for precision in fp32 bf16; do
  log "bench --device cuda --precision $precision"
  timeout 300 $G bench --device cuda --models default --members 1,8,32,128 --precision $precision --epochs 3 --rounds 2 \
    --out "$RES" 2>&1 | tee "$RES/bench_$precision.txt"
done

log "experiment=paper for up to $PAPER_S s"
timeout --signal=TERM --kill-after=60 "$PAPER_S" $G train -m experiment=paper logger=none progress=false \
  checkpoint_every=50 device=cuda 2>&1 | grep -E "run folder|members:|skip|error|interrupted" | tee "$RES/paper.txt"
$G collect multirun/paper --name gpu_paper --out "$RES/paper_runs.csv" > /dev/null 2>&1 && \
  $G report --runs "$RES/paper_runs.csv" --out "$RES/paper_report.md" > /dev/null 2>&1
log "done: $(ls multirun/paper 2>/dev/null | grep -c -- '-') of 42 paper cells have folders"
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/gpu_campaign.tgz" "$RES" multirun/paper 2>/dev/null
  cp "$RES/campaign.log" "$OUT/" 2>/dev/null
fi

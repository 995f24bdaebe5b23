#!/usr/bin/env bash
# The GPU campaign, for a session that has a CUDA GPU for a few minutes. Everything runs inside BUDGET_S
# seconds of wall time (default 470), in two phases:
#   1. experiment=paper (the paper-sized grid: default model, budget 1000, 10 seeds a cell), one process
#      per task, LANES tasks at a time (default 3), for PAPER_S seconds (default 360), with the GPU tests
#      beside them. Complete cells are skipped, so each run goes on where the committed ones stop; a cell
#      cut off by the limit starts over next time (its checkpoint is not brought back);
#   2. `grokmuon bench --device cuda` at E = 1, 8, 32, 128 in fp32 and bf16 with the time left.
# The CPU study (scripts/study.sh) is not run here: on a GPU the dropout masks are hashed and Muon's
# Newton-Schulz runs in bf16, so its cells would be other draws, not the CPU protocol's (results/gpu).
# It writes results/gpu/ (logs, tests, bench) and the run folders into multirun/paper/; with OUT set it
# packs the logs and every run-folder file it wrote (no .pt) into $OUT/gpu_campaign.tgz: only what is
# under $OUT comes back from a lent machine.
#   scripts/gpu_campaign.sh                      # 470 s
#   BUDGET_S=3600 PAPER_S=3300 LANES=4 scripts/gpu_campaign.sh
#   DEVICE=cpu BUDGET_S=60 PAPER_S=30 TASKS=gcd scripts/gpu_campaign.sh   # dry run of the script, no GPU
# No network needed: where the machine's Python lacks hydra-core, omegaconf or entmax, put their wheels in
# .whl/ first (docs/gpu.md); they are installed into a scratch folder, not the machine's Python.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
RES=results/gpu
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-470}   # the whole script, so the machine can be given back on time
PAPER_S=${PAPER_S:-360}     # phase 1's share
TASKS=${TASKS:-"gcd modadd modsub modmul moddiv parity modexp"}  # cheapest first: more cells finish
# Tasks side by side: one process alone leaves the GPU waiting on kernel launches, but 21 at once (the
# first campaign) ran a 36-member race at 22 s/epoch against 0.7 s alone (results/gpu/README.md).
LANES=${LANES:-3}
start=$SECONDS
left() { echo $(( BUDGET_S - (SECONDS - start) )); }
log() { echo "== $(date -u +%H:%M:%S) +$((SECONDS - start))s $*" | tee -a "$RES/campaign.log"; }
if [ "$DEVICE" != cpu ]; then
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || {
    echo "grokmuon: error: no CUDA GPU visible to $PY; the GPU campaign needs one (DEVICE=cpu: a dry run)" >&2; exit 2; }
fi
mkdir -p "$RES/logs"
stamp=$RES/.started; touch "$stamp"; sleep 1   # run-folder files newer than this are what the campaign wrote

if [ -d .whl ]; then
  log "installing .whl/ into /tmp/grokmuon-site"
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/grokmuon-site .whl/*.whl 2>&1 | tail -n 3
  export PYTHONPATH=/tmp/grokmuon-site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} WANDB_MODE=disabled PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
G="$PY -m grokmuon"
[ "$DEVICE" != cpu ] && nvidia-smi > "$RES/nvidia-smi.txt" 2>&1
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" | tee -a "$RES/campaign.log"

log "phase 1: experiment=paper for ${PAPER_S}s, ${LANES} tasks at a time, GPU tests beside them"
p1=$SECONDS
tests=none
if [ "$DEVICE" != cpu ]; then
  timeout "$PAPER_S" $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider > "$RES/gpu_tests.txt" 2>&1 &
  tests=$!
fi
for t in $TASKS; do
  while [ "$(jobs -rp | grep -cvx "$tests")" -ge "$LANES" ]; do wait -n; done   # LANES tasks at a time
  rest=$(( PAPER_S - (SECONDS - p1) )); [ "$rest" -lt 20 ] && break
  ( timeout --signal=TERM --kill-after=30 "$rest" $G train -m experiment=paper task="$t" logger=none \
      progress=false keep_weights=false device="$DEVICE" > "$RES/logs/paper-$t.txt" 2>&1
    echo "paper $t: exit $? after $(( SECONDS - p1 ))s" >> "$RES/campaign.log" ) &
done
wait
log "phase 1 done; tests: $(tail -n 1 "$RES/gpu_tests.txt" 2>/dev/null)"

for precision in fp32 bf16; do
  t=$(( $(left) / 2 - 10 )); [ "$t" -gt 150 ] && t=150
  [ "$t" -lt 30 ] && break
  log "phase 2: bench --device $DEVICE --precision $precision (up to ${t}s)"
  timeout "$t" $G bench --device "$DEVICE" --models default --members 1,8,32,128 --precision "$precision" \
    --epochs 3 --rounds 2 --out "$RES" > "$RES/bench_$precision.txt" 2>&1
  echo "bench $precision: exit $?" >> "$RES/campaign.log"
done
log "done: $(find multirun/paper -name summary.json -newer "$stamp" 2>/dev/null | wc -l) run folders written"
if [ -n "${OUT:-}" ]; then
  find multirun/paper -type f -newer "$stamp" ! -name '*.pt' > "$RES/written.txt" 2>/dev/null
  tar czf "$OUT/gpu_campaign.tgz" --exclude='*.pt' --exclude="$stamp" "$RES" -T "$RES/written.txt"
  cp "$RES/campaign.log" "$OUT/"
fi

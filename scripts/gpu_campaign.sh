#!/usr/bin/env bash
# The GPU campaign, for a session that has a CUDA GPU for a few minutes. One call, inside BUDGET_S seconds
# of wall time (default 470), in this order:
#   1. the GPU tests (tests/test_gpu.py, at most TESTS_S seconds, default 60);
#   2. experiment=paper (the paper-sized grid: default model, budget 1000, 10 seeds a cell), one process
#      per task, LANES tasks at a time (default 3), until PAPER_S seconds (default 330) from the start.
#      Complete cells are skipped, so each call goes on where the committed ones stop; a cell cut off by
#      the limit starts over next time (its checkpoint is not brought back);
#   3. `grokmuon bench --device cuda` at E = 1, 8, 32, 128, fp32 (with the compiled step) and bf16;
#   4. `grokmuon collect`, `report` and `figures` of multirun/paper into results/paper.
# The CPU study (scripts/study.sh) is not run here: on a GPU the dropout masks are hashed and Muon's
# Newton-Schulz runs in bf16, so its cells would be other draws, not the CPU protocol's (results/gpu).
#
# Where it writes: with OUT set, everything goes under $OUT (results/gpu, results/paper, multirun/paper,
# laid out as in the repository; the committed multirun/paper is copied there first so its complete cells
# are skipped), and $OUT/gpu_campaign.tgz packs every file the call wrote (no .pt): unpack it in the
# repository root. Only what is under $OUT comes back from a lent machine. Without OUT it writes into the
# repository itself (results/gpu, results/paper, multirun/paper), as on one's own GPU machine.
#
# COMPILE (default off): the grid's train step. off: eager, as every committed run. step: compile=step
# (torch.compile, CUDA graphs). auto: step only if this call's GPU tests passed the test that compares
# the compiled step with eager on this GPU (grokking and memorisation epochs equal), else off. Off by
# default because a compiled cell is its own run (its hash keeps compile=step): it does not continue the
# committed eager cells, and a grid of both would hold each cell twice.
#   scripts/gpu_campaign.sh                                      # 470 s
#   OUT=/tmp/out COMPILE=auto BUDGET_S=900 PAPER_S=700 scripts/gpu_campaign.sh
#   DEVICE=cpu OUT=$(mktemp -d) BUDGET_S=240 PAPER_S=90 TASKS=gcd GRID_ARGS="model=tiny max_epochs=2 head=softmax seeds=[0]" \
#     BENCH_ARGS="--task parity --models tiny --members 1 --epochs 1 --rounds 1 --peak-size 64 --compile off" \
#     scripts/gpu_campaign.sh
#                                                                # the dry run CI makes: no GPU, seconds
# No network needed: where the machine's Python lacks hydra-core, omegaconf or entmax, put their wheels in
# .whl/ first (docs/gpu.md); they are installed into a scratch folder, not the machine's Python.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-470}   # the whole script, so the machine can be given back on time
TESTS_S=${TESTS_S:-60}      # phase 1
PAPER_S=${PAPER_S:-330}     # phases 1 and 2 together end by then
TASKS=${TASKS:-"gcd modadd modsub modmul moddiv parity modexp"}  # cheapest first: more cells finish
# Tasks side by side: one process alone leaves the GPU waiting on kernel launches, but 21 at once (the
# first campaign) ran a 36-member race at 22 s/epoch against 0.7 s alone (results/gpu/README.md).
LANES=${LANES:-3}
COMPILE=${COMPILE:-off}
GRID_ARGS=${GRID_ARGS:-}    # more overrides for the grid (the dry run shrinks it)
BENCH_ARGS=${BENCH_ARGS:-"--models default --members 1,8,32,128 --epochs 3 --rounds 2"}
case "$COMPILE" in off|step|auto) ;; *)
  echo "grokmuon: error: COMPILE=$COMPILE is unknown; allowed: off, step, auto" >&2; exit 2 ;; esac
if [ "$DEVICE" != cpu ]; then
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null || {
    echo "grokmuon: error: no CUDA GPU visible to $PY; the GPU campaign needs one (DEVICE=cpu: a dry run)" >&2; exit 2; }
fi
ROOT=${OUT:-.}
RES=$ROOT/results/gpu
PAPER=$ROOT/results/paper
RUNS=$ROOT/multirun/paper
start=$SECONDS
left() { echo $(( BUDGET_S - (SECONDS - start) )); }
log() { echo "== $(date -u +%H:%M:%S) +$((SECONDS - start))s $*" | tee -a "$RES/campaign.log"; }
mkdir -p "$RES/logs" "$PAPER" || exit 1
if [ -n "${OUT:-}" ] && [ -d multirun/paper ] && [ ! -e "$RUNS" ]; then
  mkdir -p "$ROOT/multirun" && cp -rp multirun/paper "$RUNS"     # its complete cells are skipped, not re-run
fi
stamp=$RES/.started; touch "$stamp"; sleep 1   # files newer than this are what the campaign wrote

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

log "phase 1: GPU tests (up to ${TESTS_S}s)"
timeout "$TESTS_S" $PY -m pytest -q -rA -m gpu tests/test_gpu.py -p no:cacheprovider > "$RES/gpu_tests.txt" 2>&1
log "tests: exit $?: $(tail -n 1 "$RES/gpu_tests.txt")"
step=off
if [ "$COMPILE" = step ]; then step=step
elif [ "$COMPILE" = auto ] && grep -q "^PASSED tests/test_gpu.py::test_cuda_compiled_step_equals_eager" "$RES/gpu_tests.txt"; then
  step=step
fi
log "phase 2: experiment=paper until +${PAPER_S}s, ${LANES} tasks at a time, compile=$step (COMPILE=$COMPILE)"
for t in $TASKS; do
  while [ "$(jobs -rp | wc -l)" -ge "$LANES" ]; do wait -n; done   # LANES tasks at a time
  rest=$(( PAPER_S - (SECONDS - start) )); [ "$rest" -lt 20 ] && break
  # shellcheck disable=SC2086  # GRID_ARGS: several overrides
  ( timeout --signal=TERM --kill-after=30 "$rest" $G train -m experiment=paper task="$t" logger=none \
      progress=false keep_weights=false device="$DEVICE" compile="$step" hydra.sweep.dir="$RUNS" $GRID_ARGS \
      > "$RES/logs/paper-$t.txt" 2>&1
    echo "paper $t: exit $? after $(( SECONDS - start ))s" >> "$RES/campaign.log" ) &
done
wait
log "phase 2 done: $(find "$RUNS" -name summary.json -newer "$stamp" 2>/dev/null | wc -l) run folders written"

for precision in fp32 bf16; do
  t=$(( ($(left) - 30) / 2 )); [ "$t" -gt 150 ] && t=150
  [ "$t" -lt 20 ] && break
  compiled=$([ "$precision" = fp32 ] && echo on || echo off)      # the compiled step once, beside eager
  log "phase 3: bench --device $DEVICE --precision $precision (up to ${t}s)"
  # shellcheck disable=SC2086
  timeout "$t" $G bench --device "$DEVICE" --precision "$precision" --compile "$compiled" $BENCH_ARGS --out "$RES" \
    > "$RES/bench_$precision.txt" 2>&1
  echo "bench $precision: exit $?" >> "$RES/campaign.log"
done

log "phase 4: collect, report, figures of $RUNS into $PAPER"
{ $G collect "$RUNS" --experiment paper --out "$PAPER/runs.csv" &&
  $G report --runs "$PAPER/runs.csv" --out "$PAPER/report.md" > /dev/null &&
  $G figures --runs "$PAPER/runs.csv" --out "$PAPER/figures"; } > "$RES/paper_tables.txt" 2>&1
log "phase 4: exit $?: $(tail -n 1 "$RES/paper_tables.txt")"
if [ -n "${OUT:-}" ]; then
  (cd "$ROOT" && find results/gpu results/paper multirun/paper -type f -newer results/gpu/.started ! -name '*.pt' \
     ! -name .started ! -name written.txt > results/gpu/written.txt 2>/dev/null
   tar czf gpu_campaign.tgz -T results/gpu/written.txt results/gpu/written.txt)
  log "packed $(wc -l < "$RES/written.txt") files into $OUT/gpu_campaign.tgz"
fi

#!/usr/bin/env bash
# The GPU campaign, for a session that has a CUDA GPU for a few minutes. Everything runs inside BUDGET_S
# seconds of wall time (default 470), in three phases:
#   1. the study's cells (scripts/study.sh's steps: experiment=heads, its softmax seeds 3-4, `grokmuon tune`),
#      LANES steps at a time on the one GPU (default 3; STUDY_S, default 270 s), with the GPU tests
#      beside them. Complete cells are skipped, so this always does what the study still lacks; cells
#      cut off by the time limit stop with a checkpoint and resume when the script runs again on the
#      same machine (checkpoints are not packed: only complete cells are worth bringing back);
#   2. `grokmuon bench --device cuda` at E = 1, 8, 32, 128 in fp32 and bf16 (the GPU alone by then);
#   3. experiment=paper for whatever time is left.
# It writes results/gpu/ (logs, tests, bench) and the run folders into multirun/; with OUT set it packs
# the results and every run-folder file written by this run (no .pt) into $OUT/gpu_campaign.tgz.
#   scripts/gpu_campaign.sh                     # 470 s
#   BUDGET_S=3600 STUDY_S=3000 scripts/gpu_campaign.sh
#   DEVICE=cpu BUDGET_S=60 STUDY_S=30 scripts/gpu_campaign.sh   # dry run of the script itself, no GPU
# No network needed: where the machine's Python lacks hydra-core, omegaconf or entmax, put their wheels in
# .whl/ first (README, "GPU campaign"); they are installed into a scratch folder, not the machine's Python.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
RES=results/gpu
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-470}   # the whole script, so the machine can be given back on time
STUDY_S=${STUDY_S:-270}     # phase 1's share
TASKS=${TASKS:-"gcd modadd parity modmul modsub modexp moddiv"}  # every task: complete cells are skipped
TUNE_TASKS=${TUNE_TASKS:-"modmul modsub modexp parity"}             # the tasks study.sh tunes with plan v2
# Steps side by side: one step alone leaves the GPU waiting on kernel launches, but 21 at once (the
# first campaign) ran a race at 22 s/epoch against 0.7 s alone (results/gpu/README.md).
LANES=${LANES:-3}
start=$SECONDS
left() { echo $(( BUDGET_S - (SECONDS - start) )); }
log() { mkdir -p "$RES"; echo "== $(date -u +%H:%M:%S) +$((SECONDS - start))s $*" | tee -a "$RES/campaign.log"; }
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

log "phase 1: study cells for ${STUDY_S}s, ${LANES} at a time, GPU tests beside them"
p1=$SECONDS
tests=none
if [ "$DEVICE" != cpu ]; then
  timeout "$STUDY_S" $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider > "$RES/gpu_tests.txt" 2>&1 &
  tests=$!
fi
lane() {  # lane NAME ARGS...: one resumable step, stopped (SIGTERM: checkpoint, exit 130) at the phase's end
  local name=$1; shift
  timeout --signal=TERM --kill-after=30 "$(( STUDY_S - (SECONDS - p1) ))" $G "$@" device="$DEVICE" \
    > "$RES/logs/$name.txt" 2>&1
  echo "$name: exit $? after $(( SECONDS - p1 ))s" >> "$RES/campaign.log"
}
steps() {  # the study's steps (scripts/study.sh), the races first: a race is one 36-member ensemble
  for t in $TUNE_TASKS; do echo "tune-$t tune task=$t"; done
  for t in $TASKS; do echo "heads-$t train -m experiment=heads task=$t"; done
  for t in $TASKS; do echo "softmax-$t train -m experiment=heads head=softmax seeds=[3,4] task=$t"; done
}
while read -r name args; do
  while [ "$(jobs -rp | grep -cvx "$tests")" -ge "$LANES" ]; do wait -n; done   # LANES steps at a time
  [ $(( STUDY_S - (SECONDS - p1) )) -lt 20 ] && break
  lane "$name" $args &
done < <(steps)
wait
for precision in fp32 bf16; do
  t=$(( $(left) / 3 )); [ "$t" -gt 120 ] && t=120
  [ "$t" -lt 20 ] && break
  log "phase 2: bench --device $DEVICE --precision $precision (up to ${t}s)"
  timeout "$t" $G bench --device "$DEVICE" --models default --members 1,8,32,128 --precision "$precision" \
    --epochs 3 --rounds 2 --out "$RES" > "$RES/bench_$precision.txt" 2>&1
  echo "bench $precision: exit $?" >> "$RES/campaign.log"
done

t=$(( $(left) - 20 ))
if [ "$t" -gt 30 ]; then
  log "phase 3: experiment=paper for ${t}s"
  timeout --signal=TERM --kill-after=15 "$t" $G train -m experiment=paper logger=none progress=false \
    keep_weights=false device="$DEVICE" > "$RES/logs/paper.txt" 2>&1
  echo "paper: exit $?" >> "$RES/campaign.log"
fi
log "done: $(find multirun -name summary.json -newer "$stamp" | wc -l) run folders written"
if [ -n "${OUT:-}" ]; then
  find multirun -type f -newer "$stamp" ! -name '*.pt' > "$RES/written.txt"
  tar czf "$OUT/gpu_campaign.tgz" --exclude='*.pt' "$RES" -T "$RES/written.txt"
  cp "$RES/campaign.log" "$OUT/"
fi

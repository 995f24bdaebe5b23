#!/usr/bin/env bash
# How many intra-op threads a lone CPU run should use: the same short `grokmuon train` timed with each
# thread count, interleaved (1, 2, ..., 1, 2, ...) so a change in the machine's load hits every count
# alike. Prints each run's wall time and the load average, then the median per thread count and its
# ratio to one thread. Writes only under a temp folder (removed at the end).
#   scripts/threads.sh                                   # model=small, 30 epochs, threads 1 and 2, 3 rounds
#   ROUNDS=5 THREADS="1 2 4" scripts/threads.sh model=default max_epochs=10
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/grokmuon ] || make install
rounds=${ROUNDS:-3}
threads=${THREADS:-"1 2"}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(model=small max_epochs=30)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "cores: $(nproc); command: grokmuon train task=modadd ${args[*]} logger=none progress=false keep_weights=false"
for r in $(seq "$rounds"); do
    for t in $threads; do
        start=$(date +%s.%N)
        OMP_NUM_THREADS=$t .venv/bin/grokmuon train task=modadd "${args[@]}" logger=none progress=false \
            keep_weights=false "hydra.run.dir=$tmp/r$r-t$t" > /dev/null
        end=$(date +%s.%N)
        printf '%s %s %s\n' "$t" "$(awk "BEGIN {print $end - $start}")" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$tmp/times"
    done
done | awk '{printf "%s thread(s): %6.1f s  (load average %s)\n", $1, $2, $3; fflush()}'
python3 - "$tmp/times" <<'EOF'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    t, s, _ = line.split()
    times.setdefault(int(t), []).append(float(s))
base = statistics.median(times[min(times)])
for t, s in sorted(times.items()):
    m = statistics.median(s)
    print(f"{t} thread(s): median {m:.1f} s over {len(s)} runs; {m / base:.2f}x the time of {min(times)} thread(s)")
EOF

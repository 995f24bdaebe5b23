#!/usr/bin/env bash
# The speed benchmark (issue: side-by-side ratios to a plain loop); writes results/bench/bench-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/grokmuon ] || make install
.venv/bin/grokmuon bench --out results/bench "$@"   # the committed record, on purpose

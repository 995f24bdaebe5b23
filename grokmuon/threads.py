"""How many intra-op threads a training process uses on a CPU: one, unless OMP_NUM_THREADS says otherwise.

Why one: the tensors here are small (a batch of 512 rows through a 2-layer, 128-wide transformer), so an
epoch is many short operators, and each parallel operator pays a fork/join. Measured side by side on a
2-core machine that other work shared (scripts/threads.sh, docs/threads.md), a lone run with 2 threads
took many times as long as with 1: threads that find their core busy spin and wait for each other. In a
sweep several processes share the cores anyway (study.sh's lanes, a joblib launcher), and there each
wants one. One thread also gives the same numbers on any machine of the same CPU type and torch build
(how many cores it has plays no part), which the committed CPU study relies on. A user who has idle
cores and measures more threads faster sets OMP_NUM_THREADS, and it is respected as given.
"""
from __future__ import annotations

import os
import sys

ENV = "OMP_NUM_THREADS"


def choose(environ) -> int | None:
    """Threads for this process: None where the user set OMP_NUM_THREADS (it stands), else 1."""
    return None if environ.get(ENV, "").strip() else 1


def apply(environ=os.environ) -> None:
    """Use choose()'s count: in the environment (before torch loads OpenMP, and inherited by a parallel
    sweep's worker processes) and in torch if it is already loaded."""
    n = choose(environ)
    if n is None:
        return
    environ[ENV] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)

"""Racing a grid of configurations to its best Kaplan-Meier median, and choosing the best one.

A configuration (lr, weight_decay) trains n seeds. With no censoring before the budget, its Kaplan-Meier
median is <= t exactly when at least need(n) = ceil(n/2) of its seeds have grokked by t. So at the first
epoch t* at which some configuration reaches need(n), every configuration with fewer has a median > t*:
the grid's best median is decided and the rest of the grid can stop (status raced_out: censored at t* by
the race, not by the budget). `choose` ranks configurations using only what is known by the best median,
so a raced grid and the same grid run to its budget choose the same configuration (tested).

Tie rule (RULE): the earliest median; then more seeds grokked by that median epoch; then the earlier mean
grokking epoch of those seeds; then the first in grid order (lr as listed, then weight decay as listed).
A grid where no configuration grokked in half its seeds ran to its budget: then more seeds grokked
wins, then the earlier mean. A diverged member counts as never grokked, as in the report's statistics.
No torch here: the report uses it too.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

RULE = ("earliest Kaplan-Meier median; then more seeds grokked by it; then the earlier mean grokking "
        "epoch of those seeds; then grid order")

Epochs = Sequence[int | None]          # one configuration's grokking epochs, None: did not grok


def by_config(members) -> dict[tuple[float, float], list[int | None]]:
    """Grokking epochs by (lr, weight_decay) in grid order, from (lr, weight_decay, status, grokking_epoch)
    per member; a diverged member never grokked."""
    configs: dict[tuple[float, float], list[int | None]] = {}
    for lr, wd, status, epoch in members:
        configs.setdefault((lr, wd), []).append(None if status == "diverged" else epoch)
    return configs


def need(n: int) -> int:
    """Seeds that must have grokked for a configuration of n seeds to have its median: ceil(n/2)."""
    return (n + 1) // 2


def median_epoch(epochs: Epochs) -> int | None:
    """Kaplan-Meier median of one configuration without early censoring: its need(n)-th grokking epoch."""
    done = sorted(e for e in epochs if e is not None)
    k = need(len(epochs))
    return done[k - 1] if len(done) >= k else None


def decided(configs: Mapping[Hashable, Epochs], epoch: int) -> bool:
    """Whether, at the end of `epoch`, some configuration has grokked in at least half its seeds."""
    return any(sum(e is not None and e <= epoch for e in eps) >= need(len(eps)) for eps in configs.values())


def rank(epochs: Epochs, index: int) -> tuple:
    """Sort key of one configuration (smaller is better), from what is known by its median (RULE)."""
    m = median_epoch(epochs)
    grokked = [e for e in epochs if e is not None and (m is None or e <= m)]
    mean = sum(grokked) / len(grokked) if grokked else math.inf
    return (m if m is not None else math.inf, -len(grokked), mean, index)


def choose(configs: Mapping[Hashable, Epochs]) -> Hashable:
    """The best configuration of a grid (keys in grid order) by RULE."""
    keys = list(configs)
    return min(keys, key=lambda k: rank(configs[k], keys.index(k)))

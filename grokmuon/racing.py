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
wins, then the earlier mean. A grid where no member grokked at all has no grokking evidence to rank
by, and grid order alone would pick its first setting, an edge, which a window would then chase past:
there the highest mean final validation accuracy chooses (FALLBACK; every member ran to the budget, the
same epoch; a diverged member or a NaN accuracy counts as 0), then grid order. A diverged member counts as never grokked, as in the report's statistics.
No torch here: the report uses it too.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

RULE = ("earliest Kaplan-Meier median; then more seeds grokked by it; then the earlier mean grokking "
        "epoch of those seeds; then grid order")

FALLBACK = "where no member grokked: the highest mean final validation accuracy, then grid order"

Epochs = Sequence[int | None]          # one configuration's grokking epochs, None: did not grok


def val_by_config(members) -> dict[tuple[float, float], float]:
    """Mean final validation accuracy by (lr, weight_decay), from (lr, weight_decay, status,
    final_val_acc) per member; a diverged member (or one with no accuracy) counts as 0."""
    accs: dict[tuple[float, float], list[float]] = {}
    for lr, wd, status, acc in members:
        ok = status != "diverged" and acc is not None and acc == acc        # acc == acc: not NaN
        accs.setdefault((lr, wd), []).append(float(acc) if ok else 0.0)
    return {k: sum(v) / len(v) for k, v in accs.items()}


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


def none_grokked(configs: Mapping[Hashable, Epochs]) -> bool:
    """Whether no member of any configuration grokked: RULE has nothing to rank by."""
    return all(e is None for eps in configs.values() for e in eps)


def by_accuracy(val: Mapping[Hashable, float]) -> list[Hashable]:
    """The configurations (keys in grid order) best first by FALLBACK: the highest mean final validation
    accuracy, then grid order."""
    keys = list(val)
    return sorted(keys, key=lambda k: (-val[k], keys.index(k)))


def choose(configs: Mapping[Hashable, Epochs], val: Mapping[Hashable, float] | None = None) -> Hashable:
    """The best configuration of a grid (keys in grid order) by RULE; where no member grokked and `val`
    (val_by_config) is given, by FALLBACK."""
    keys = list(configs)
    if val is not None and none_grokked(configs):
        return by_accuracy({k: val[k] for k in keys})[0]
    return min(keys, key=lambda k: rank(configs[k], keys.index(k)))


def tied(configs: Mapping[Hashable, Epochs], val: Mapping[Hashable, float] | None = None) -> list[Hashable]:
    """The configurations RULE ranks best but for grid order (same median, seeds grokked by it and mean
    epoch of those): more than one where the grid's order alone made the choice. Where no member grokked,
    those FALLBACK ranks best but for grid order (the same mean final val accuracy), given `val`; else
    none: grid order alone chose, on no evidence."""
    if none_grokked(configs):
        if val is None:
            return []
        top = max(val[k] for k in configs)
        return [k for k in configs if val[k] == top]
    keys = [k for k in configs if any(e is not None for e in configs[k])]
    best = min(rank(configs[k], 0)[:3] for k in keys)
    return [k for k in keys if rank(configs[k], 0)[:3] == best]


def same_epochs(configs: Mapping[Hashable, Epochs], keys: Sequence[Hashable]) -> bool:
    """Whether these configurations grokked at the same epoch on every seed (seeds in the same order)."""
    return len({tuple(configs[k]) for k in keys}) == 1


def tie_reason(configs: Mapping[Hashable, Epochs], best: Sequence[Hashable],
               val: Mapping[Hashable, float] | None = None) -> str:
    """What the tied configurations `best` (tied()) share beyond RULE's measures, for tune's line and the
    report's Ties: " (...)" or ""."""
    if none_grokked(configs):
        return f" (no member grokked; the same mean final val accuracy, {val[best[0]]:.3f})"
    return " (the same epoch on every seed)" if same_epochs(configs, best) else ""


# ---------------------------------------------------------------------- a race in parts (tune --race-chunks)
# A race split into parts, each its own ensemble run one after another (a part fits a job's time limit or
# the memory a whole grid would not), picks what the whole race picks. A member's grokking epoch does not
# depend on which members share its ensemble (design rule; tested), so the parts see the same epochs.
# Each part after the first stops by the best median found so far (race_stop_by): past it no setting of
# that part could win. Cut every part's evidence at the best median of all (truncate), and it is what
# the whole race, stopped there, would have seen; RULE then picks the same setting, ties included.


def split(values: Sequence[float], n: int) -> list[list[float]]:
    """values in min(n, len(values)) contiguous parts, as equal as possible, the larger first (grid order
    kept: concatenated, the parts are the values again)."""
    n = max(1, min(n, len(values)))
    size, extra = divmod(len(values), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (k < extra)
        out.append(list(values[i:j]))
        i = j
    return out


def best_median(configs: Mapping[Hashable, Epochs]) -> int | None:
    """The earliest median over the configurations (None: none has one): where a race of them stops."""
    medians = [m for m in (median_epoch(e) for e in configs.values()) if m is not None]
    return min(medians) if medians else None


def in_parts(parts: Sequence, run) -> tuple[dict[Hashable, list[int | None]], int | None]:
    """A race run as parts one after another: run(part, stop_by) races one part, stopped by stop_by at the
    latest (None: no limit), and returns its configurations as its race saw them. Each part after the
    first runs with the best median the parts before found. The evidence of all parts cut at the best
    median of all (truncate), in the parts' order, and that epoch (None: no part found a median)."""
    configs: dict[Hashable, list[int | None]] = {}
    stop_by = None
    for part in parts:
        seen = run(part, stop_by)
        configs.update(seen)
        found = best_median(seen)
        if found is not None and (stop_by is None or found < stop_by):
            stop_by = found
    return truncate(configs, stop_by), stop_by


def lead_with(parts: Sequence, first) -> list:
    """The parts with the first one for which first(part) holds moved to the front, the rest in their order
    (none holds: unchanged). Which part runs first changes only the cost of a race in parts: the part most
    likely to grok early, run first, stops every later part at its median (in_parts). The choice is made on
    the evidence put back in grid order (in_order), so it does not depend on the order run."""
    lead = next((i for i, part in enumerate(parts) if first(part)), None)
    if lead is None:
        return list(parts)
    return [parts[lead], *parts[:lead], *parts[lead + 1:]]


def in_order(configs: Mapping[Hashable, Epochs], keys: Sequence[Hashable]) -> dict[Hashable, list[int | None]]:
    """configs with its keys in the order of keys (grid order, on which choose breaks ties); a key of
    configs missing from keys (none in a race) would be an error, not dropped."""
    if set(keys) != set(configs):
        raise ValueError(f"in_order: the keys differ from the configurations ({len(keys)} against {len(configs)})")
    return {k: list(configs[k]) for k in keys}


def truncate(configs: Mapping[Hashable, Epochs], epoch: int | None) -> dict[Hashable, list[int | None]]:
    """The configurations as a race stopped at the end of `epoch` saw them: a later grokking epoch is None
    (not grokked by then); epoch None: unchanged."""
    if epoch is None:
        return {k: list(v) for k, v in configs.items()}
    return {k: [e if e is not None and e <= epoch else None for e in v] for k, v in configs.items()}


# ---------------------------------------------------------------------- edge-aware tuning (grokmuon tune)
# A setting chosen on an edge of its grid may only be the best of what was tried: the optimum can lie
# beyond. `grokmuon tune` then races a window one step past that edge (around the choice, with the new
# value), and again while the choice stays on an edge, up to the plan's limit. The window always holds
# the choice, and every setting outside it lost to the choice in an earlier race, so the window's
# choice is the choice of all settings raced so far (up to the grid-order tie rule).
Axes = Mapping[str, Sequence[float]]        # axis name (lr, weight_decay) -> values raced so far


def edges(choice: Mapping[str, float], raced: Axes) -> dict[str, str]:
    """The axes on which the choice sits at the lowest or highest value raced so far: {axis: low|high}.
    An axis raced at one value only has no edge to move past, nor has a low edge at 0 (no decay)."""
    out = {}
    for axis, values in raced.items():
        values = sorted(values)
        if len(values) < 2:
            continue
        if choice[axis] == values[-1]:
            out[axis] = "high"
        elif choice[axis] == values[0] and values[0] > 0:
            out[axis] = "low"
    return out


LONE_STEP = 10.0     # one step past an axis with a single positive value ([0, 0.15]): no ratio to keep, so a
                    # decade, the span such grids usually step by


def beyond(values: Sequence[float], side: str) -> float:
    """One step past an edge of a log-spaced axis: the edge times (or over) the ratio of its two outermost
    positive values on that side, to 3 significant digits (3e-3, 1e-2 -> 3.33e-2); a 0 (no decay) has no
    place on a log axis and is left out of the ratio (LONE_STEP where one positive value is left)."""
    v = sorted(x for x in values if x > 0)
    if len(v) < 2:
        step = LONE_STEP
    else:
        step = v[-1] / v[-2] if side == "high" else v[1] / v[0]
    return float(f"{(v[-1] * step if side == 'high' else v[0] / step):.3g}")


def window(choice: Mapping[str, float], raced: Axes) -> dict[str, list[float]]:
    """The next race's grid: on each axis where the choice sits on an edge, the choice and one step past
    it; on every other axis, the choice and its raced neighbours. Every setting it holds that was never
    raced borders the choice."""
    sides = edges(choice, raced)
    out = {}
    for axis, values in raced.items():
        v, c = sorted(values), choice[axis]
        if axis in sides:
            out[axis] = sorted([c, beyond(v, sides[axis])])
        else:
            i = v.index(c)
            out[axis] = v[max(0, i - 1):i + 2]
    return out

"""Grokking and memorisation epochs: pure functions on per-epoch accuracy curves (epoch 1 = first row).

One rule (is_memorised, is_grokked), two shapes: `update` carries both epochs one epoch further (what
train() calls after each epoch's evaluation, without keeping the curves), and `memorisation_epoch` /
`grokking_epoch` read them off whole curves (what a reader of metrics.csv calls; tested equal). An epoch
whose train accuracy was not measured (NaN: eval_train=lazy, a blank cell in metrics.csv) meets neither
rule; the lazy trainer measures the train split wherever one of them could be met (train.needs_train),
so its epochs are every run's.
"""
from __future__ import annotations

from collections.abc import Sequence


def first_epoch(condition: Sequence[bool]) -> int | None:
    """1-based index of the first True, or None."""
    return next((i + 1 for i, ok in enumerate(condition) if ok), None)


def is_memorised(train_acc: float, train_threshold: float = 0.99) -> bool:
    """Train acc at or above its threshold (False for NaN: not measured)."""
    return train_acc >= train_threshold


def is_grokked(train_acc: float, val_acc: float, val_threshold: float = 0.95, train_threshold: float = 0.99) -> bool:
    """Val acc at or above its threshold while train acc is at or above its own (paper §2.3)."""
    return train_acc >= train_threshold and val_acc >= val_threshold


def update(memorised: int | None, grokked: int | None, epoch: int, train_acc: float, val_acc: float,
           val_threshold: float = 0.95, train_threshold: float = 0.99) -> tuple[int | None, int | None]:
    """(memorisation epoch, grokking epoch) over epochs 1..epoch, from their values over 1..epoch-1 and
    this epoch's accuracies: the first epoch that meets each rule is kept (later dips do not undo it)."""
    if memorised is None and is_memorised(train_acc, train_threshold):
        memorised = epoch
    if grokked is None and is_grokked(train_acc, val_acc, val_threshold, train_threshold):
        grokked = epoch
    return memorised, grokked


def memorisation_epoch(train_acc: Sequence[float], train_threshold: float = 0.99) -> int | None:
    """First epoch whose train accuracy reaches the threshold."""
    return first_epoch([is_memorised(a, train_threshold) for a in train_acc])


def grokking_epoch(train_acc: Sequence[float], val_acc: Sequence[float],
                   val_threshold: float = 0.95, train_threshold: float = 0.99) -> int | None:
    """First epoch that is_grokked (the first crossing counts, later dips do not undo it).
    None if it never happens: the run is censored at its budget."""
    return first_epoch([is_grokked(t, v, val_threshold, train_threshold) for t, v in zip(train_acc, val_acc)])


# Essential AI, "Muon Doesn't Clearly Grok Faster" (2025): "Grokking is defined as the training step where
# validation accuracy is within 1% of its maximum and exceeds 95% at some point in training."
NEAR_MAX_WITHIN = 0.01      # "within 1%": one point of accuracy (absolute); see near_max_epoch


def near_max_epoch(val_acc: Sequence[float], val_threshold: float = 0.95,
                   within: float = NEAR_MAX_WITHIN) -> int | None:
    """The outside study's grokking rule: the first epoch whose val accuracy is within `within` of the
    run's maximum val accuracy, in a run whose maximum reaches val_threshold (else None: never grokked).
    - "within 1%" is read as absolute (val >= max - 0.01, one point of accuracy): accuracies are
      fractions and the threshold beside it (95%) is absolute. Read as relative (val >= 0.99 max) it
      differs by at most 0.01 (1 - max) <= 0.0005 for any max >= 0.95, below one row of most val splits.
    - "exceeds 95%" is taken as >= val_threshold, as the first-crossing rule compares (it differs only
      at exactly 0.95).
    - No train-accuracy condition: their rule has none. The maximum is over the epochs the run
      recorded, so a run stopped early (patience, racing) has its maximum from a shorter curve.
    Blank (NaN) epochs are skipped; a NaN never counts as near the maximum."""
    vals = [v for v in val_acc if v == v]
    if not vals or max(vals) < val_threshold:
        return None
    top = max(vals)
    return first_epoch([v == v and v >= top - within for v in val_acc])


# Whether grokking holds (a 2026 report found Muon-trained transformers losing it after grokking):
# measured over the epochs a member ran past its grokking epoch (patience=N gives each at least N).
REGRESS_RUN = 5     # epochs in a row below the val threshold after grokking that count as regressed


def after_grokking(val_acc: Sequence[float], grok_epoch: int | None, val_threshold: float = 0.95,
                   run: int = REGRESS_RUN) -> dict:
    """Over the epochs after `grok_epoch` (1-based) that the curve holds: how many (post_grok_epochs), the
    share whose val accuracy is below the threshold (post_grok_below), the lowest val accuracy
    (post_grok_min_val), and regressed: at least `run` epochs in a row below the threshold. Blank (NaN)
    epochs are skipped. All None for a member that did not grok or ran no epoch past it."""
    none = {"post_grok_epochs": None, "post_grok_below": None, "post_grok_min_val": None, "regressed": None}
    if grok_epoch is None:
        return none
    after = [v for v in val_acc[grok_epoch:] if v == v]
    if not after:
        return none
    longest = streak = 0
    for v in after:
        streak = streak + 1 if v < val_threshold else 0
        longest = max(longest, streak)
    return {"post_grok_epochs": len(after), "post_grok_below": sum(v < val_threshold for v in after) / len(after),
            "post_grok_min_val": min(after), "regressed": longest >= run}

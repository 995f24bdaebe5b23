"""Grokking and memorisation epochs: pure functions on per-epoch accuracy curves (epoch 1 = first row)."""
from __future__ import annotations

from collections.abc import Sequence


def first_epoch(condition: Sequence[bool]) -> int | None:
    """1-based index of the first True, or None."""
    return next((i + 1 for i, ok in enumerate(condition) if ok), None)


def is_memorised(train_acc: float, train_threshold: float = 0.99) -> bool:
    return train_acc >= train_threshold


def is_grokked(train_acc: float, val_acc: float, val_threshold: float = 0.95, train_threshold: float = 0.99) -> bool:
    """Val acc at or above its threshold while train acc is at or above its own (paper §2.3)."""
    return train_acc >= train_threshold and val_acc >= val_threshold


def memorisation_epoch(train_acc: Sequence[float], train_threshold: float = 0.99) -> int | None:
    """First epoch whose train accuracy reaches the threshold."""
    return first_epoch([is_memorised(a, train_threshold) for a in train_acc])


def grokking_epoch(train_acc: Sequence[float], val_acc: Sequence[float],
                   val_threshold: float = 0.95, train_threshold: float = 0.99) -> int | None:
    """First epoch that is_grokked (the first crossing counts, later dips do not undo it).
    None if it never happens: the run is censored at its budget."""
    return first_epoch([is_grokked(t, v, val_threshold, train_threshold) for t, v in zip(train_acc, val_acc)])

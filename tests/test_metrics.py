"""Grokking and memorisation epochs on hand-made accuracy curves (epoch 1 = the first row)."""
from __future__ import annotations

from grokmuon.metrics import first_epoch, grokking_epoch, is_grokked, is_memorised, memorisation_epoch


def test_first_epoch_is_one_based():
    assert first_epoch([]) is None
    assert first_epoch([False, False]) is None
    assert first_epoch([True]) == 1
    assert first_epoch([False, False, True, True]) == 3


def test_never_grokking_is_none():
    train = [0.5, 0.9, 1.0, 1.0, 1.0]
    assert grokking_epoch(train, [0.1, 0.2, 0.5, 0.9, 0.949]) is None      # just under 0.95
    assert grokking_epoch([], []) is None
    assert memorisation_epoch([0.5, 0.98, 0.989]) is None


def test_val_high_before_train_memorises_does_not_count():
    train = [0.50, 0.90, 0.98, 0.995, 1.0]
    val = [0.96, 0.97, 0.99, 0.50, 0.96]
    assert grokking_epoch(train, val) == 5
    assert memorisation_epoch(train) == 4


def test_first_crossing_counts_even_if_it_dips_later():
    train = [0.3, 1.0, 1.0, 1.0, 1.0, 1.0]
    val = [0.1, 0.2, 0.95, 0.40, 0.30, 0.99]
    assert grokking_epoch(train, val) == 3                                  # 0.95 itself counts
    assert memorisation_epoch([0.3, 0.99, 0.5, 0.2]) == 2


def test_thresholds_are_inclusive_and_configurable():
    assert is_grokked(0.99, 0.95) and not is_grokked(0.989, 1.0) and not is_grokked(1.0, 0.9499)
    assert is_memorised(0.99) and not is_memorised(0.9899)
    train, val = [0.8, 0.9, 1.0], [0.6, 0.7, 0.8]
    assert grokking_epoch(train, val) is None
    assert grokking_epoch(train, val, val_threshold=0.7, train_threshold=0.9) == 2
    assert memorisation_epoch(train, train_threshold=0.85) == 2


def test_grokking_never_precedes_memorisation():
    import random
    rng = random.Random(0)
    for _ in range(200):
        train = [rng.random() ** 0.2 for _ in range(30)]
        val = [rng.random() for _ in range(30)]
        g, m = grokking_epoch(train, val), memorisation_epoch(train)
        if g is not None:
            assert m is not None and m <= g
            assert train[g - 1] >= 0.99 and val[g - 1] >= 0.95
            assert not any(is_grokked(t, v) for t, v in zip(train[:g - 1], val[:g - 1]))

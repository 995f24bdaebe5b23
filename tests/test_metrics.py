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


from grokmuon import metrics as m  # noqa: E402  (the near-max rule's tests)


def test_near_max_is_the_first_epoch_within_one_point_of_the_runs_maximum():
    val = [0.1, 0.5, 0.96, 0.97, 0.985, 0.99, 0.98]
    # max 0.99: within 0.01 means >= 0.98, first reached at epoch 5 (0.985); the first crossing is epoch 3.
    assert m.near_max_epoch(val) == 5
    assert m.grokking_epoch([1.0] * len(val), val) == 3


def test_near_max_needs_the_maximum_to_reach_the_threshold():
    assert m.near_max_epoch([0.1, 0.9, 0.94, 0.945]) is None          # never 95%: never grokked
    assert m.near_max_epoch([0.1, 0.95, 0.94]) == 2                    # reaching 0.95 counts (>=)
    assert m.near_max_epoch([]) is None


def test_near_max_ignores_train_accuracy_and_counts_dips_against_the_maximum():
    # A run that peaks at 1.0, dips, and is back near the top later: the first epoch near the top counts.
    assert m.near_max_epoch([0.2, 0.995, 0.6, 1.0, 0.97]) == 2
    # A run whose later maximum is higher moves the epoch later than the first crossing.
    assert m.near_max_epoch([0.2, 0.951, 0.96, 0.975, 1.0]) == 5


def test_near_max_skips_blank_epochs_and_takes_its_margin():
    nan = float("nan")
    assert m.near_max_epoch([0.1, nan, 0.985, 0.99]) == 3
    assert m.near_max_epoch([0.1, 0.97, 0.99], within=0.001) == 3
    assert m.near_max_epoch([0.1, 0.97, 0.99], within=0.05) == 2

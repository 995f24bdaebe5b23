"""Grokking and memorisation epochs on hand-made accuracy curves (epoch 1 = the first row), and train()
finding the epochs the definition gives on scripted accuracies (eval_train every and lazy)."""
from __future__ import annotations

import math

import pytest

from grokmuon.metrics import first_epoch, grokking_epoch, is_grokked, is_memorised, memorisation_epoch
from grokmuon import metrics as m


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
def test_an_unmeasured_train_accuracy_meets_neither_rule():
    nan = float("nan")                         # eval_train=lazy: the train split was not measured
    train = [0.5, 1.0, nan, nan, 1.0]
    val = [0.1, 0.2, 0.99, 0.99, 0.99]
    assert memorisation_epoch([nan, 0.995, nan]) == 2
    assert grokking_epoch(train, val) == 5      # epochs 3 and 4 cannot count: their train acc is unknown


def test_update_carries_both_epochs_one_epoch_further():
    from grokmuon.metrics import update
    assert update(None, None, 7, 0.99, 0.95) == (7, 7)
    assert update(None, None, 7, 0.5, 0.99) == (None, None)
    assert update(3, None, 7, 0.2, 0.99) == (3, None)                   # a later dip keeps the first epoch
    assert update(3, 5, 7, 1.0, 1.0) == (3, 5)
    assert update(None, None, 2, 0.9, 0.7, val_threshold=0.7, train_threshold=0.9) == (2, 2)


def test_update_epoch_by_epoch_equals_the_curve_functions():
    """What the trainer does (update after each epoch) against the epochs read off the whole curves, on
    random curves with unmeasured (NaN) train cells and values on the thresholds."""
    import random

    from grokmuon.metrics import update
    rng = random.Random(1)
    for _ in range(300):
        train = [rng.choice([rng.random(), 0.99, 1.0, float("nan")]) for _ in range(25)]
        val = [rng.choice([rng.random(), 0.95, 0.9499]) for _ in range(25)]
        epochs = (None, None)
        for epoch, (t, v) in enumerate(zip(train, val), start=1):
            epochs = update(*epochs, epoch, t, v)
        assert epochs == (memorisation_epoch(train), grokking_epoch(train, val))


# --- the trainer's epochs are this rule's -----------------------------------------------------------

# Scripted accuracies (member -> epoch 1..), fed to train() in place of its evaluation. The expected epochs
# are written from the definition (first epoch with train >= 0.99, and with val >= 0.95 while train >= 0.99),
# not computed by grokmuon.metrics.
SCRIPT = {
    # val high before memorisation (does not count); train exactly 0.99 at 4; val exactly 0.95 at 6; a dip at 7
    0: ([0.50, 0.90, 0.98, 0.99, 0.995, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [0.96, 0.97, 0.20, 0.50, 0.949, 0.95, 0.30, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99]),
    # memorised at 3; train dips to 0.98 at 8-9 while val is high (no grokking); groks at 10
    1: ([0.20, 0.60, 1.0, 1.0, 1.0, 1.0, 1.0, 0.98, 0.98, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [0.10, 0.10, 0.10, 0.20, 0.30, 0.50, 0.90, 0.97, 0.97, 0.96, 0.20, 0.20, 0.20, 0.20, 0.20, 0.20]),
    # val always high, train never reaches 0.99: never memorised, never grokked
    2: ([0.10, 0.50, 0.98, 0.985, 0.989] + [0.989] * 11, [0.99] * 16),
}
EXPECTED = {0: (4, 6), 1: (3, 10), 2: (None, None)}      # (memorisation, grokking) epoch


def scripted_train(monkeypatch, members, eval_train, max_epochs=16, patience=3):
    """train() on a tiny model whose evaluations return SCRIPT's accuracies for `members`; returns its
    results and every epoch's numbers."""
    import torch

    import grokmuon.train as train_mod
    from conftest import compose_config
    cfg = compose_config("task=modadd", "task.p=7", "batch_size=16", f"seeds={list(range(len(members)))}",
                         f"max_epochs={max_epochs}", f"patience={patience}", f"eval_train={eval_train}",
                         "probes=false")
    epoch = [0]

    def acc(split: str) -> torch.Tensor:
        col = 0 if split == "train" else 1
        # float64: the scripted value itself (0.95 in float32 is 0.94999999, just under the threshold)
        return torch.tensor([SCRIPT[m][col][epoch[0] - 1] for m in members], dtype=torch.float64)

    def evaluate(model, data, cfg, device):
        epoch[0] += 1
        return {"train_acc": acc("train"), "val_acc": acc("val"), "train_loss": 1 - acc("train"),
                "val_loss": 1 - acc("val")}

    def evaluate_split(model, data, cfg, device, rows, split, logit_probes=False):
        epoch[0] += split == "val"                       # the lazy path measures val first, every epoch
        return {f"{split}_acc": acc(split), f"{split}_loss": 1 - acc(split)}
    monkeypatch.setattr(train_mod, "evaluate", evaluate)
    monkeypatch.setattr(train_mod, "evaluate_split", evaluate_split)
    rows = []
    results = train_mod.train(cfg, on_epoch=lambda e, numbers, _: rows.append(numbers["train_acc"]))
    return results, rows


@pytest.mark.parametrize("eval_train", ["every", "lazy"])
def test_the_trainer_finds_the_epochs_the_definition_gives_and_stops_after_patience(monkeypatch, eval_train):
    results, rows = scripted_train(monkeypatch, [0, 1], eval_train)
    for r, m in zip(results, (0, 1)):
        assert (r.memorisation_epoch, r.grokking_epoch) == EXPECTED[m], m
        assert r.status == "grokked"
    # The run ends at the last member's grokking epoch + patience (10 + 3), not before, not at the budget.
    assert len(rows) == 13 and [r.epochs_run for r in results] == [13, 13]
    if eval_train == "lazy":            # it did skip train evaluations, and still found the same epochs
        assert any(math.isnan(x) for row in rows for x in row)


@pytest.mark.parametrize("eval_train", ["every", "lazy"])
def test_a_member_that_never_groks_keeps_the_run_to_its_budget(monkeypatch, eval_train):
    results, rows = scripted_train(monkeypatch, [0, 1, 2], eval_train)
    assert [(r.memorisation_epoch, r.grokking_epoch) for r in results] == [EXPECTED[m] for m in (0, 1, 2)]
    assert [r.status for r in results] == ["grokked", "grokked", "censored"]
    assert len(rows) == 16 and all(r.epochs_run == 16 for r in results)


def test_after_grokking_counts_the_epochs_past_it_and_flags_a_run_below_the_threshold():
    #       epoch: 1    2    3     4     5     6     7     8     9     10
    val = [0.1, 0.5, 0.96, 0.97, 0.90, 0.93, 0.94, 0.92, 0.91, 0.99]
    # grokked at 3; after it, epochs 4-10: 0.97 then five below 0.95 in a row (5-9), then 0.99
    out = m.after_grokking(val, 3)
    assert out == {"post_grok_epochs": 7, "post_grok_below": 5 / 7, "post_grok_min_val": 0.90, "regressed": True}
    assert m.after_grokking(val, 3, run=6)["regressed"] is False        # the longest run below is 5
    assert m.after_grokking([0.96, 0.97, float("nan"), 0.98], 1) == {
        "post_grok_epochs": 2, "post_grok_below": 0.0, "post_grok_min_val": 0.97, "regressed": False}
    assert m.after_grokking(val, None)["regressed"] is None             # never grokked: nothing to say
    assert m.after_grokking(val, 10)["post_grok_epochs"] is None        # no epoch past it


def test_an_exact_95_percent_from_the_evaluation_meets_the_rule(compose_cfg):
    # modadd mod 11 cut at 101 train / 20 val rows, and a "model" right on every row but one val row:
    # val accuracy 19/20 exactly. In float32 that is 0.94999999 and missed ">= 0.95"; the evaluation gives
    # the exact fraction, on the full pass and on the lazy path's split pass alike.
    import torch

    from grokmuon.tasks import vocab_size
    from grokmuon.train import Data, evaluate, evaluate_split
    cfg = compose_cfg("task=modadd", "task.p=11", "task.train_frac=0.835", "seeds=[0]", "probes=false")
    cpu = torch.device("cpu")
    data = Data(cfg, [0], cpu)
    assert (data.n_train, data.n_val) == (101, 20)
    wrong = int(data.val_rows[0, 0])
    answers = {tuple(x.tolist()): int(y) for x, y in zip(data.inputs, data.labels)}
    answers[tuple(data.inputs[wrong].tolist())] += 1

    class Scripted:
        n_members = 1

        def eval(self):
            return self

        def train(self):
            return self

        def __call__(self, x):
            picks = torch.tensor([answers[tuple(r.tolist())] for r in x.reshape(-1, x.shape[-1])])
            logits = torch.nn.functional.one_hot(picks, vocab_size("modadd", 11)).float()
            return logits.reshape(1, -1, logits.shape[-1])      # [E=1, rows, V], rows shared or the member's

    full = evaluate(Scripted(), data, cfg, cpu)
    split = evaluate_split(Scripted(), data, cfg, cpu, data.val_rows, "val")
    for numbers in (full, split):
        assert numbers["val_acc"].item() == 0.95
        assert is_grokked(1.0, numbers["val_acc"].item())
    assert full["train_acc"].item() == 1.0
    assert m.update(None, None, 7, full["train_acc"].item(), full["val_acc"].item()) == (7, 7)

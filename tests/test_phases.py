"""phases.py: the epochs at which the Fourier loss curves make half of their move, on hand-built curves."""
import math

from grokmuon import phases


def test_drop_epoch_is_the_first_probe_epoch_past_half_the_fall():
    epochs = [5, 10, 15, 20, 25, 30]
    loss = [4.6, 4.5, 3.0, 2.2, 0.5, 0.1]       # from 4.6 to 0.1: half-way is 2.35, first reached at 20
    assert phases.drop_epoch(epochs, loss) == 20
    assert phases.drop_epoch(epochs, loss, half=0.9) == 25      # 4.6 - 0.9 * 4.5 = 0.55: 0.5 at 25


def test_drop_epoch_reads_epoch_order_and_skips_blank_probes():
    epochs = [30, 5, 20, 10, 15, 25]
    loss = [0.1, 4.6, 2.2, float("nan"), 3.0, 0.5]
    assert phases.drop_epoch(epochs, loss) == 20


def test_a_flat_or_rising_curve_has_no_drop():
    assert phases.drop_epoch([1, 2, 3], [4.6, 4.58, 4.55]) is None      # 0.05 nats: under MIN_MOVE
    assert phases.drop_epoch([1, 2, 3], [1.0, 2.0, 3.0]) is None
    assert phases.drop_epoch([], []) is None


def test_rise_epoch_dates_the_rise_after_the_low_point_not_the_first_fall():
    # The excluded loss falls with memorisation (4.6 -> 1.0 at epoch 15), then rises to 5.0 by epoch 35:
    # half of that rise is 3.0, first reached at epoch 25; the early values above 3.0 (epochs 5, 10) are
    # before the low point and do not count.
    epochs = [5, 10, 15, 20, 25, 30, 35, 40]
    loss = [4.6, 3.5, 1.0, 2.0, 3.2, 4.4, 5.0, 4.9]
    assert phases.rise_epoch(epochs, loss) == 25


def test_rise_epoch_takes_the_largest_rise():
    # A small bump (1.0 -> 1.5) before a deeper low (0.5) and a larger rise (to 3.5): the large one is dated.
    epochs = [1, 2, 3, 4, 5, 6]
    loss = [1.0, 1.5, 0.5, 1.0, 2.5, 3.5]
    assert phases.rise_epoch(epochs, loss) == 5         # low 0.5, peak 3.5: half-way 2.0, first at epoch 5


def test_a_falling_curve_has_no_rise():
    assert phases.rise_epoch([1, 2, 3, 4], [4.6, 3.0, 2.0, 1.0]) is None
    assert phases.rise_epoch([1, 2, 3], [1.0, 1.05, 1.02]) is None      # 0.05 nats: under MIN_MOVE
    assert phases.rise_epoch([1], [1.0]) is None


def test_member_phases_names_both_columns():
    got = phases.member_phases([5, 10, 15, 20], [4.6, 2.0, 1.0, 0.6], [4.6, 2.0, 3.5, 4.0])
    assert got == {"restricted_drop_epoch": 10, "excluded_rise_epoch": 15}
    assert tuple(got) == phases.PHASES
    assert all(isinstance(v, int) for v in got.values())
    assert not math.isnan(got["restricted_drop_epoch"])


def test_collect_dates_the_phases_from_a_members_probe_rows_only():
    import pandas as pd

    from grokmuon import results

    nan = float("nan")
    curve = pd.DataFrame({"epoch": [1, 2, 3, 4, 5, 6],       # probes every 2 epochs: blank in between
                          "train_acc": [0.1, 0.5, 0.9, 1.0, 1.0, 1.0], "val_acc": [0.0, 0.0, 0.1, 0.2, 0.3, 0.4],
                          "restricted_loss": [nan, 4.6, nan, 1.0, nan, 0.2],
                          "excluded_loss": [nan, 2.0, nan, 4.0, nan, 4.4]})
    got = results.member_extras(curve, {"grokking_epoch": None}, {})
    assert (got["restricted_drop_epoch"], got["excluded_rise_epoch"]) == (4, 4)
    plain = results.member_extras(curve.drop(columns=["restricted_loss", "excluded_loss"]), {"grokking_epoch": None}, {})
    assert plain["restricted_drop_epoch"] is None and plain["excluded_rise_epoch"] is None

"""Fig. 4 told straight: boxes over every member (those that did not grok at the budget), the Kaplan-Meier
median with its CI, the paper's grokked-only box as one labelled panel, counts and a legend for every
marker; the median's CI from a hand-worked case; the compressed axis above a break."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from grokmuon import figures_epochs, stats
from grokmuon.results import collect, finished
from runfolders import config, write_run


def test_km_median_ci_of_a_hand_worked_case():
    # No censoring, n = 10, one event at each epoch 1..10: F(k) = k/10 and Greenwood's variance reduces
    # to F(1-F)/n, so the 95% band is F ± 1.96 sqrt(F(1-F)/10). Upper band reaches 1/2 first at k = 3
    # (0.3 + 0.284; at k = 2: 0.2 + 0.248 < 0.5), the lower band at k = 8 (0.8 - 0.248; at 7: 0.7 - 0.284).
    t, e = np.arange(1, 11), np.ones(10, bool)
    assert stats.km_median(t, e) == 5
    assert stats.km_median_ci(t, e) == (3.0, 8.0)
    # Half censored at 300: the lower band never reaches 1/2, so the CI is open above.
    t, e = np.r_[np.arange(1, 6), [300] * 5], np.r_[np.ones(5, bool), np.zeros(5, bool)]
    assert stats.km_median_ci(t, e) == (3.0, None)


@pytest.fixture
def done(tmp_path):
    """AdamW groks early when it groks (4 of 10), Muon groks later but always (10 of 10)."""
    write_run(tmp_path / "a", config("modadd", optimizer="adamw", seeds=range(10)), [40, 50, 60, 70] + [None] * 6)
    write_run(tmp_path / "m", config("modadd", optimizer="muon", seeds=range(10)), list(range(100, 200, 10)))
    return finished(collect([tmp_path]))


def test_a_box_over_every_member_does_not_flatter_the_optimizer_that_fails_more_often(done):
    y = figures_epochs.YLayout.of(done)
    fig, ax = plt.subplots()
    paper = figures_epochs.boxplot(ax, done, np.random.default_rng(0), y, box="grokked")
    every = figures_epochs.boxplot(ax, done, np.random.default_rng(0), y, box="all")
    plt.close(fig)
    assert paper == {"adamw": 55.0, "muon": 145.0}             # grokked only: AdamW looks faster
    assert every == {"adamw": 300.0, "muon": 145.0}            # 6 of 10 at the budget: it is not
    assert stats.km_median(*done.loc[done.optimizer == "adamw", ["time", "event"]].T.to_numpy()) is None


def test_fig1_has_the_three_panels_counts_and_a_legend_for_every_marker(done, tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(figures_epochs, "save", lambda fig, out, name: seen.setdefault("fig", fig) and [])
    figures_epochs.fig1_boxplot_optimizer(done, tmp_path)
    fig = seen["fig"]
    every, km, paper = fig.axes
    assert "every member" in every.get_title() and "Kaplan–Meier" in km.get_title()
    assert "paper's style" in paper.get_title() and "grokked members" in paper.get_title()
    for ax in (every, km, paper):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["AdamW\n4/10 grokked", "Muon\n10/10 grokked"]
    # the 6 that did not grok: one cross at the budget with its count, in both box panels
    for ax in (every, paper):
        assert [t.get_text() for t in ax.texts] == ["6"]
    assert any("median beyond the budget" in t.get_text() for t in km.texts)
    assert any(t.get_text().startswith("median 140\n") for t in km.texts)      # Muon's: its 5th of 10
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    for wanted in ("grokked (one member)", "did not grok: drawn at the budget, their count beside it",
                   "Kaplan–Meier median, bar: its 95% CI", "median or CI end beyond the budget",
                   "axis break: compressed above"):     # (the budget, 300, is far above 190: a break)
        assert wanted in legend
    assert every.get_yticklabels()[-1].get_text() == "budget 300"
    assert not any("diverged" in t for t in legend)            # no marker without a member behind it
    plt.close(fig)


def test_a_ci_end_left_open_by_too_few_members_is_not_called_beyond_the_budget(tmp_path, monkeypatch):
    # Five members that all grok by epoch 21: the band cannot bound the median's CI above (Greenwood's
    # band is undefined where every member has grokked), yet nothing ran to the budget. The end is open
    # past epoch 21, drawn there as a hollow arrow, not "beyond the budget" at 300; Muon's censored members
    # beside it still are.
    write_run(tmp_path / "a", config("modadd", optimizer="adamw", seeds=range(5)), [17, 18, 19, 20, 21])
    write_run(tmp_path / "m", config("modadd", optimizer="muon", seeds=range(5)), [40, None, None, None, None])
    done = finished(collect([tmp_path]))
    a = done[done.optimizer == "adamw"]
    assert stats.km_median_ci(a["time"], a["event"])[1] is None
    seen = {}
    monkeypatch.setattr(figures_epochs, "save", lambda fig, out, name: seen.setdefault("fig", fig) and [])
    figures_epochs.fig1_boxplot_optimizer(done, tmp_path)
    km = seen["fig"].axes[1]
    texts = [t.get_text() for t in km.texts]
    assert any(t.startswith("median 19\n95% CI") and t.endswith("to beyond 21") for t in texts), texts
    assert any(t.startswith("median beyond the budget") and t.endswith("to beyond the budget") for t in texts)
    legend = [t.get_text() for t in seen["fig"].legends[0].get_texts()]
    assert "CI end open past the last grokking epoch (too few members to bound it)" in legend
    assert "median or CI end beyond the budget" in legend
    plt.close(seen["fig"])


def test_an_open_ci_end_needs_every_member_grokked_and_its_bar_stays_below_it(tmp_path, monkeypatch):
    # AdamW: all three grok at epoch 20, so the CI is open at both ends (low None too): its bar spans
    # epoch 20 only, not the budget. Muon: its median is 14 but two members ran only to epoch 50 without
    # grokking (censored there): its open end is no "last grokking epoch", so it is drawn beyond the budget.
    write_run(tmp_path / "a", config("modadd", optimizer="adamw", seeds=range(3)), [20, 20, 20])
    write_run(tmp_path / "m", config("modadd", optimizer="muon", seeds=range(5)), [10, 12, 14, None, None])
    done = finished(collect([tmp_path]))
    done.loc[(done.optimizer == "muon") & ~done.grokked, "time"] = 50.0       # stopped early, not at 300
    seen = {}
    monkeypatch.setattr(figures_epochs, "save", lambda fig, out, name: seen.setdefault("fig", fig) and [])
    figures_epochs.fig1_boxplot_optimizer(done, tmp_path)
    km = seen["fig"].axes[1]
    bars = [seg for c in km.collections if hasattr(c, "get_segments") for seg in c.get_segments()
            if len(seg) == 2 and seg[0][0] == seg[1][0]]                       # vertical lines: x fixed
    adamw = [seg for seg in bars if seg[0][0] == 0]
    assert adamw and max(max(y for _, y in seg) for seg in adamw) == 20
    texts = [t.get_text() for t in km.texts]
    assert "median 20\n95% CI – to beyond 20" in texts
    assert any(t.startswith("median 14\n") and t.endswith("to beyond the budget") for t in texts), texts
    plt.close(seen["fig"])


def test_a_far_budget_compresses_the_axis_above_a_break_and_keeps_true_values():
    import pandas as pd
    done = pd.DataFrame({"grokked": [True, True, False], "grokking_epoch": [50, 100, None],
                         "max_epochs": [3000] * 3})
    y = figures_epochs.YLayout.of(done)
    assert y.brk == pytest.approx(110) and float(y.forward(3000)) == pytest.approx(120)
    values = np.array([0, 50, 110, 500, 3000])
    assert np.allclose(y.inverse(y.forward(values)), values)
    assert np.all(np.diff(y.forward(values)) > 0)              # monotone: order on screen is order in epochs
    fig, ax = plt.subplots()
    y.apply(ax)
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "budget 3000"
    plt.close(fig)


def test_side_by_side_panels_leave_out_a_condition_one_arm_lacks_as_the_report_does(tmp_path, monkeypatch):
    # AdamW ran at batch 512 and at 128, Muon at 512 only (a sweep still landing). The report compares
    # batch 512 alone; the boxes and curves must too, or AdamW's batch-128 members (here all late) would
    # sit in its box against nothing of Muon's, and the box would contradict the test beside it.
    write_run(tmp_path / "a512", config("modadd", optimizer="adamw", seeds=range(5)), [40, 50, 60, 70, 80])
    write_run(tmp_path / "a128", config("modadd", optimizer="adamw", seeds=range(5), batch_size=128),
              [200, 210, 220, 230, 240])
    write_run(tmp_path / "m512", config("modadd", optimizer="muon", seeds=range(5)), [45, 55, 65, 75, 85])
    done = finished(collect([tmp_path]))
    seen = []
    monkeypatch.setattr(figures_epochs, "save", lambda fig, out, name: seen.append(fig) or [])
    figures_epochs.fig1_boxplot_optimizer(done, tmp_path)
    every = seen[0].axes[0]
    assert [t.get_text() for t in every.get_xticklabels()] == ["AdamW\n5/5 grokked", "Muon\n5/5 grokked"]
    title = seen[0].texts[0].get_text()
    assert "left out: 5 members in strata (task/head/batch_size)" in title and "modadd/softmax/128" in title
    figures_epochs.fig3_km_task(done, tmp_path)
    assert seen[1].axes[0].get_title() == "all tasks (n=10)" and seen[1].axes[1].get_title() == "modadd (n=10)"
    assert "pooled over" not in seen[1].texts[0].get_text()          # what is drawn holds batch 512 only
    figures_epochs.fig2_boxplot_by(done, tmp_path, "head")
    assert [t.get_text() for t in seen[2].axes[0].get_xticklabels()][0] == "AdamW\n5/5 grokked"
    # With Muon at batch 128 too, nothing is left out and the title says nothing of it.
    write_run(tmp_path / "m128", config("modadd", optimizer="muon", seeds=range(5), batch_size=128), [90] * 5)
    figures_epochs.fig1_boxplot_optimizer(finished(collect([tmp_path])), tmp_path)
    assert "left out" not in seen[3].texts[0].get_text()
    assert [t.get_text() for t in seen[3].axes[0].get_xticklabels()][0] == "AdamW\n10/10 grokked"


def test_a_table_of_one_arm_is_drawn_whole(tmp_path):
    write_run(tmp_path / "a512", config("modadd", optimizer="adamw", seeds=range(3)), [40, 50, 60])
    write_run(tmp_path / "a128", config("modadd", optimizer="adamw", seeds=range(3), batch_size=128), [70, 80, 90])
    done = finished(collect([tmp_path]))
    [kept], left = figures_epochs.compared(done)
    assert len(kept) == 6 and left == ""

"""The phases of grokking end to end: a tiny run with the Fourier probes -> runs.csv's phase epochs ->
the report's Phases section and figure 7 (one file per task, every panel drawn)."""
from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

from grokmuon import figures_phases, phases, report_dynamics, results
from grokmuon.job import main as train_main

matplotlib.use("Agg")

# Every test reads the module's two training runs: under xdist they run on one worker, which trains them once.
pytestmark = pytest.mark.xdist_group("phases_report")
TINY = ["model=tiny", "logger=none", "progress=false", "device=cpu", "task=modadd", "task.p=13", "batch_size=32",
        "max_epochs=30", "probe_every=3", "patience=0", "seeds=[0,1]"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("phases")
    for opt in ("adamw", "muon"):
        try:
            train_main([*TINY, f"optimizer={opt}", "optimizer.lr=0.02", f"hydra.run.dir={root / opt}"])
        except SystemExit as e:
            assert e.code in (0, None)
    return results.judged(results.finished(results.collect([root]), str(root)))


def test_collect_dates_each_members_phases_from_its_own_curve(table):
    assert len(table) == 4
    for _, row in table.iterrows():
        m = pd.read_csv(f"{row['run_dir']}/metrics.csv")
        m = m[(m["member"] == row["member"]) & m["restricted_loss"].notna()]
        want = phases.member_phases(m["epoch"], m["restricted_loss"], m["excluded_loss"])
        got = {c: None if pd.isna(row[c]) else int(row[c]) for c in phases.PHASES}
        assert got == want
    assert table["restricted_drop_epoch"].notna().any()      # 30 epochs at lr 0.02 move the restricted loss


def test_report_has_the_phases_section_with_a_row_per_task_and_optimizer(table):
    text = report_dynamics.phases_section(table)
    assert "## Phases (Fourier probes)" in text
    assert "| modadd | adamw | 2 |" in text and "| modadd | muon | 2 |" in text
    assert "| restricted_drop_epoch |" in text and "| excluded_rise_epoch |" in text
    # A table without the probes has no such section.
    assert report_dynamics.phases_section(table.drop(columns=list(phases.PHASES))) == ""
    # The update's and gradient's stable ranks: each member's median over its probe epochs (to grokking).
    for _, row in table.iterrows():
        m = pd.read_csv(f"{row['run_dir']}/metrics.csv")
        m = m[m["member"] == row["member"]]
        assert row["update_rank_to_grok"] == pytest.approx(m["update_stable_rank"].median())
        assert row["grad_rank_to_grok"] == pytest.approx(m["grad_stable_rank"].median())
    assert report_dynamics.phases_section(table.assign(restricted_drop_epoch=pd.NA, excluded_rise_epoch=pd.NA)) == ""
    # At two batch sizes (a condition): a row each, and the tests compare within task and batch size.
    two = pd.concat([table, table.assign(batch_size=64, run_dir=table["run_dir"] + "-64")], ignore_index=True)
    text = report_dynamics.phases_section(two)
    assert "| modadd | 32 | adamw | 2 |" in text and "| modadd | 64 | muon | 2 |" in text
    assert "within task and batch_size" in text
    held = report_dynamics.held_section(two.assign(post_grok_epochs=5, regressed=False, post_grok_below=0.0,
                                                   post_grok_min_val=0.96, grokked=True))
    assert "| task | batch_size | optimizer | grokked members |" in held and "| modadd | 64 | muon | 2 | 5 |" in held


def test_figure_7_one_file_per_task_and_the_after_grokking_panel(table, tmp_path):
    assert figures_phases.has_fourier(table)
    paths = figures_phases.fig7_phases(table, tmp_path)
    assert sorted(p.name for p in paths) == ["fig7_phases_modadd.pdf", "fig7_phases_modadd.png"]
    # Grokking epochs set by hand: the after-grokking panel draws each optimizer against epochs since them.
    import matplotlib.pyplot as plt
    drawn = []
    real_save = figures_phases.save
    figures_phases.save = lambda fig, out, name: drawn.append(fig) or real_save(fig, out, name)
    try:
        figures_phases.fig7_phases(table.assign(grokking_epoch=10), tmp_path / "again")
    finally:
        figures_phases.save = real_save
    after = [ax for ax in drawn[0].axes if ax.get_xlabel() == "epochs since grokking"][0]
    ranks = [ax for ax in drawn[0].axes if ax.get_title().startswith("stable rank")][0]
    assert len(ranks.lines) >= 4            # the update and its gradient, for each optimizer
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in after.lines}
    assert {matplotlib.colors.to_hex(c) for c in ("tab:orange", "tab:blue")} <= colours
    assert min(x for line in after.lines for x in line.get_xdata()) >= -20
    plt.close("all")


def test_figure_7_says_when_no_run_has_the_probes(table):
    from grokmuon.results import TableError

    plain = table.assign(run_dir="/nonexistent")
    assert not figures_phases.has_fourier(plain)
    assert not figures_phases.has_fourier(table.assign(task="gcd"))       # the probes do not apply there
    with pytest.raises(TableError, match="Fourier probes"):
        figures_phases.fig7_phases(plain, "/tmp", warn=lambda msg: None)


def test_figure_7_marks_the_kaplan_meier_medians_report_md_gives():
    # Four members memorised at 100, 200, 300, 400 and one never did (stopped at 600): the plain median
    # of the four that did (250) would put the marker early; Kaplan-Meier's, as report.md's, is 300.
    # Restricted drop at 10 and 20 and none for three members (censored at 600): the survival curve
    # falls to 0.6 and stays, so there is no median to mark; the plain median would mark 15.
    rows = pd.DataFrame({"memorisation_epoch": [100, 200, 300, 400, None], "grokking_epoch": [150, 250, 350, 450, None],
                         "restricted_drop_epoch": [10, 20, None, None, None],
                         "excluded_rise_epoch": [50, 60, 70, None, None],
                         "epochs_run": 600, "status": ["grokked"] * 4 + ["censored"]})
    marks = figures_phases.markers(results.finished(rows))
    assert marks["memorisation"] == 300 and marks["grokking"] == 350
    assert marks["restricted_loss"] is None          # fewer than half have the epoch: no median to mark
    assert marks["excluded_loss"] == 70

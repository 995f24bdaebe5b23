"""report and figures on tables at the edges: nothing grokked (all censored), one optimizer only, every
member diverged. Each is written, or refused with a message that says what is missing."""
from __future__ import annotations

import pandas as pd
import pytest

from grokmuon import cli, figures_curves, figures_epochs
from grokmuon.report import report
from grokmuon.results import collect, finished, judged
from runfolders import config, write_run

EDGES = {
    "all censored": [("modadd", "adamw", [None, None, None]), ("modadd", "muon", [None, None, None])],
    "one arm": [("modadd", "muon", [40, 50, None]), ("gcd", "muon", [30, None, 60])],
    "all diverged": [("modadd", "adamw", ["diverged"] * 2), ("modadd", "muon", ["diverged"] * 2)],
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """{edge: (table, path of its runs.csv)}, from synthetic run folders (budget 300)."""
    out = {}
    for edge, runs in EDGES.items():
        root = tmp_path_factory.mktemp(edge.replace(" ", "_"))
        for task, opt, outcomes in runs:
            write_run(root / "runs" / f"{task}-{opt}", config(task, opt, seeds=range(len(outcomes))), outcomes)
        table = collect([root / "runs"])
        table.to_csv(root / "runs.csv", index=False)
        out[edge] = (table, root / "runs.csv")
    return out


def rows(text: str, section: str, first: str) -> list[list[str]]:
    """The rows of a section's table whose first cell is `first`, as lists of cells."""
    body = text.split(f"## {section}\n")[1].split("\n## ")[0]
    cells = [[c.strip() for c in ln.split("|")[1:-1]] for ln in body.splitlines() if ln.startswith("| ")]
    return [c for c in cells if c[0] == first]


def drawn(monkeypatch, make, done, tmp_path):
    """The figure objects a figure function makes (instead of its files)."""
    made = []
    for module in (figures_epochs, figures_curves):     # where each figure looks `save` up
        monkeypatch.setattr(module, "save", lambda fig, out, name: made.append(fig) or [])
    make(done, tmp_path)
    return made[0]


def test_nothing_grokked_reports_counts_and_no_test(tables):
    text = report(tables["all censored"][0], "t.csv")
    for opt in ("adamw", "muon"):           # n, grokked, censored, diverged, mean ± sd, median, KM median
        assert rows(text, "By optimizer", opt) == [[opt, "3", "0", "3", "0", "– ± –", "–", "> 300"]]
    (row,) = rows(text, "Muon vs AdamW", "all")
    assert row[1:4] == ["3/3", "0/0", "> 300/> 300"]
    # no event anywhere: no test has anything to say (row[6], the Holm column, names the primary test)
    assert row[6] == "primary" and set(row[4:6] + row[7:]) == {"–", "– [–, –]"}
    assert rows(text, "Beside the paper", "runs grokked, AdamW / Muon") == [["runs grokked, AdamW / Muon",
                                                                           "not given", "0 / 0"]]


def test_nothing_grokked_is_drawn_at_the_budget(tables, monkeypatch, tmp_path):
    done = judged(finished(tables["all censored"][0]))
    ax = drawn(monkeypatch, figures_epochs.fig1_boxplot_optimizer, done, tmp_path).axes[0]
    points = [tuple(map(float, p)) for c in ax.collections for p in c.get_offsets()]
    # every member at the budget: one marker per optimizer, its count (3) beside it
    assert points == [(0.0, 300.0), (1.0, 300.0)] and [t.get_text() for t in ax.texts] == ["3", "3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AdamW\n0/3 grokked", "Muon\n0/3 grokked"]
    km = drawn(monkeypatch, figures_epochs.fig3_km_task, done, tmp_path).axes[0]
    steps = [line for line in km.get_lines() if line.get_drawstyle() == "steps-post"]
    assert len(steps) == 2 and all(set(line.get_ydata()) == {0.0} for line in steps)   # nobody grokked


def test_the_km_panels_end_at_the_budget_only_where_a_member_was_censored():
    done = pd.DataFrame({"time": [20.0, 41.0, 55.0], "event": [True, True, True], "max_epochs": 300})
    assert figures_epochs.km_end(done) == 64.0                    # every member grokked: ceil(55 * 1.15)
    assert figures_epochs.km_end(done.assign(event=[True, True, False])) == 300.0     # a censoring tick
    assert figures_epochs.km_end(done.assign(time=[20.0, 41.0, 290.0])) == 300.0     # never past the budget
    assert figures_epochs.km_end(done.assign(time=[0.0, 0.0, 0.0])) == 1.0             # an axis, not a point
    assert figures_epochs.km_end(done.iloc[:0]) == 1.0                                  # an empty panel


def test_one_optimizer_only_is_described_not_compared(tables, monkeypatch, tmp_path):
    table = tables["one arm"][0]
    text = report(table, "t.csv")
    assert rows(text, "By optimizer", "adamw") == []
    # grokked at 30, 40, 50, 60, two censored at 300: the KM curve falls to 3/6 at 50, its median
    assert rows(text, "By optimizer", "muon") == [["muon", "6", "4", "2", "0", "45.0 ± 12.9", "45.0", "50"]]
    (row,) = rows(text, "Muon vs AdamW", "all")
    assert row[1:4] == ["0/6", "0/4", "–/50"] and row[6] == "primary"
    assert set(row[4:6] + row[7:]) == {"–", "– [–, –]"}
    assert rows(text, "Beside the paper", "mean grokking epoch, Muon")[0][2] == "45.00"      # (30+40+50+60)/4
    done = judged(finished(table))
    ax = drawn(monkeypatch, figures_epochs.fig1_boxplot_optimizer, done, tmp_path).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Muon\n4/6 grokked"]
    fig = drawn(monkeypatch, figures_curves.fig4_curves_task, done, tmp_path)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "Muon val", "Muon train", "0.95: the grokking threshold", "a member's grokking epoch",
        "min–max of val accuracy"]                                      # Muon's only: no AdamW entry


def test_figures_cli_on_one_arm_and_on_nothing_grokked_writes_every_default_figure(tables, tmp_path, capsys):
    for edge in ("all censored", "one arm"):
        out = tmp_path / edge.replace(" ", "_")
        cli.main(["figures", "--runs", str(tables[edge][1]), "--out", str(out)])
        assert capsys.readouterr().err == ""
        assert sorted(p.stem for p in out.glob("*.png")) == sorted(
            ["fig1_boxplot_optimizer", "fig2_boxplot_task", "fig2_boxplot_head", "fig3_km_task", "fig4_curves_task",
             "fig6_probes"]), edge


def test_every_member_diverged_counts_them_and_says_why_no_curve_is_drawn(tables, tmp_path, capsys):
    table, runs = tables["all diverged"]
    text = report(table, "t.csv")
    for opt in ("adamw", "muon"):
        assert rows(text, "By optimizer", opt)[0][1:5] == ["2", "0", "0", "2"]      # n, grokked, censored, diverged
    with pytest.raises(SystemExit) as e:
        cli.main(["figures", "--runs", str(runs), "--out", str(tmp_path / "figs")])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "grokmuon: error: figure curves: every member of this table diverged: no accuracy curve to draw; "
        "figure probes: every member of this table diverged: no probe curve to draw"]
    assert sorted(p.stem for p in (tmp_path / "figs").glob("*.png")) == [
        "fig1_boxplot_optimizer", "fig2_boxplot_head", "fig2_boxplot_task", "fig3_km_task"]


def test_a_stratum_holding_one_optimizer_is_left_out_of_every_comparison():
    # A condition or task run for one optimizer only (a sweep still landing; results/cpu_long ran AdamW on
    # modexp and Muon on modsub) has nothing to be compared with. The comparison columns count only
    # strata holding both: the unstratified ones (n, means, pooled log-rank) would otherwise set one
    # optimizer's task against the other's. results/cpu with Muon's gcd rows dropped: the "all" row and
    # the paper's means are those of the six other tasks.
    from grokmuon.results import load
    from conftest import REPO

    table = load(REPO / "results/cpu/runs.csv")
    cut = table[~((table["task"] == "gcd") & (table["optimizer"] == "muon"))]
    text = report(cut, "cut.csv")
    six = table[table["task"] != "gcd"]
    n = [int((six["optimizer"] == o).sum()) for o in ("adamw", "muon")]
    row = next(ln for ln in text.splitlines() if ln.startswith("| all |")).split("|")
    assert row[2].strip() == f"{n[0]}/{n[1]}"
    assert "| task=gcd | 3/0 |" in text        # a group of one optimizer: described, not compared
    assert "**Left out of every comparison of AdamW and Muon:** 3 members in strata (task/head) that hold " \
           "one of them only: gcd/softmax." in text
    assert "Left out" not in report(table, "cut.csv")
    adamw = six[(six["optimizer"] == "adamw") & six["grokking_epoch"].notna()]["grokking_epoch"].mean()
    assert f"| mean grokking epoch, AdamW | 153.09 | {adamw:.2f} |" in text
    assert text != report(table, "cut.csv").replace("results/cpu/runs.csv", "cut.csv")

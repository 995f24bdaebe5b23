"""figures and report from a synthetic results table; clear one-line errors on empty input."""
import csv
import shutil
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats as sps

from grokmuon import cli, figures, figures_base, figures_curves, figures_epochs, stats
from grokmuon.report import report
from grokmuon.results import COLUMNS, TableError, collect, condition_axes, finished, scanned_axes
from runfolders import write_sweep


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    write_sweep(root, tasks=("modadd", "parity"), heads=("softmax", "stablemax"), seeds=range(4))
    return collect([root])


def test_every_figure_is_written_as_png_and_pdf(table, tmp_path):
    done = finished(table)
    for name, make in figures.FIGURES.items():
        if name == "scan":          # a figure of scans only: this table scans nothing
            with pytest.raises(TableError, match="nothing was scanned"):
                make(done, tmp_path)
            continue
        paths = make(done, tmp_path)
        assert {p.suffix for p in paths} == {".png", ".pdf"}, name
        png, pdf = sorted(paths, key=lambda p: p.suffix != ".png")
        assert pdf.read_bytes().startswith(b"%PDF") and b"/Type /Page" in pdf.read_bytes(), name
        image = plt.imread(png)[..., :3]                     # what was drawn, as pixels
        assert image.shape[0] > 300 and image.shape[1] > 400, (name, image.shape)
        assert (image < 0.9).any(-1).mean() > 0.01, name     # not a blank page
        for opt in ("adamw", "muon"):       # both optimizers are drawn, each in its colour, in every figure
            colour = np.array(mcolors.to_rgb(figures_base.COLOR[opt]))
            faint = colour * 0.35 + 0.65                  # fig6's stretches where some members had stopped
            drawn = sum((np.abs(image - c).max(-1) < 0.02).sum() for c in (colour, faint))
            assert drawn > 300, (name, opt)                # more than a legend's swatch
    assert len(list(tmp_path.iterdir())) == 2 * (len(figures.FIGURES) - 1)


def test_a_figure_saved_again_later_is_the_same_bytes(tmp_path, monkeypatch):
    """Regenerating a results folder from the same runs leaves its figures unchanged on disk: the PDF holds
    no creation date (matplotlib would stamp SOURCE_DATE_EPOCH, else the clock, into it)."""
    saved = []
    for when in ("0", "86400"):                     # two regenerations a day apart
        monkeypatch.setenv("SOURCE_DATE_EPOCH", when)
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        saved.append([p.read_bytes() for p in figures_base.save(fig, tmp_path / when, "f")])
    assert saved[0] == saved[1]


def test_the_probes_figure_needs_runs_with_probes(tmp_path, capsys):
    from runfolders import config, write_run
    write_run(tmp_path / "old" / "a", config("modadd", optimizer="adamw"), [40, None], probes=False)
    write_run(tmp_path / "old" / "b", config("modadd", optimizer="muon"), [20, 30], probes=False)
    done = finished(collect([tmp_path / "old"]))
    with pytest.raises(TableError, match="trained with probes"):
        figures_curves.fig6_probes(done, tmp_path / "figs")
    done.to_csv(tmp_path / "old.csv", index=False)
    cli.main(["figures", "--runs", str(tmp_path / "old.csv"), "--out", str(tmp_path / "figs")])
    assert capsys.readouterr().err == "" and not (tmp_path / "figs" / "fig6_probes.png").exists()
    # A run with probes=false has the probe columns, empty (the trainer writes every column): the same.
    for run in ("a", "b"):
        metrics = tmp_path / "old" / run / "metrics.csv"
        rows = list(csv.DictReader(metrics.open()))
        with metrics.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[*rows[0], *figures_curves.PROBE_PANELS])
            w.writeheader()
            w.writerows(rows)
    assert figures_curves.has_probes(done) is False
    with pytest.raises(TableError, match="trained with probes"):
        figures_curves.fig6_probes(done, tmp_path / "figs")
    cli.main(["figures", "--runs", str(tmp_path / "old.csv"), "--out", str(tmp_path / "figs")])
    assert capsys.readouterr().err == "" and not (tmp_path / "figs" / "fig6_probes.png").exists()


def as_lr_scan(table):
    """The fixture table as if seeds 0, 1 ran at lr 0.01 and seeds 2, 3 at the default."""
    scan = table.copy()
    scan.loc[scan.seed.isin([0, 1]), "lr"] = 0.01
    return scan


def test_the_scan_figure_is_made_by_default_for_a_scan_only(table, tmp_path, capsys):
    for name, t in (("grid", table), ("scan", as_lr_scan(table))):
        t.to_csv(tmp_path / f"{name}.csv", index=False)
        cli.main(["figures", "--runs", str(tmp_path / f"{name}.csv"), "--out", str(tmp_path / name)])
    capsys.readouterr()
    assert not (tmp_path / "grid" / "fig5_scan.png").exists()
    assert (tmp_path / "scan" / "fig5_scan.png").stat().st_size > 5_000
    assert (tmp_path / "scan" / "fig4_curves_task.png").exists()
    # A grid of lr and weight decay together (a table of tuning races alone): no scan figure by default,
    # which draws one column, and the others made without an error.
    both = as_lr_scan(table)
    both.loc[both.seed.isin([0, 2]), "weight_decay"] = 0.5
    both.to_csv(tmp_path / "both.csv", index=False)
    cli.main(["figures", "--runs", str(tmp_path / "both.csv"), "--out", str(tmp_path / "both")])
    assert not (tmp_path / "both" / "fig5_scan.png").exists() and (tmp_path / "both" / "fig4_curves_task.png").exists()
    # asked for explicitly on a table that scans nothing, into a folder not yet made: one line, no file
    with pytest.raises(SystemExit):
        cli.main(["figures", "--runs", str(tmp_path / "grid.csv"), "--only", "scan",
                                   "--out", str(tmp_path / "new" / "figs")])
    assert "nothing was scanned" in capsys.readouterr().err
    assert not list((tmp_path / "new" / "figs").glob("*.png"))
    two = as_lr_scan(table)
    two.loc[two.seed == 3, "weight_decay"] = 0.5
    with pytest.raises(TableError, match="plots one scanned column"):
        figures_epochs.fig5_scan(finished(two), tmp_path)


def test_curves_skip_a_missing_metrics_file_and_fail_when_none_is_left(table, tmp_path):
    done = finished(table)
    gone = done.run_dir.iloc[0]
    shutil.move(gone, str(tmp_path / "moved"))
    try:
        warned = []
        figures_curves.fig4_curves_task(done, tmp_path / "out", warn=warned.append)
        assert len(warned) == 1 and gone in warned[0]
        with pytest.raises(TableError, match="no metrics.csv"):
            figures_curves.fig4_curves_task(done[done.run_dir == gone], tmp_path / "out2", warn=warned.append)
        assert not (tmp_path / "out2").exists()
    finally:
        shutil.move(str(tmp_path / "moved"), gone)


def test_figures_cli_on_an_empty_table_is_one_line_and_no_file(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    runs.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(SystemExit) as e:
        cli.main(["figures", "--runs", str(runs), "--out", str(tmp_path / "figs")])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no runs" in err[0]
    assert not (tmp_path / "figs").exists()
    with pytest.raises(SystemExit):
        cli.main(["figures", "--runs", str(tmp_path / "nowhere.csv")])
    assert "no results table" in capsys.readouterr().err


def test_figures_cli_writes_beside_the_table(table, tmp_path, capsys):
    table.to_csv(tmp_path / "runs.csv", index=False)
    cli.main(["figures", "--runs", str(tmp_path / "runs.csv"), "--only", "boxplot", "km"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"reading {tmp_path / 'runs.csv'}"           # what it read, then what it wrote
    written = lines[1:]
    assert sorted(p.rsplit("/", 1)[1] for p in written) == sorted(
        f"{n}.{ext}" for n in ("fig1_boxplot_optimizer", "fig3_km_task") for ext in ("png", "pdf"))
    assert (tmp_path / "figures" / "fig1_boxplot_optimizer.png").exists()


def test_report_has_the_papers_numbers_and_scipys_welch_test(table, tmp_path, capsys):
    table.to_csv(tmp_path / "runs.csv", index=False)
    cli.main(["report", "--runs", str(tmp_path / "runs.csv")])
    text = (tmp_path / "report.md").read_text()
    assert text.strip() in capsys.readouterr().out
    for s in ("grokked only", "Kaplan–Meier", "Mann–Whitney", "log-rank", "## By task", "## By head", "## By cell"):
        assert s in text, s
    g = finished(table)
    g = g[g.grokked]
    adamw, muon = (g[g.optimizer == o].grokking_epoch.astype(float) for o in ("adamw", "muon"))
    t = sps.ttest_ind(adamw, muon, equal_var=False)
    section = text.split("## Beside the paper")[1].split("\n## ")[0]
    rows = {r[0]: r[1:] for r in ([c.strip() for c in ln.split("|")[1:-1]] for ln in section.splitlines()
                                  if ln.startswith("| ") and not ln.startswith("|  |"))}
    # The paper's column, as the paper prints it (Fig. 5's table and its test: AdamW 153.09, Muon 102.89,
    # t 5.0175, p 6.33e-08); ours from this table, by scipy.
    assert rows["mean grokking epoch, AdamW"] == ["153.09", f"{adamw.mean():.2f}"]
    assert rows["mean grokking epoch, Muon"] == ["102.89", f"{muon.mean():.2f}"]
    assert rows["t (AdamW − Muon)"][0] == "5.0175" and rows["t (AdamW − Muon)"][1].startswith(f"{t.statistic:.4f} ")
    assert rows["p, two-sided"] == ["6.33e-08 (as reported)", f"{t.pvalue:.3g}"]
    assert rows["runs grokked, AdamW / Muon"][1] == f"{len(adamw)} / {len(muon)}"
    # the note: the normal two-sided p at the paper's t, which its reported p is not
    assert f"is {2 * sps.norm.sf(5.0175):.2g} under a normal distribution" in section


def test_report_counts_diverged_apart(table):
    text = report(table, "t.csv")
    adamw = next(ln for ln in text.split("## By optimizer")[1].splitlines() if ln.startswith("| adamw"))
    n, grokked, censored, diverged = (int(c) for c in adamw.split("|")[2:6])
    assert diverged == 1 and grokked + censored + diverged == n


def test_report_warns_when_a_cell_pools_different_configs(table):
    mixed = table.copy()
    mixed.loc[mixed.index[:3], "dropout"] = 0.0
    assert "pool over them" in report(mixed, "t.csv") and "dropout (up to 2 values)" in report(mixed, "t.csv")
    assert "pool over them" not in report(table, "t.csv")
    assert "By scanned value" not in report(table, "t.csv") and "By condition" not in report(table, "t.csv")
    renamed = table.assign(experiment=np.where(table.seed == 0, "cpu", "heads"))   # a label changes no run
    assert "pool over them" not in report(renamed, "t.csv")


def as_batch_grid(table):
    """The fixture table as if seeds 0, 1 ran at batch 128 and seeds 2, 3 at 512, for both optimizers:
    a condition (both optimizers meet it, neither picks it), as experiment=robustness varies."""
    grid = table.copy()
    grid.loc[grid.seed.isin([0, 1]), "batch_size"] = 128
    return grid


def test_a_condition_is_compared_at_each_value_not_pooled_nor_picked(table):
    grid = as_batch_grid(table)
    done = finished(grid)
    assert condition_axes(done) == ["batch_size"] and scanned_axes(done) == []
    text = report(grid, "t.csv")
    assert "compares the optimizers at each batch_size (2 values)" in text and "pool over them" not in text
    assert "By scanned value" not in text
    lines = text.splitlines()
    header = [c.strip() for c in next(ln for ln in lines if ln.startswith("| group |")).split("|")[1:-1]]
    rows = {r[0]: dict(zip(header, r)) for r in ([c.strip() for c in ln.split("|")[1:-1]]
                                                 for ln in lines if ln.startswith("| all |") or ln.startswith("| batch_size="))}
    a, b = done[done.optimizer == "adamw"], done[done.optimizer == "muon"]
    key = lambda d: list(d["task"] + "/" + d["head"] + "/" + d["batch_size"].astype(str))
    want = stats.logrank_stratified(a.time, a.event, key(a), b.time, b.event, key(b))
    assert rows["all"]["stratified z"] == f"{want.statistic:.3f}"            # within task, head and batch
    for bs in (128, 512):       # a row per batch size, its members only
        assert rows[f"batch_size={bs}"]["n AdamW/Muon"] == "{}/{}".format(
            (a.batch_size == bs).sum(), (b.batch_size == bs).sum())
    section = text.split("## By condition, per task")[1].split("\n## ")[0]
    cells = [[c.strip() for c in ln.split("|")[1:-1]] for ln in section.splitlines() if ln.startswith("| modadd |")]
    assert [c[2] for c in cells] == ["128", "512"] * 2                      # per head, per batch size
    for c in cells:
        m = done[(done.task == "modadd") & (done["head"] == c[1]) & (done.batch_size == int(c[2]))]
        n = (m.optimizer == "adamw").sum()
        assert c[3].startswith(f"{m[m.optimizer == 'adamw'].grokked.sum()}/{n},"), c
    assert "| task | batch_size | optimizer |" in text                      # the delay table splits them too


def test_a_column_that_only_relabels_a_condition_is_named_once(table):
    wide = table.copy()
    wide.loc[wide.seed.isin([0, 1]), ["d_model", "d_mlp"]] = [128, 512]
    done = finished(wide)
    assert condition_axes(done) == ["d_model"]
    assert "at each d_model (2 values) (d_mlp moving with them)" in report(wide, "t.csv")


def test_the_figures_of_a_condition_grid_keep_its_values_apart(table, monkeypatch, tmp_path, capsys):
    made = []
    for module in (figures_curves, figures_epochs):     # figure 4, then figure 5
        monkeypatch.setattr(module, "save", lambda fig, out, name: made.append(fig) or [])
    done = finished(as_batch_grid(table))
    figures_curves.fig4_curves_task(done, tmp_path)
    shown = [ax for ax in made[0].axes if ax.get_visible()]
    assert len(shown) == 4 * 2                               # (task, head) rows x batch sizes
    assert shown[0].get_title() == "modadd, softmax, batch_size 128"
    # The AdamW val curve of that panel, recomputed from the members' metrics.csv: that batch size's
    # members only, each held at its last value to the cell's last epoch, then the mean per epoch.
    cell = done[(done.task == "modadd") & (done["head"] == "softmax") & (done.batch_size == 128)
                & (done.optimizer == "adamw")]
    curves = []
    for run_dir, member in zip(cell.run_dir, cell.member):
        with open(Path(run_dir) / "metrics.csv", newline="") as f:
            curves.append([float(r["val_acc"]) for r in csv.DictReader(f) if int(r["member"]) == member])
    n = max(map(len, curves))
    want = np.mean([c + [c[-1]] * (n - len(c)) for c in curves], axis=0)
    assert len(curves) == 2 and len({len(c) for c in curves}) == 2           # members of unequal length
    line = shown[0].get_lines()[0]
    assert list(line.get_xdata()) == list(range(1, n + 1)) and np.allclose(line.get_ydata(), want)
    figures_epochs.fig5_scan(done, tmp_path)
    assert made[1].axes[0].get_xlabel() == "batch_size"
    as_batch_grid(table).to_csv(tmp_path / "grid.csv", index=False)
    monkeypatch.undo()
    cli.main(["figures", "--runs", str(tmp_path / "grid.csv"), "--out", str(tmp_path / "figs")])
    capsys.readouterr()
    assert (tmp_path / "figs" / "fig5_scan.png").exists()              # made by default for a condition grid


def test_a_learning_rate_scan_gets_its_own_table_and_each_optimizers_best_value(table):
    scan = table.copy()
    # Every AdamW member of modadd/softmax at lr 0.01 groks at epoch 5, earlier than any other member.
    fast = (scan.optimizer == "adamw") & (scan.task == "modadd") & (scan["head"] == "softmax") & \
        (scan.seed.isin([0, 1])) & (scan.run_status == "complete")
    scan.loc[fast, ["lr", "grokking_epoch", "status", "censored"]] = [0.01, 5, "grokked", False]
    text = report(scan, "t.csv")
    assert "this table scans lr (2 values)" in text and "pool over them" not in text
    section = text.split("## By scanned value")[1]
    best = next(ln for ln in section.splitlines() if ln.startswith("| modadd | softmax |")).split("|")
    assert best[3].strip() == "lr = 0.01: 5"
    done = finished(scan)
    adamw = done[(done.task == "modadd") & (done["head"] == "softmax") & (done.optimizer == "adamw") & (done.lr == 0.01)]
    muon = done[(done.task == "modadd") & (done["head"] == "softmax") & (done.optimizer == "muon")]
    assert muon.lr.nunique() == 1                 # Muon's one value is its best
    want = stats.logrank(adamw.time, adamw.event, muon.time, muon.event)
    assert best[5].strip() == f"{want.statistic:.3f}" and best[6].strip() == f"{want.p:.3g}"
    assert "| modadd | softmax | adamw | 0.01 | 2 | 2 |" in section          # n 2, both grokked


def test_report_with_nothing_finished_fails(table):
    with pytest.raises(TableError, match="no complete runs"):
        report(table.assign(run_status="running"), "t.csv")
    assert np.isfinite(finished(table).time).all()


def test_report_stratifies_the_pooled_log_rank_by_task_and_head(table):
    text = report(table, "t.csv")
    lines = text.splitlines()
    header = [c.strip() for c in next(ln for ln in lines if ln.startswith("| group |")).split("|")[1:-1]]
    row = dict(zip(header, (c.strip() for c in next(ln for ln in lines if ln.startswith("| all |")).split("|")[1:-1])))
    g = finished(table)
    a, b = g[g.optimizer == "adamw"], g[g.optimizer == "muon"]
    key = lambda d: list(d["task"] + "/" + d["head"])
    want = stats.logrank_stratified(a.time, a.event, key(a), b.time, b.event, key(b))
    plain = stats.logrank(a.time, a.event, b.time, b.event)
    assert row["stratified z"] == f"{want.statistic:.3f}" and row["normal p"] == f"{want.p:.3g}"
    assert row["log-rank z"] == f"{plain.statistic:.3f}"
    # The permutation p comes first: labels shuffled within task/head, the same z.
    both = g.assign(x=g.optimizer == "adamw")
    perm = stats.logrank_permutation(both.time, both.event, both.x, key(both))
    assert header.index("permutation p") < header.index("normal p")
    assert row["permutation p"] == f"{perm.p:.3g} ± {perm.mc_error:.1g}" and not perm.exact


@pytest.mark.parametrize("heads", [["softmax"], ["softmax", "stablemax"]], ids=["one head", "two heads"])
def test_accuracy_curves_have_a_panel_per_cell_and_one_legend(table, heads, monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(figures_curves, "save", lambda fig, out, name: made.append(fig) or [])
    done = finished(table)
    figures_curves.fig4_curves_task(done[done["head"].isin(heads)], tmp_path)
    fig = made[0]
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 2 * len(heads)                     # tasks x heads
    assert [t.get_text() for t in fig.legends[0].get_texts()] == \
        ["AdamW val", "AdamW train", "Muon val", "Muon train", "0.95: the grokking threshold",
         "a member's grokking epoch", "min–max of val accuracy"]
    assert all(ax.get_xlabel() == "epoch" for ax in shown[-2:])
    assert all(ax.get_xlabel() == "" for ax in shown[:-2])              # none above the bottom row


def test_commands_are_recorded_beside_what_they_wrote(table, tmp_path, capsys):
    results, elsewhere = tmp_path / "results", tmp_path / "scratch"
    results.mkdir()
    table.to_csv(results / "runs.csv", index=False)
    runs = str(results / "runs.csv")
    cli.main(["report", "--runs", runs])
    cli.main(["report", "--runs", runs])                       # recorded once
    cli.main(["report", "--runs", runs, "--out", str(elsewhere / "r.md")])
    cli.main(["figures", "--runs", runs, "--only", "boxplot", "--out", str(elsewhere / "figs")])
    capsys.readouterr()
    assert (results / "commands.txt").read_text().splitlines() == [f"grokmuon report --runs {runs}"]
    assert (elsewhere / "commands.txt").read_text().splitlines() == [
        f"grokmuon report --runs {runs} --out {elsewhere / 'r.md'}"]
    assert (elsewhere / "figs" / "commands.txt").read_text().startswith("grokmuon figures")


def test_a_scan_through_zero_keeps_its_zero_on_the_axis(table, monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(figures_epochs, "save", lambda fig, out, name: made.append(fig) or [])
    scan = table.copy()
    scan.loc[scan.seed.isin([0, 1]), "weight_decay"] = 0.0
    figures_epochs.fig5_scan(finished(scan), tmp_path)
    ax = made[0].axes[0]
    assert ax.get_xscale() == "symlog" and ax.get_xlabel() == "weight_decay"
    assert min(x for line in ax.get_lines() for x in line.get_xdata()) == 0.0     # the median at wd 0 is drawn


def test_accuracy_curves_of_a_scan_show_each_optimizer_at_its_best_value(table, monkeypatch, tmp_path):
    made, read = [], []
    monkeypatch.setattr(figures_curves, "save", lambda fig, out, name: made.append(fig) or [])
    real = figures_curves.read_curves
    monkeypatch.setattr(figures_curves, "read_curves", lambda d, warn: read.append(d) or real(d, warn))
    scan = as_lr_scan(table)
    figures_curves.fig4_curves_task(finished(scan), tmp_path)
    assert "each optimizer at its best lr" in made[0]._suptitle.get_text()
    assert (read[0].groupby(["task", "head", "optimizer"])["lr"].nunique() == 1).all()
    figures_curves.fig4_curves_task(finished(table), tmp_path)
    assert "best" not in made[1]._suptitle.get_text()


def test_a_condition_met_by_one_optimizer_only_is_shown_not_compared_across(table):
    # AdamW ran at batch 512 only, Muon at 128 only: no cell varies, yet a test across them would compare
    # batch sizes, not optimizers. The strata hold the batch size, so no stratum has both optimizers.
    apart = table.copy()
    apart.loc[apart.optimizer == "muon", "batch_size"] = 128
    assert condition_axes(finished(apart)) == ["batch_size"]
    text = report(apart, "t.csv")
    row = next(ln for ln in text.splitlines() if ln.startswith("| all |")).split("|")
    assert row[5].strip() == "–" and row[6].strip() == "–"              # stratified z, permutation p
    assert "| batch_size=128 | 0/" in text and "| batch_size=512 |" in text


def test_a_blank_condition_is_a_stratum_of_its_own_and_128_read_back_as_float_is_128(table, tmp_path):
    grid = as_batch_grid(table)
    grid["batch_size"] = grid["batch_size"].astype(float)
    grid.loc[grid.seed == 3, "batch_size"] = np.nan
    text = report(grid, "t.csv")                            # no crash on the blank
    assert "| batch_size=128 |" in text and "| batch_size=nan |" in text and "batch_size=128.0" not in text


def test_the_probes_figure_names_the_cells_it_cannot_draw():
    """Runs from before the probes were logged (or with probes=false) have none: the figure says which
    cells it leaves out, so a panel with one optimizer is not read as a comparison."""
    import pandas as pd
    done = pd.DataFrame({"task": ["gcd", "gcd", "modadd", "modadd"], "optimizer": ["adamw", "muon"] * 2,
                         "head": ["softmax"] * 4, "diverged": [False] * 4})
    long = done.iloc[[0, 2, 3]].assign(epoch=1)
    assert figures_curves.missing_probes(done, long, heads=False) == "\nnot drawn, no probes recorded: gcd Muon"
    assert figures_curves.missing_probes(done, long, heads=True).endswith("gcd Muon softmax")
    assert figures_curves.missing_probes(done, done.assign(epoch=1), heads=False) == ""
    assert figures_curves.missing_probes(done.assign(diverged=[False, True, False, False]), long, heads=False) == ""

"""Arms: an optimizer plus its non-default keys (grokmuon/arms.py), runs.csv's arm column, the report that
sets every arm against a reference arm with Holm over the pairs, and one colour per arm in the figures.
A table of the paper's two arms gives the report committed under results/ unchanged."""
from __future__ import annotations

import json
import re

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest
from omegaconf import OmegaConf

from grokmuon import arms, cli, figures_base, figures_epochs
from grokmuon.report import report
from grokmuon.results import by_arm, collect, finished, judged, load, split_arms
from conftest import REPO, compose_config
from runfolders import config, write_run


def cfg(name: str, grokfast: dict | None = None, **keys) -> dict:
    out = {"optimizer": {"name": name, **keys}}
    return out if grokfast is None else {**out, "grokfast": grokfast}


@pytest.mark.parametrize("config_, expected", [
    (cfg("adamw"), "adamw"),
    (cfg("muon"), "muon"),
    # the tuned settings, of either half, and the Newton-Schulz precision are no part of an arm
    (cfg("adamw", lr=3e-3, weight_decay=0.3), "adamw"),
    (cfg("muon", lr=0.05, weight_decay=0.1, adamw_lr=3e-3, adamw_weight_decay=0.3, ns_dtype="bf16"), "muon"),
    (cfg("muon", momentum=0.0), "muon momentum=0"),
    (cfg("muon", momentum=0), "muon momentum=0"),
    (cfg("muon", ns_steps=0), "muon ns_steps=0"),
    (cfg("muon", split="all"), "muon split=all"),
    (cfg("normuon", lr=0.02, weight_decay=0.05), "normuon"),
    (cfg("normuon", normuon_beta2=0.9), "normuon normuon_beta2=0.9"),
    (cfg("adamw", orthogonal_grad=True), "adamw orthogonal_grad=true"),
    (cfg("adamw", betas=[0.9, 0.99]), "adamw betas=[0.9,0.99]"),
    (cfg("muon", nesterov=False), "muon nesterov=false"),
    # at their defaults, written out in full: still the plain arm
    (cfg("muon", momentum=0.95, ns_steps=5, split="hidden", betas=[0.9, 0.98], orthogonal_grad=False), "muon"),
    # several keys: in the schema's order, whatever the config's
    (cfg("muon", split="all", ns_steps=0, momentum=0.0), "muon momentum=0 ns_steps=0 split=all"),
    # a gradient filter: on names itself, off or absent adds nothing
    (cfg("adamw", grokfast={"name": "ema", "alpha": 0.98, "lamb": 2.0}), "adamw grokfast=ema"),
    (cfg("muon", grokfast={"name": "none"}, momentum=0.0), "muon momentum=0"),
    (cfg("muon", momentum=0.0, grokfast={"name": "ema"}), "muon momentum=0 grokfast=ema"),
])
def test_an_arm_is_the_optimizer_and_its_keys_that_differ_from_its_defaults(config_, expected):
    assert arms.label(config_) == expected


def test_composed_configs_and_committed_runs_have_the_arms_their_overrides_say():
    for overrides, expected in ((["optimizer=adamw"], "adamw"), (["optimizer=muon"], "muon"),
                                (["optimizer=normuon"], "normuon"),
                                (["optimizer=muon", "optimizer.momentum=0"], "muon momentum=0"),
                                (["optimizer=muon", "optimizer.ns_steps=0", "optimizer.lr=0.05"], "muon ns_steps=0"),
                                (["optimizer=adamw", "optimizer.orthogonal_grad=true"], "adamw orthogonal_grad=true")):
        composed = OmegaConf.to_container(compose_config(*overrides), resolve=True)
        assert arms.label(composed) == expected, overrides
    # config.json files of the committed study (written before split, normuon_beta2, orthogonal_grad existed)
    for path in sorted((REPO / "multirun" / "cpu").glob("*/config.json"))[:4]:
        c = json.loads(path.read_text())
        assert arms.label(c) == c["optimizer"]["name"] in arms.PAPER, path


def test_arms_sort_with_the_papers_two_first_and_read_as_titles():
    assert arms.order(["normuon", "muon momentum=0", "adamw orthogonal_grad=true", "muon", "adamw"]) == [
        "adamw", "muon", "adamw orthogonal_grad=true", "muon momentum=0", "normuon"]
    assert sorted(["muon", "adamw orthogonal_grad=true", "adamw"]) == ["adamw", "adamw orthogonal_grad=true", "muon"]
    assert [arms.title(a) for a in ("adamw", "muon momentum=0", "normuon", "signum")] == [
        "AdamW", "Muon momentum=0", "NorMuon", "signum"]


def test_a_table_collected_before_arms_gets_them_from_its_config_columns(tmp_path):
    old = load(REPO / "results" / "cpu" / "runs.csv")          # committed, no arm column
    assert (old["arm"] == old["optimizer"]).all() and set(old["arm"]) == {"adamw", "muon"}
    # An older table of an ablation: its momentum column says which rows are Muon without momentum.
    table = old.drop(columns="arm")
    table.loc[(table.optimizer == "muon") & (table.task == "modadd"), "momentum"] = 0.0
    table.to_csv(tmp_path / "runs.csv", index=False)
    arm = load(tmp_path / "runs.csv").set_index(["task", "optimizer", "seed"])["arm"]
    assert arm.loc[("modadd", "muon")].unique().tolist() == ["muon momentum=0"]
    assert arm.loc[("gcd", "muon")].unique().tolist() == ["muon"]


# ------------------------------------------------------------------------------- an N-arm report
ARMS = {"adamw": ("adamw", {}, 120), "muon": ("muon", {}, 60), "muon momentum=0": ("muon", {"momentum": 0.0}, 90),
        "normuon": ("normuon", {}, 70)}
# Per (task, head): the offsets of the three seeds' grokking epochs, so cells differ but not always.
SPREAD = {("modadd", "softmax"): (0, 15, 40), ("modadd", "stablemax"): (-10, 5, 30),
          ("gcd", "softmax"): (5, 20, 35), ("gcd", "stablemax"): (0, 10, 60)}


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    """A table of four arms on 2 tasks x 2 heads x 3 seeds (AdamW's slowest seed censored), its path."""
    root = tmp_path_factory.mktemp("four")
    for (task, head), spread in SPREAD.items():
        for arm, (opt, keys, base) in ARMS.items():
            c = config(task, opt, head, seeds=(0, 1, 2))
            c["optimizer"].update(keys)
            epochs = [base + s for s in spread]
            write_run(root / "runs" / f"{task}-{arm.replace(' ', '_')}-{head}", c,
                      epochs[:2] + [None] if opt == "adamw" else epochs)
    table = collect([root / "runs"])
    table.to_csv(root / "runs.csv", index=False)
    return table, root / "runs.csv"


def section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n")[1].split("\n## ")[0]


def tables_of(body: str) -> dict[str, list[list[str]]]:
    """The rows of each table under a `### <pair>` heading, as lists of cells."""
    out = {}
    for part in body.split("\n### ")[1:]:
        name, rest = part.split("\n", 1)
        rows = [[c.strip() for c in ln.split("|")[1:-1]] for ln in rest.splitlines() if ln.startswith("| ")]
        out[name] = rows[1:]            # the header row left out
    return out


def exact_p(cell: str) -> float:
    """An exact permutation p as a fraction of its arrangements: "0.1 (exact, 20)" -> 2/20."""
    p, n = re.fullmatch(r"([\d.e-]+) \(exact, (\d+)\)", cell).groups()
    return round(float(p) * int(n)) / int(n)


def drawn_p(cell: str) -> float:
    return float(cell.split(" ")[0])


def holm_by_hand(p: list[float]) -> list[float]:
    """Holm's step-down written out: the i-th smallest of k times (k - i), running maximum, at most 1."""
    ranked = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for i, j in enumerate(ranked):
        running = max(running, min(1.0, (len(p) - i) * p[j]))
        out[j] = running
    return out


def test_every_arm_is_set_against_the_reference_and_named_pairs_are_added(four):
    table, _ = four
    text = report(table, "t.csv", pairs=[("muon", "normuon")])
    assert text.startswith("# Grokking epochs: 4 arms, each against AdamW\n")
    tests = tables_of(section(text, "Each arm against AdamW"))
    assert list(tests) == ["Muon vs AdamW", "Muon momentum=0 vs AdamW", "NorMuon vs AdamW", "NorMuon vs Muon"]
    for name, rows in tests.items():
        assert [r[0] for r in rows] == ["all", "task=gcd", "task=modadd", "head=softmax", "head=stablemax"], name
        assert rows[0][1] == "12/12"            # n of each arm: 2 tasks x 2 heads x 3 seeds
    # the pair's direction: NorMuon against Muon, Muon first (as the reference is)
    assert "| group | n Muon/NorMuon |" in section(text, "Each arm against AdamW")
    # Another reference: every other arm against Muon, AdamW among them.
    text = report(table, "t.csv", reference="muon")
    assert list(tables_of(section(text, "Each arm against Muon"))) == [
        "AdamW vs Muon", "Muon momentum=0 vs Muon", "NorMuon vs Muon"]


def test_holm_adjusts_over_every_pair_and_cell_the_report_shows(four):
    table, _ = four
    text = report(table, "t.csv", pairs=[("muon", "normuon")])
    tests = tables_of(section(text, "Each arm against AdamW"))
    # The subgroups of every pair: one family (their p exact: 20 x 20 arrangements within each).
    subgroups = [r for rows in tests.values() for r in rows[1:]]
    expected = holm_by_hand([exact_p(r[5]) for r in subgroups])
    assert [r[6] for r in subgroups] == [format(p, ".3g") for p in expected]
    assert len(subgroups) == 16 and len(set(r[6] for r in subgroups)) > 2     # not all one value
    # The primary tests, one a pair: a family of four (their p drawn: 20^4 arrangements).
    primary = [rows[0] for rows in tests.values()]
    shown = [float(r[6].removeprefix("primary: ")) for r in primary]
    np.testing.assert_allclose(shown, holm_by_hand([drawn_p(r[5]) for r in primary]), rtol=0.01)
    # Each cell alone (By head, per task): one family over the cells of every pair, exact (20 each).
    cells = [r for rows in tables_of(section(text, "By head, per task")).values() for r in rows]
    assert len(cells) == 16
    adjusted = holm_by_hand([exact_p(r[5]) for r in cells])
    assert [r[6] for r in cells] == [format(p, ".3g") for p in adjusted]
    # *sooner* names an arm of the row's own pair, only where its Holm p < 0.05
    for (pair, rows) in tables_of(section(text, "By head, per task")).items():
        for r, p in zip(rows, adjusted[:len(rows)]):
            assert r[7] in pair.split(" vs ") if float(r[6]) < 0.05 else r[7].startswith("neither"), (pair, r)
        adjusted = adjusted[len(rows):]
    # The delay table: memorisation and delay of every pair one family (8 tests), grokking epoch primary.
    delay = section(text, "Learning speed and grokking delay")
    assert "the memorisation epoch and the delay (8 tests)" in delay
    rows = [[c.strip() for c in ln.split("|")[1:-1]] for ln in delay.splitlines() if ln.startswith("| ")
            and ("epoch" in ln or "| delay |" in ln) and not ln.startswith("| pair")]
    assert [r[0] for r in rows[:3]] == ["Muon vs AdamW"] * 3 and len(rows) == 12
    side = [r for r in rows if r[1] != "grokking epoch"]
    np.testing.assert_allclose([float(r[4]) for r in side], holm_by_hand([drawn_p(r[3]) for r in side]), rtol=0.01)
    assert all(r[4].startswith("primary: ") for r in rows if r[1] == "grokking epoch")


def test_a_table_of_the_papers_two_arms_gives_the_committed_report():
    # The committed reports were written before arms (results/<name>/report.md): the same text, to the
    # byte, from the committed table, with or without an arm column.
    for name in ("cpu", "lr_scan", "robustness", "tune"):
        source = f"results/{name}/runs.csv"
        table = load(REPO / source)
        committed = (REPO / "results" / name / "report.md").read_text()
        assert report(table, source) == committed, name
        if name == "cpu":
            assert report(table.assign(arm=table["optimizer"]), source) == committed


def test_report_command_takes_a_reference_and_pairs_and_refuses_unknown_arms(four, tmp_path, capsys):
    _, runs = four
    cli.main(["report", "--runs", str(runs), "--out", str(tmp_path / "r.md"), "--reference", "muon momentum=0",
              "--pair", "muon", "normuon"])
    text = (tmp_path / "r.md").read_text()
    assert text.startswith("# Grokking epochs: 4 arms, each against Muon momentum=0\n")
    assert list(tables_of(section(text, "Each arm against Muon momentum=0"))) == [
        "AdamW vs Muon momentum=0", "Muon vs Muon momentum=0", "NorMuon vs Muon momentum=0", "NorMuon vs Muon"]
    capsys.readouterr()
    for args, message in ((["--reference", "sgd"], "no arm 'sgd' in this table; its arms: adamw, muon, "
                                                   "muon momentum=0, normuon"),
                          (["--pair", "muon", "muon"], "the pair 'muon':'muon' sets an arm against itself"),
                          (["--pair", "muon"], "argument --pair: expected 2 arguments; see `grokmuon report --help`")):
        with pytest.raises(SystemExit) as e:
            cli.main(["report", "--runs", str(runs), "--out", str(tmp_path / "x.md"), *args])
        assert e.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"grokmuon: error: {message}"
    assert not (tmp_path / "x.md").exists()


def test_figures_draw_one_colour_per_arm_the_papers_two_in_theirs(four, tmp_path):
    table, _ = four
    done = judged(finished(by_arm(table)))
    colors = figures_base.palette(done)
    assert colors["adamw"] == "tab:orange" and colors["muon"] == "tab:blue"
    wanted = [colors[a] for a in ARMS]
    assert len(set(mcolors.to_hex(c) for c in wanted)) == 4
    for make in (figures_epochs.fig1_boxplot_optimizer, figures_epochs.fig3_km_task):
        png = next(p for p in make(done, tmp_path) if p.suffix == ".png")
        image = plt.imread(png)[..., :3]
        for arm, c in zip(ARMS, wanted):
            drawn = (np.abs(image - np.array(mcolors.to_rgb(c))).max(-1) < 0.02).sum()
            assert drawn > 300, (png.name, arm)         # more than a legend's swatch
    fig = plt.figure()
    ax = fig.add_subplot()
    figures_epochs.boxplot(ax, done, np.random.default_rng(0), figures_epochs.YLayout.of(done))
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "AdamW\n8/12 grokked", "Muon\n12/12 grokked", "Muon\nmomentum=0\n12/12 grokked", "NorMuon\n12/12 grokked"]
    plt.close(fig)


def test_the_figures_command_groups_by_arm(four, tmp_path, capsys, monkeypatch):
    _, runs = four
    made = []
    monkeypatch.setattr(figures_epochs, "save", lambda fig, out, name: made.append(fig) or [])
    cli.main(["figures", "--runs", str(runs), "--out", str(tmp_path / "figs"), "--only", "km"])
    assert capsys.readouterr().err == ""
    legend = [t.get_text() for t in made[0].legends[0].get_texts()]
    assert legend[:4] == ["AdamW", "Muon", "Muon momentum=0", "NorMuon"]


def test_arm_by_splits_each_arm_by_a_scanned_setting_and_refuses_anything_else(four, tmp_path, capsys):
    # The four arms' runs again, Muon's with its AdamW part at lr 3e-3: --arm-by adamw_lr sets each
    # value against the other as arms, and the other arms carry their own (default) value in the label.
    table, _ = four
    scanned = table.assign(adamw_lr=[0.003 if a == "muon" else v for a, v in zip(table["arm"], table["adamw_lr"])])
    split = split_arms(scanned, ["adamw_lr"])
    assert sorted(split["arm"].unique()) == ["adamw adamw_lr=0.001", "muon adamw_lr=0.003",
                                             "muon momentum=0 adamw_lr=0.001", "normuon adamw_lr=0.001"]
    assert split_arms(scanned, []) is scanned and split_arms(scanned, None) is scanned
    assert split_arms(scanned, ["adamw_lr", "adamw_lr"])["arm"].equals(split["arm"])     # a key given twice: once
    blank = split_arms(scanned.assign(adamw_lr=None), ["adamw_lr"])                       # collected before the column
    assert sorted(blank["arm"].unique()) == ["adamw adamw_lr=0.001", "muon adamw_lr=0.001",
                                             "muon momentum=0 adamw_lr=0.001", "normuon adamw_lr=0.001"]
    assert split.drop(columns="arm").equals(scanned.drop(columns="arm"))      # only the label moves
    runs = tmp_path / "runs.csv"
    scanned.to_csv(runs, index=False)
    cli.main(["report", "--runs", str(runs), "--out", str(tmp_path / "r.md"), "--arm-by", "adamw_lr",
              "--reference", "muon adamw_lr=0.003"])
    text = (tmp_path / "r.md").read_text()
    assert text.startswith("# Grokking epochs: 4 arms, each against Muon adamw_lr=0.003\n")
    assert "; and each value of adamw_lr, default or not): `adamw adamw_lr=0.001`, `muon adamw_lr=0.003`," in text
    assert "Muon momentum=0 adamw_lr=0.001 vs Muon adamw_lr=0.003" in tables_of(
        section(text, "Each arm against Muon adamw_lr=0.003"))
    capsys.readouterr()
    for args, message in ((["--arm-by", "seed", "--reference", "muon"], "--arm-by seed: give a setting an arm is "
                           "tuned at that this table has: lr, weight_decay, adamw_lr, adamw_weight_decay"),
                          (["--arm-by", "momentum", "--reference", "muon"], "--arm-by momentum: give a setting"),
                          (["--arm-by", "adamw_lr", "--reference", "muon"],
                           "no arm 'muon' in this table; its arms: adamw adamw_lr=0.001"),
                          (["--arm-by", "adamw_lr"], "--arm-by splits the arms: name the one to set the others "
                                                     "against with --reference")):
        with pytest.raises(SystemExit) as e:
            cli.main(["report", "--runs", str(runs), "--out", str(tmp_path / "x.md"), *args])
        assert e.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"grokmuon: error: {message}")
    assert not (tmp_path / "x.md").exists()
    made = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(figures_epochs, "save", lambda fig, out, name: made.append(fig) or [])
        cli.main(["figures", "--runs", str(runs), "--out", str(tmp_path / "figs"), "--only", "km", "--arm-by", "adamw_lr"])
    legend = [t.get_text() for t in made[0].legends[0].get_texts()]
    assert legend[:4] == ["AdamW adamw_lr=0.001", "Muon adamw_lr=0.003", "Muon momentum=0 adamw_lr=0.001",
                          "NorMuon adamw_lr=0.001"]


def test_the_committed_adamw_part_report_splits_one_arm_into_three_settings():
    # results/adamw_part: one arm (muon) at three adamw_lr values; --arm-by makes them three arms, each set
    # against 1e-3, and the committed report is what that gives, byte for byte.
    runs = REPO / "results" / "adamw_part" / "runs.csv"
    table = load(runs)
    assert set(table["arm"]) == {"muon"}
    text = report(table, "results/adamw_part/runs.csv", "muon adamw_lr=0.001", (), ["adamw_lr"])
    assert text.startswith("# Grokking epochs: 3 arms, each against Muon adamw_lr=0.001\n")
    assert text == (REPO / "results" / "adamw_part" / "report.md").read_text()


def test_tuned_against_tuned_comes_once_a_pair_with_holm_over_both(tmp_path):
    # The committed tune table with a third arm: its Muon members again, relabelled (the same numbers,
    # so the third arm's table repeats Muon's): each pair's rows are the committed ones but for Holm p,
    # whose family is now every row of both tables.
    import pandas as pd
    table = load(REPO / "results" / "tune" / "runs.csv")
    again = table[table.optimizer == "muon"].assign(arm="muon momentum=0", run_dir=lambda d: d.run_dir + "-again")
    text = report(pd.concat([table, again], ignore_index=True), "t.csv")
    tuned = tables_of(section(text, "Tuned against tuned"))
    assert list(tuned) == ["Muon vs AdamW", "Muon momentum=0 vs AdamW"]
    committed = section((REPO / "results" / "tune" / "report.md").read_text(), "Tuned against tuned")
    rows = [[c.strip() for c in ln.split("|")[1:-1]] for ln in committed.splitlines() if ln.startswith("| ")][1:]
    drop = lambda r: r[:14] + r[15:]            # all but Holm p
    assert [drop(r) for r in tuned["Muon vs AdamW"]] == [drop(r) for r in rows]
    assert [drop(r)[7:] for r in tuned["Muon momentum=0 vs AdamW"]] == [drop(r)[7:] for r in rows]
    both = tuned["Muon vs AdamW"] + tuned["Muon momentum=0 vs AdamW"]
    assert [r[14] for r in both] == [format(p, ".3g") for p in holm_by_hand([exact_p(r[13]) for r in both])]
    assert "every row of these tables with a test (14)" in section(text, "Tuned against tuned")


def test_an_arm_raced_but_not_yet_confirmed_is_no_member_of_the_primary_family(tmp_path):
    # A third arm with tuning rows only (its confirmation still to run, as when a report is made while
    # a study lane runs): its pair has no test, and the Holm family of the primary tests is the 2 with one.
    import pandas as pd
    table = load(REPO / "results" / "tune" / "runs.csv")
    muon = table[table.optimizer == "muon"]
    raced = muon[muon.role == "tune"].assign(arm="muon momentum=0", run_dir=lambda d: d.run_dir + "-raced")
    again = muon.assign(arm="normuon", run_dir=lambda d: d.run_dir + "-again")
    whole = report(pd.concat([table, raced, again], ignore_index=True), "t.csv")
    assert whole.count("With 3 pairs, each pair's primary test is one of a family of 2") == 2   # each arm, and the delay
    text = section(whole, "Tuned against tuned")
    lines = [ln for ln in text.splitlines() if "the primary test" in ln]
    assert len(lines) == 3 and all("Holm p over the 2 pairs" in ln for ln in lines)
    assert "z = –" in next(ln for ln in lines if ln.startswith("Muon momentum=0 vs AdamW"))


def test_a_pair_with_no_stratum_holding_both_arms_is_no_member_of_the_primary_family():
    # Two more arms, each with members of one task only (Muon's, relabelled): each has a test against
    # AdamW, but the pair set between them has no task holding both, so no test: the note's family
    # counts what Holm counts (3 of the 4 pairs), not the pairs whose arms both have members (4).
    import pandas as pd
    table = load(REPO / "results" / "tune" / "runs.csv")
    muon = table[table.optimizer == "muon"]
    one, other = sorted(muon.task.unique())[:2]
    a = muon[muon.task == one].assign(arm="muon momentum=0", run_dir=lambda d: d.run_dir + "-a")
    b = muon[muon.task == other].assign(arm="normuon", run_dir=lambda d: d.run_dir + "-b")
    whole = report(pd.concat([table, a, b], ignore_index=True), "t.csv", pairs=[("muon momentum=0", "normuon")])
    primary = {name: rows[0] for name, rows in tables_of(section(whole, "Each arm against AdamW")).items()}
    assert primary["NorMuon vs Muon momentum=0"][5] == "–"                    # no test
    assert sum(r[5] != "–" for r in primary.values()) == 3
    assert whole.count("With 4 pairs, each pair's primary test is one of a family of 3") == 2   # each arm, and the delay


def test_compute_by_arm_splits_each_run_folders_hours_once_between_races_and_the_choice():
    # Recomputed by hand from runs.csv (a folder's wall_s is on each of its member rows), against the
    # report's table, its per-arm totals, and the source line's hours, which it must sum to.
    import re
    import pandas as pd
    table = pd.read_csv(REPO / "results" / "tune" / "runs.csv")
    text = report(load(REPO / "results" / "tune" / "runs.csv"), "t.csv")
    lines = [ln for ln in section(text, "Compute by arm").splitlines() if ln.startswith("| ")][1:]   # past the header
    rows = {(c[0], c[2]): [float(x) for x in c[3:]] for c in ([x.strip() for x in ln.split("|")[1:-1]] for ln in lines)}
    folders = table.drop_duplicates("run_dir")
    for (task, opt), g in folders.groupby(["task", "optimizer"]):
        race = g.loc[g.role == "tune", "wall_s"].sum() / 3600
        choice = g.loc[g.role != "tune", "wall_s"].sum() / 3600
        assert rows[(task, opt)] == [round(race, 2), round(choice, 2), round(race + choice, 2)], (task, opt)
    for opt, g in folders.groupby("optimizer"):
        assert rows[("all", opt)][2] == round(g["wall_s"].sum() / 3600, 2)
    hours = float(re.search(r"Compute: ([0-9.]+) wall-clock hours", text).group(1))
    assert abs(sum(v[2] for (task, _), v in rows.items() if task == "all") - hours) < 0.02
    assert rows[("all", "adamw")][0] > 0 and rows[("all", "muon")][1] > 0    # both columns filled


@pytest.mark.parametrize("lines", [2, 8])
def test_a_legend_of_many_arms_grows_the_figure_below_the_axes_labels(lines):
    # The KM figure's layout: a legend row planned under two panels. Eight arms and four notes take two
    # rows, which used to cover the panels' "epoch" labels; now the figure grows by the added row, and
    # with the paper's two arms nothing changes (the committed figures stay pixel for pixel).
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax in axes:
        for i in range(lines):
            ax.plot([0, 1], [0, i], label=f"arm {i}")
        for note in ("one half", "censored", "band", "ticks"):
            ax.plot([], [], label=note)
        ax.set_xlabel("epoch")
    bottom = figures_base.legend_below(fig, axes, 0.04)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.canvas.draw()
    legend_top = fig.legends[0].get_window_extent().y1
    label_bottom = min(ax.xaxis.label.get_window_extent().y0 for ax in axes)
    assert legend_top <= label_bottom
    assert (fig.get_figheight(), bottom) == ((3.2, 0.04) if lines == 2 else (3.2 + figures_base.LEGEND_ROW_IN, bottom))
    plt.close(fig)

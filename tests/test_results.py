"""collect: run folders -> table (corrupt and partial folders reported and skipped, duplicates resolved);
the run identity (config hash) and the resume decisions it drives."""
import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from grokmuon import cli
from grokmuon.runfolder import decide, set_aside
from grokmuon.runid import config_hash, member_hash
from grokmuon.config import leaves
from grokmuon.arms import title
from grokmuon.report import report
from grokmuon.report_tables import n_tests, value_text
from grokmuon.results import AXES, COLUMNS, TableError, collect, finished, judged, load, scanned_axes, varying_axes
from conftest import REPO
from runfolders import config, write_run, write_sweep


def collect_warned(*dirs):
    warnings = []
    return collect(dirs, warn=warnings.append), warnings


def test_collect_gives_a_row_per_member_with_every_axis(tmp_path):
    folders = write_sweep(tmp_path, tasks=("modadd", "parity"), heads=("softmax",), seeds=range(3))
    table, warnings = collect_warned(tmp_path)
    assert warnings == []
    assert len(table) == len(folders) * 3
    assert list(table.columns) == COLUMNS
    for col in ("task", "optimizer", "head", "seed", "lr", "weight_decay", "batch_size", "train_frac",
                "d_model", "n_layers", "max_epochs", "grokking_epoch", "memorisation_epoch", "censored",
                "status", "epochs_run", "wall_s", "config_hash", "run_dir"):
        assert col in table
    summary = json.loads((folders[0] / "summary.json").read_text())
    row = table[(table.run_dir == str(folders[0])) & (table.seed == summary["members"][1]["seed"])].iloc[0]
    m = summary["members"][1]
    assert (row.grokking_epoch if pd.notna(row.grokking_epoch) else None) == m["grokking_epoch"]
    assert row.config_hash == summary["config_hash"] and row.member_hash == m["member_hash"]
    assert row.lr == json.loads((folders[0] / "config.json").read_text())["optimizer"]["lr"]


# results/cpu/runs.csv's header as first committed (42 columns), before the columns came from the schema.
OLD_HEADER = ("experiment,role,stop,task,optimizer,head,lr,weight_decay,adamw_lr,adamw_weight_decay,batch_size,"
              "train_frac,p,n_bits,n_layers,d_model,n_heads,d_mlp,dropout,max_epochs,patience,grok_val_acc,"
              "grok_train_acc,precision,seed,member,grokking_epoch,memorisation_epoch,censored,status,"
              "diverged_epoch,epochs_run,final_train_acc,final_val_acc,plateau,run_status,wall_s,device,"
              "config_hash,member_hash,written_at,run_dir")


def test_the_config_columns_come_from_the_schema_and_old_tables_keep_their_columns():
    # Every leaf of the schema is a column, but the member axis (a row's own seed, lr, weight decay) and
    # what does not change results (the sweep's name and the tune step excepted: they label a row).
    assert {"optimizer.momentum", "optimizer.betas", "model.rope_base", "task.p"} <= set(AXES.values())
    assert not {"seeds", "grid.lr", "logger.name", "device", "probes", "eval_chunk"} & set(AXES.values())
    assert {"experiment", "role"} <= set(AXES)
    assert len(set(AXES.values())) == len(AXES) and set(AXES.values()) <= set(leaves())
    # A table collected before (committed) is a prefix of today's columns: nothing moved or was renamed.
    committed = OLD_HEADER.split(",")
    assert COLUMNS[:len(committed)] == committed and len(COLUMNS) > len(committed)


@pytest.mark.parametrize("path,values", [("adamw_lr", (1e-3, 3e-3)), ("adamw_weight_decay", (1.0, 0.3))])
def test_a_sweep_over_an_optimizer_setting_is_kept_apart_in_the_report(tmp_path, path, values):
    # Runs that differ only in optimizer.<path>, a setting (no part of an arm: arms.NOT_ARM) that no list
    # named before the axes came from the schema: the report scans it (a row per value, each optimizer's
    # best against the other's), it does not pool the values silently. Straight from collect and after a
    # round trip through runs.csv.
    for opt in ("adamw", "muon"):
        for value, epochs in zip(values, ([40, 50, 60], [200, 220, None])):
            cfg = config(optimizer=opt, seeds=(0, 1, 2))
            cfg["optimizer"][path] = value
            write_run(tmp_path / "runs" / f"{opt}-{len(str(value))}-{value}", cfg, epochs)
    table, warnings = collect_warned(tmp_path / "runs")
    assert warnings == [] and table[path].nunique() == 2 and set(table.arm) == {"adamw", "muon"}
    table.to_csv(tmp_path / "runs.csv", index=False)
    for t in (table, load(tmp_path / "runs.csv")):
        done = finished(t)
        assert varying_axes(done) == {path: 2} and scanned_axes(done) == [path]
        text = report(t, "t.csv")
        assert f"this table scans {path} (2 values)" in text and "pool over them" not in text
        scan = text.split("## By scanned value")[1]
        for opt in ("adamw", "muon"):
            rows = [r for r in scan.splitlines() if r.startswith(f"| modadd | softmax | {opt} |")]
            assert len(rows) == 2 and all(r.split(" | ")[4] == "3" for r in rows), rows   # n = 3 each, not 6
        best = f"{path} = {value_text(values[0])}: 50"
        assert scan.count(best) == 2, scan        # both optimizers: best at the first value, KM median 50


@pytest.mark.parametrize("path,values,labels", [
    ("momentum", (0.9, 0.99), ("muon momentum=0.9", "muon momentum=0.99")),
    ("betas", ([0.9, 0.98], [0.9, 0.95]), ("muon", "muon betas=[0.9,0.95]"))])
def test_a_sweep_over_an_optimizer_key_of_an_arm_gives_an_arm_per_value(tmp_path, path, values, labels):
    # A key that is part of an arm (arms.label) makes each value its own arm: its own rows and tests,
    # never pooled and never scanned; the arms are set against AdamW, each with its own n.
    write_run(tmp_path / "runs" / "adamw", config(optimizer="adamw", seeds=(0, 1, 2)), [60, 70, 80])
    for value, epochs, arm in zip(values, ([40, 50, 60], [200, 220, None]), labels):
        cfg = config(optimizer="muon", seeds=(0, 1, 2))
        cfg["optimizer"][path] = value
        write_run(tmp_path / "runs" / arm.replace(" ", "_"), cfg, epochs)
    table, warnings = collect_warned(tmp_path / "runs")
    assert warnings == [] and sorted(table.arm.unique()) == ["adamw", *labels]
    table.to_csv(tmp_path / "runs.csv", index=False)
    for t in (table, load(tmp_path / "runs.csv")):
        text = report(t, "t.csv")
        assert "this table scans" not in text and "pool over them" not in text
        by_arm = text.split("## By optimizer\n")[1].split("\n## ")[0]
        for arm, grokked in zip(labels, ("3", "2")):
            assert f"| {arm} | 3 | {grokked} |" in by_arm           # n = 3 each, not 6
            assert f"\n### {title(arm)} vs AdamW\n" in text.split("## Each arm against AdamW")[1]


def test_corrupt_summary_and_truncated_metrics_are_reported_and_skipped(tmp_path):
    good = write_run(tmp_path / "good", config("modadd"), [40, None])
    bad_json = write_run(tmp_path / "bad_json", config("gcd"), [40, 50])
    (bad_json / "summary.json").write_text('{"status": "complete", "members": [')      # cut mid-write
    cut = write_run(tmp_path / "cut", config("parity"), [40, 50])
    lines = (cut / "metrics.csv").read_text().splitlines()
    (cut / "metrics.csv").write_text("\n".join(lines[:-5]) + "\n")                   # last rows missing
    partial = write_run(tmp_path / "partial", config("modsub"), [40, 50])
    text = (partial / "metrics.csv").read_text()
    (partial / "metrics.csv").write_text(text[: text.rindex("\n", 0, -1)] + "\n60,1,1,0.5\n")  # half a row
    table, warnings = collect_warned(tmp_path)
    assert set(table.run_dir) == {str(good)}
    assert len(warnings) == 3
    for folder, file in ((bad_json, "summary.json"), (cut, "metrics.csv"), (partial, "metrics.csv")):
        assert sum(str(folder / file) in w for w in warnings) == 1
    assert all("\n" not in w for w in warnings)


def test_collect_cli_reports_skips_on_stderr_and_writes_the_table(tmp_path, monkeypatch, capsys):
    write_run(tmp_path / "runs" / "a", config("modadd"), [40, None])
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "summary.json").write_text("not json")
    monkeypatch.chdir(tmp_path)
    cli.main(["collect", "runs"])
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == ["grokmuon: skipped runs/b/summary.json: unreadable or not a grokmuon summary"]
    table = load(tmp_path / "results" / "synthetic" / "runs.csv")
    assert len(table) == 2 and "results/synthetic/runs.csv" in out
    cli.main(["collect", "runs", "--out", "elsewhere/t.csv"])
    assert len(load(tmp_path / "elsewhere" / "t.csv")) == 2


def test_collect_cli_with_nothing_to_collect_fails_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.main(["collect", "empty"])
    assert e.value.code != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_duplicates_keep_the_newest_complete_run(tmp_path):
    cfg = config("modadd", seeds=[0, 1])
    write_run(tmp_path / "old", cfg, [40, 50], written_at="2026-01-01T00:00:00+0000")
    write_run(tmp_path / "new", cfg, [41, 51], written_at="2026-02-01T00:00:00+0000")
    write_run(tmp_path / "newest_unfinished", cfg, [42, 52], status="interrupted",
              written_at="2026-03-01T00:00:00+0000")
    table, _ = collect_warned(tmp_path)
    assert len(table) == 2
    assert set(table.run_dir) == {str(tmp_path / "new")}
    # a member of a bigger ensemble is the same run as the solo run of its seed
    solo = config("modadd", seeds=[1])
    write_run(tmp_path / "solo", solo, [99], written_at="2026-04-01T00:00:00+0000")
    table, _ = collect_warned(tmp_path)
    assert len(table) == 2
    assert table.set_index("seed").loc[1, "grokking_epoch"] == 99


def test_an_unfinished_run_is_kept_when_there_is_nothing_better_but_not_reported(tmp_path):
    write_run(tmp_path / "done", config("modadd"), [40, 50])
    write_run(tmp_path / "running", config("gcd"), [None, None], status="running")
    table, _ = collect_warned(tmp_path)
    assert set(table.run_status) == {"complete", "running"}
    assert set(finished(table).task) == {"modadd"}
    with pytest.raises(TableError):
        finished(table[table.run_status == "running"])


def test_a_summary_without_a_hash_gets_it_from_its_config(tmp_path):
    cfg = config("modadd")
    folder = write_run(tmp_path / "old_format", cfg, [40, 50])
    summary = json.loads((folder / "summary.json").read_text())
    del summary["config_hash"], summary["written_at"]
    for m in summary["members"]:
        del m["member_hash"]
    (folder / "summary.json").write_text(json.dumps(summary))
    table, warnings = collect_warned(tmp_path)
    assert warnings == [] and set(table.config_hash) == {config_hash(cfg)}
    assert set(table.member_hash) == {member_hash(cfg, 0), member_hash(cfg, 1)}


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(TableError, match="no results table"):
        load(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TableError, match="not a results table"):
        load(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(TableError, match="holds no runs"):
        load(tmp_path / "header.csv")


# --- run identity ---------------------------------------------------------------------------------

# Written from what each key does, not read from runid: where or how a run is watched, saved or labelled
# (the same numbers), against what it computes.
WATCHED = {"logger": {"name": "wandb", "mode": "offline"}, "progress": True, "eval_chunk": 7, "train_chunk": 1,
           "experiment": "another", "device": "cuda", "role": "tune", "checkpoint_every": 5,
           "keep_weights": False, "probes": False, "eval_train": "lazy", "eval_train_every": 3}
COMPUTED = {"max_epochs": 301, "patience": 11, "batch_size": 256, "seeds": [0, 2], "grok_val_acc": 0.9,
            "grok_train_acc": 0.98, "precision": "bf16", "stop": "race", "dropout_masks": "hash",
            "task": {"name": "modadd", "p": 97, "train_frac": 0.3, "n_bits": 10},
            "head": {"name": "stablemax"}, "grid": {"lr": [0.01, 0.02], "weight_decay": None}}


def test_config_hash_ignores_what_does_not_change_results():
    cfg = config("modadd")
    for key, value in WATCHED.items():
        assert config_hash({**cfg, key: value}) == config_hash(cfg), key
    for key, value in COMPUTED.items():
        assert config_hash({**cfg, key: value}) != config_hash(cfg), key
    assert config_hash({**cfg, "optimizer": {**cfg["optimizer"], "lr": 0.03}}) != config_hash(cfg)
    assert config_hash({**cfg, "model": {**cfg["model"], "dropout": 0.0}}) != config_hash(cfg)
    assert config_hash(OmegaConf.create({**cfg, "hydra": {"x": 1}})) == config_hash(cfg)


def test_member_hash_is_the_solo_runs_hash():
    cfg = config("modadd", seeds=[3, 4, 5])
    assert member_hash(cfg, 4) == config_hash(config("modadd", seeds=[4]))


# --- resume decisions -----------------------------------------------------------------------------

def test_decide_and_set_aside(tmp_path):
    cfg = config("modadd")
    h = config_hash(cfg)
    own = {".hydra", "app.log"}
    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / ".hydra").mkdir()
    assert decide(folder, h, own)[0] == "fresh"                 # only this attempt's own files
    write_run(folder, cfg, [40, 50])
    assert decide(folder, h, own)[0] == "skip"
    assert decide(folder, "another", own)[:2] == ("set_aside", "superseded")
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    assert decide(folder, h, own)[:2] == ("set_aside", "incomplete")
    (folder / "summary.json").write_text("{")
    assert decide(folder, h, own)[:2] == ("set_aside", "incomplete")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    aside = set_aside(folder, "incomplete", own)
    assert aside.name.startswith("cell.incomplete-")
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == before       # moved, byte for byte
    assert [p.name for p in folder.iterdir()] == [".hydra"]                  # this attempt's files stay
    (folder / "metrics.csv").write_text("x")
    second = set_aside(folder, "incomplete", own)
    assert second != aside and aside.exists() and (second / "metrics.csv").exists()


def test_a_run_that_a_live_process_is_training_is_left_alone(tmp_path):
    import os
    import socket
    cfg = config("modadd")
    folder = write_run(tmp_path / "cell", cfg, [None, None], status="running")
    summary = json.loads((folder / "summary.json").read_text())
    here = {**summary, "host": socket.gethostname()}
    (folder / "summary.json").write_text(json.dumps({**here, "pid": os.getppid()}))    # alive
    assert decide(folder, config_hash(cfg))[0] == "busy"
    (folder / "summary.json").write_text(json.dumps({**here, "pid": 4_194_305}))   # above any pid_max
    assert decide(folder, config_hash(cfg))[:2] == ("set_aside", "incomplete")
    (folder / "summary.json").write_text(json.dumps({**summary, "host": "elsewhere", "pid": os.getppid()}))
    assert decide(folder, config_hash(cfg))[:2] == ("set_aside", "incomplete")      # cannot check: redo


def test_heads_table_gives_each_task_and_head_its_own_exact_test(tmp_path):
    from grokmuon.report import cell_verdict
    fast, slow = [20, 21, 22, 23, 24], [60, 61, 62, 63, 64]
    for head, muon, adamw in (("softmax", fast, slow), ("stablemax", slow, fast), ("sparsemax", fast, fast)):
        for opt, outs in (("muon", muon), ("adamw", adamw)):
            write_run(tmp_path / f"{head}-{opt}", config(optimizer=opt, head=head, seeds=range(5)), outs)
    text = report(collect([tmp_path]), "t")
    section = text.split("## By head, per task")[1].split("\n## ")[0]
    rows = {r.split(" | ")[1]: r for r in section.splitlines() if r.startswith("| modadd")}
    assert rows["softmax"].endswith("| Muon |") and "0.00794 (exact, 252)" in rows["softmax"]
    assert rows["stablemax"].endswith("| AdamW |")
    assert "neither" in rows["sparsemax"]
    assert cell_verdict(-3.0, 0.1) == "neither (Holm p 0.1)" and cell_verdict(2.0, 0.01) == "AdamW"


def test_sooner_names_an_optimizer_only_where_the_holm_adjusted_p_says_so(tmp_path):
    # 14 cells, each with every Muon member before every AdamW member: each exact p is 2/252 = 0.0079,
    # but over a family of 14 Holm adjusts each to 14 x 0.0079 = 0.11: no cell alone names a winner.
    fast, slow = [20, 21, 22, 23, 24], [60, 61, 62, 63, 64]
    for task in ("modadd", "modsub", "modmul", "moddiv", "gcd", "modexp", "parity"):
        for head in ("softmax", "stablemax"):
            for opt, outs in (("muon", fast), ("adamw", slow)):
                write_run(tmp_path / f"{task}-{head}-{opt}", config(task, opt, head, seeds=range(5)), outs)
    text = report(collect([tmp_path]), "t")
    section = text.split("## By head, per task")[1].split("\n## ")[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and "exact" in r]
    assert len(rows) == 14
    assert all("0.00794 (exact, 252) | 0.111 | neither (Holm p 0.11) |" in r for r in rows)
    assert "one family, every cell of this table with a test (14)" in section
    tests = text.split("## Muon vs AdamW")[1].split("\n## ")[0]
    assert "| all |" in tests and "| primary |" in tests       # the pooled test is the primary, unadjusted


def test_a_key_added_since_a_run_reads_as_what_that_run_did(tmp_path):
    # Older config.json files lack the keys added since (runid.HASHED_V1); such a run did what the key's default does,
    # so its row says so instead of a blank that would set it apart from a newer run of the same config.
    write_run(tmp_path / "runs" / "old", config(optimizer="adamw"), [40, 50])
    write_run(tmp_path / "runs" / "new", config(optimizer="muon", dropout_masks="hash"), [40, 50])
    table = collect([tmp_path / "runs"])
    assert dict(zip(table.optimizer, table.dropout_masks)) == {"adamw": "auto", "muon": "hash"}
    assert (table.stop == "patience").all()


def test_the_tuning_members_are_never_judged_but_runs_beside_the_confirmation_are(tmp_path):
    # results/heads_tuned: `grokmuon tune`'s folders (tuning races and confirmations) collected with the
    # other heads run at the chosen settings. The races chose the settings: they stay out of every test.
    write_run(tmp_path / "runs" / "race", config(optimizer="adamw", role="tune"), [40, 50])
    write_run(tmp_path / "runs" / "confirm", config(optimizer="adamw", role="confirm", seeds=(100, 101)), [40, 50])
    write_run(tmp_path / "runs" / "stablemax", config(optimizer="adamw", head="stablemax", seeds=(100, 101)), [60, None])
    done = finished(collect([tmp_path / "runs"]))
    assert sorted(judged(done)["head"] + "/" + judged(done)["role"].fillna("")) == \
        ["softmax/confirm", "softmax/confirm", "stablemax/", "stablemax/"]
    races = done[done.role == "tune"]
    assert judged(races).equals(races)               # a table of races alone is judged on the races
    text = report(collect([tmp_path / "runs"]), "t.csv")
    assert "confirmation runs of `grokmuon tune` and 2 members run beside them" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| modadd | stablemax |"))
    assert "none for this head: softmax's choice" in row


def test_collect_adds_the_near_max_epoch_and_the_cost_to_grok(tmp_path):
    from grokmuon import cost
    adamw = write_run(tmp_path / "a", config(optimizer="adamw", seeds=(0, 1)), [20, None])
    muon = write_run(tmp_path / "m", config(optimizer="muon", seeds=(0, 1)), [20, 30])
    # Seed 1 of the Muon run climbs on to 1.0 three epochs after its first crossing (0.97): the
    # outside study's rule waits for it, ours does not.
    m = pd.read_csv(muon / "metrics.csv")
    m.loc[(m.member == 1) & (m.epoch >= 33), "val_acc"] = 1.0
    m.to_csv(muon / "metrics.csv", index=False)
    table, _ = collect_warned(tmp_path)
    row = lambda run, seed: table[(table.run_dir == str(run)) & (table.seed == seed)].iloc[0]
    assert row(muon, 1).grokking_epoch == 30 and row(muon, 1).grokking_epoch_near_max == 33
    assert row(muon, 0).grokking_epoch_near_max == 20 == row(adamw, 0).grokking_epoch_near_max
    assert pd.isna(row(adamw, 1).grokking_epoch_near_max)          # never reached 0.95
    # wall_s of the run's clock at the grokking epoch (runfolders writes 0.1 s an epoch from 0).
    assert row(muon, 1).wall_s_to_grok == pytest.approx(2.9)
    assert pd.isna(row(adamw, 1).wall_s_to_grok) and pd.isna(row(adamw, 1).flops_to_grok)
    # modadd at p = 97, train_frac 0.5: 4704 train rows of 9409, batch 512 (10 steps); 1 block, d 32, m 64.
    fwd = cost.forward_flops(seq=4, layers=1, d=32, m=64, vocab=99)
    assert row(adamw, 0).flops_to_grok == 20 * (3 * fwd * 4704 + fwd * 9409)
    assert row(muon, 0).flops_to_grok - row(adamw, 0).flops_to_grok == 20 * 10 * cost.muon_step_flops(1, 32, 64, 5)
    back = load(_written(tmp_path, table))
    assert back["flops_to_grok"].dtype == "Int64" and back["grokking_epoch_near_max"].dtype == "Int64"


def test_the_newton_schulz_flops_follow_the_registry_ns_steps_and_split(tmp_path):
    """NorMuon counts Muon's Newton-Schulz FLOPs (the registry says it orthogonalises), ns_steps=0 counts
    none, split=all adds the embedding and the head, AdamW with ⊥Grad none."""
    from grokmuon import cost

    def run(folder, **opt):
        cfg = config(seeds=(0,))
        cfg["optimizer"] = {"name": "muon", "lr": 0.02, "weight_decay": 0.05, "adamw_lr": 1e-3,
                            "adamw_weight_decay": 1.0, **opt}
        return write_run(tmp_path / folder, cfg, [20])
    runs = {"adamw": write_run(tmp_path / "a", config(optimizer="adamw", seeds=(0,)), [20]),
            "normuon": run("n", name="normuon"), "ns0": run("z", ns_steps=0), "all": run("l", split="all", ns_steps=2),
            "orth": run("o", name="adamw", lr=1e-3, weight_decay=1.0, orthogonal_grad=True)}
    table, _ = collect_warned(tmp_path)
    flops = {k: int(table[table.run_dir == str(f)].iloc[0].flops_to_grok) for k, f in runs.items()}
    # 1 block, d 32, m 64, vocab 99; 10 optimizer steps an epoch, 20 epochs: 200 steps.
    hidden5 = 4 * 5 * (4 * 32 ** 3 + 2 * 32 ** 3) + 3 * 5 * (4 * 32 * 32 * 64 + 2 * 32 ** 3)
    hidden2, vocab2 = hidden5 * 2 // 5, 2 * 2 * (4 * 32 * 32 * 99 + 2 * 32 ** 3)
    assert cost.muon_step_flops(1, 32, 64, 5) == hidden5
    assert flops["normuon"] - flops["adamw"] == 200 * hidden5
    assert flops["ns0"] == flops["adamw"] == flops["orth"]
    assert flops["all"] - flops["adamw"] == 200 * (hidden2 + vocab2)


def _written(tmp_path, table):
    path = tmp_path / "runs.csv"
    table.to_csv(path, index=False)
    return path


def test_the_report_gives_the_cost_to_grok_per_task_and_optimizer(tmp_path):
    write_run(tmp_path / "a", config(optimizer="adamw", seeds=range(3)), [20, 40, None])
    write_run(tmp_path / "m", config(optimizer="muon", seeds=range(3)), [10, 12, 14])
    text = report(collect([tmp_path]), "t")
    section = text.split("## Cost to grok")[1].split("\n## ")[0]
    rows = {r.split(" | ")[1]: r.split(" | ") for r in section.splitlines() if r.startswith("| modadd")}
    # AdamW: grokked at 20 and 40 (median 30), wall 0.1 s an epoch from 0 (1.9, 3.9: median 2.9 -> "3").
    assert rows["adamw"][2:7] == ["2/3", "30", "2/3", "30", "3"]
    assert rows["muon"][2:5] == ["3/3", "12", "3/3"]
    assert "grokked members only" in section.replace("**", "")
    # The near-max rule sees only the epochs run: the section says how far past the first crossing they went.
    assert "past its first crossing (patience here: 10)" in section
    # One task and one head: their rows are the primary test again, not subgroups in Holm's family.
    tests = text.split("## Muon vs AdamW")[1].split("\n## ")[0]
    assert "| task=modadd |" in tests and tests.count("| = all |") == 2
    # FLOPs: the median of 20 and 40 epochs' worth is 30 epochs' (1 block, d 32, m 64; 4704 of 9409 rows).
    from grokmuon import cost
    fwd = cost.forward_flops(seq=4, layers=1, d=32, m=64, vocab=99)
    assert rows["adamw"][7].rstrip(" |") == format(30 * (3 * fwd * 4704 + fwd * 9409) / 1e12, ".3g")


def test_the_tuned_report_gives_its_overall_test_without_the_reused_confirmation_strata(tmp_path):
    fast, slow = [20, 21, 22, 23, 24], [60, 61, 62, 63, 64]
    for opt in ("adamw", "muon"):
        write_run(tmp_path / f"race-{opt}", config(optimizer=opt, role="tune"), [40, 50])
        write_run(tmp_path / f"confirm-{opt}", config(optimizer=opt, role="confirm", seeds=range(100, 105)),
                  fast if opt == "muon" else slow)
        write_run(tmp_path / f"stablemax-{opt}", config(optimizer=opt, head="stablemax", seeds=range(100, 105)),
                  [30, 61, 22, 63, 24] if opt == "muon" else [20, 31, 62, 23, 64])
    text = report(collect([tmp_path]), "t")
    section = text.split("## Tuned against tuned")[1].split("\n## ")[0]
    assert "The primary test, all rows stratified by task and head: z = " in section
    line = next(s for s in section.splitlines() if s.startswith("Without the 1 of its 2 strata (with both optimizers)"))
    # The new stratum alone is the stablemax cell's own exact test: the same z and p as its own row.
    row = next(r for r in section.splitlines() if r.startswith("| modadd | stablemax"))
    z, p = row.split(" | ")[-4], row.split(" | ")[-3]
    assert f"z = {float(z):.3f}, permutation p = {p}" in line


def test_the_report_says_where_the_members_that_did_not_grok_stopped(tmp_path):
    write_run(tmp_path / "a", config(optimizer="adamw", seeds=range(3), max_epochs=60), [20, None, None])
    write_run(tmp_path / "m", config(optimizer="muon", seeds=range(2), max_epochs=60), [10, 12])
    text = report(collect([tmp_path]), "t")
    section = text.split("## Where the members that did not grok stopped")[1].split("\n## ")[0]
    rows = [r.split(" | ") for r in section.splitlines() if r.startswith("| modadd")]
    assert len(rows) == 1 and rows[0][2] == "adamw"                # Muon grokked every member: no row
    # runfolders' censored curve: train saturates at 0.995 by epoch 25, val 0.42 from epoch 50 on.
    assert rows[0][3:] == ["2", "2", "0", "60", "1.00", "0.42 |"]
    from grokmuon.report_tables import span
    assert span(pd.Series([0.94, 0.66])) == "0.66–0.94" and span(pd.Series([0.671, 0.668])) == "0.67"


def test_a_row_of_one_arm_is_no_test_even_when_its_n_matches_what_the_all_row_compares(tmp_path):
    # AdamW at batch 128 (3 seeds) and 512 (1 seed), Muon at 512 (2 seeds): the all row compares batch
    # 512 alone, 1 + 2 = 3 members, and the batch-128 row holds 3 AdamW members and compares none. The
    # same count is not the same members: that row is no test (Holm "–"), not the primary again ("= all").
    write_run(tmp_path / "a128", config(optimizer="adamw", seeds=range(3), batch_size=128), [20, 30, 40])
    write_run(tmp_path / "a512", config(optimizer="adamw", seeds=[3]), [50])
    write_run(tmp_path / "m512", config(optimizer="muon", seeds=[2, 3]), [45, 55])
    tests = report(collect([tmp_path]), "t").split("## Muon vs AdamW")[1].split("\n## ")[0]
    rows = {r.split(" | ")[0].lstrip("| "): r.split(" | ") for r in tests.splitlines() if r.startswith("| ")}
    assert rows["all"][1] == "1/2" and rows["all"][6] == "primary"
    assert rows["batch_size=128"][1] == "3/0" and rows["batch_size=128"][6] == "–"
    assert rows["batch_size=512"][6] == "= all" and rows["task=modadd"][6] == "= all"


def test_the_tuned_primary_test_and_the_all_row_give_one_p_where_a_stratum_holds_one_arm(tmp_path):
    # Three tasks of 5 against 5 (252^3 arrangements: a drawn p) and a batch-128 stratum of AdamW alone.
    # Both places must test the same members in the same order, so the same seeded draws give one p.
    for task, shift in (("modadd", 0), ("modsub", 3), ("modmul", 6)):
        for opt in ("adamw", "muon"):
            write_run(tmp_path / f"race-{task}-{opt}", config(task, optimizer=opt, role="tune"), [40, 50])
            epochs = [20 + shift + 2 * i + (opt == "adamw") * 3 for i in range(5)]
            write_run(tmp_path / f"confirm-{task}-{opt}",
                      config(task, optimizer=opt, role="confirm", seeds=range(100, 105)), epochs)
    write_run(tmp_path / "confirm-alone", config(optimizer="adamw", role="confirm", seeds=range(100, 105),
                                                 batch_size=128), [30, 31, 32, 33, 34])
    text = report(collect([tmp_path]), "t")
    primary = text.split("## Tuned against tuned")[1].split("permutation p = ")[1].split(" (z < 0")[0]
    tests = text.split("## Muon vs AdamW")[1].split("\n## ")[0]
    row = next(r for r in tests.splitlines() if r.startswith("| all |")).split(" | ")
    assert "±" in primary and row[5] == primary
    delay = text.split("## Learning speed and grokking delay")[1].split("\n## ")[0]
    assert next(r for r in delay.splitlines() if r.startswith("| grokking epoch |")).split(" | ")[2] == primary


def test_test_counts_skip_untested_and_agree_in_number():
    """A Holm family's count is of the tests run (NaN: none could be), in words a reader can read: a family
    where one of two quantities had a test once read "(1 tests)"."""
    nan = float("nan")
    assert n_tests([0.2, nan]) == "1 test"
    assert n_tests([0.2, 0.01, nan]) == "2 tests"
    assert n_tests([nan]) == "0 tests"

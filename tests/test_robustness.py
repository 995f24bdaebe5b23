"""Nothing lost: a diverging member, Ctrl-C / SIGTERM, a failed or killed write, a corrupt results
file, a folder that cannot be written, and the same numbers twice for the same seed (docs/robustness.md)."""
from __future__ import annotations

import csv
import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import grokmuon.train as train_mod
from grokmuon import cli, runfolder
from grokmuon.job import StopFlag
from grokmuon.report import report
from grokmuon.runfolder import decide
from grokmuon.runid import config_hash
from grokmuon.results import TableError, collect, finished, load
from grokmuon.train import train

from conftest import REPO, cli_env, grokmuon_exe
from runfolders import config, write_run

TINY = ("task=parity", "task.n_bits=6", "batch_size=16", "patience=1000")


def strict_json(path: Path) -> dict:
    """summary.json as a strict JSON reader sees it (no NaN, no Infinity)."""
    def bad(name):
        raise ValueError(f"{path} holds {name}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=bad)


def metric_rows(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# --- divergence --------------------------------------------------------------------------------------

def run_recording(cfg, fault=None, monkeypatch=None):
    """train(cfg) with every epoch's numbers, the model and a copy of its weights after each epoch;
    fault(epoch, model) may damage the model after an epoch's evaluation."""
    seen = {"numbers": [], "weights": []}
    if monkeypatch is not None:
        real = train_mod.build_model

        def keep(*args, **kw):
            seen["model"] = real(*args, **kw)
            return seen["model"]
        monkeypatch.setattr(train_mod, "build_model", keep)

    def on_epoch(epoch, numbers, results):
        seen["numbers"].append(numbers)
        if "model" in seen:
            seen["weights"].append([p.detach().clone() for p in seen["model"].parameters()])
            if fault is not None:
                fault(epoch, seen["model"])
    results = train(cfg, on_epoch=on_epoch)
    return results, seen


def member(numbers: list[dict], e: int) -> list[tuple]:
    return [tuple(n[k][e] for k in ("train_acc", "val_acc", "train_loss", "val_loss")) for n in numbers]


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_a_member_with_nan_weights_is_marked_diverged_and_the_other_trains_as_without_it(
        compose_cfg, monkeypatch, optimizer):
    cfg = compose_cfg(*TINY, f"optimizer={optimizer}", "max_epochs=4", "seeds=[0,1]")

    def poison(epoch, model):           # after epoch 1, member 1's weights become NaN
        if epoch == 1:
            with torch.no_grad():
                for p in model.parameters():
                    p[1] = float("nan")
    results, seen = run_recording(cfg, poison, monkeypatch)
    clean, clean_seen = run_recording(cfg)
    assert (results[1].status, results[1].diverged_epoch, results[1].epochs_run) == ("diverged", 2, 2)
    assert results[0].status in ("censored", "grokked") and results[0].epochs_run == 4
    # Member 0 trained exactly as in the run without the fault, epoch by epoch.
    assert member(seen["numbers"], 0) == member(clean_seen["numbers"], 0)
    assert (results[0].grokking_epoch, results[0].final) == (clean[0].grokking_epoch, clean[0].final)
    # ... and like a solo run of its seed, to float rounding (batched matmuls of another size).
    _, solo = run_recording(compose_cfg(*TINY, f"optimizer={optimizer}", "max_epochs=4", "seeds=[0]"))
    for ours, alone in zip(member(seen["numbers"], 0), member(solo["numbers"], 0)):
        assert ours == pytest.approx(alone, rel=1e-5, abs=1e-6)


def test_a_diverged_member_stops_updating(compose_cfg, monkeypatch):
    """A member whose loss is inf while its weights are still finite: frozen at that epoch's weights
    (without the freeze, momentum and weight decay would go on moving them)."""
    cfg = compose_cfg(*TINY, "optimizer=muon", "max_epochs=5", "seeds=[0,1]")
    real_eval = train_mod.evaluate
    calls = []

    def inf_loss_at_epoch_2(*args, **kw):
        numbers = real_eval(*args, **kw)
        calls.append(1)
        if len(calls) == 2:
            numbers["val_loss"][1] = float("inf")
        return numbers
    monkeypatch.setattr(train_mod, "evaluate", inf_loss_at_epoch_2)
    results, seen = run_recording(cfg, monkeypatch=monkeypatch)
    assert (results[1].status, results[1].diverged_epoch) == ("diverged", 2)
    at_divergence, last = seen["weights"][1], seen["weights"][-1]
    assert len(seen["weights"]) == 5
    for before, after in zip(at_divergence, last):
        assert torch.equal(before[1], after[1])                 # member 1 frozen from epoch 2 on
        assert torch.isfinite(after[1]).all()
    assert any(not torch.equal(b[0], a[0]) for b, a in zip(at_divergence, last))   # member 0 trained on
    monkeypatch.setattr(train_mod, "evaluate", real_eval)
    _, clean = run_recording(cfg)
    assert member(seen["numbers"], 0) == member(clean["numbers"], 0)


def test_a_huge_learning_rate_diverges_and_is_recorded(tmp_path, capsys):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [grokmuon_exe(), "train", "model=tiny", *TINY, "optimizer=adamw", "optimizer.lr=1e6", "max_epochs=50",
         "seeds=[0,1]", "logger=none", "progress=false", "device=cpu", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=300, env=cli_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = strict_json(run_dir / "summary.json")
    assert summary["status"] == "complete" and summary["counts"] == {"diverged": 2}
    for m in summary["members"]:
        assert m["status"] == "diverged" and not m["censored"] and m["grokking_epoch"] is None
        assert 1 <= m["diverged_epoch"] == m["epochs_run"] < 50          # stopped there, not at the budget
    rows = metric_rows(run_dir)
    assert max(int(r["epoch"]) for r in rows) == max(m["diverged_epoch"] for m in summary["members"])
    assert "2 members: 2 diverged" in proc.stdout and "NaN/inf at epoch" in proc.stdout
    # collect, report and the statistics count it apart: not censored, not in any mean.
    table = collect([tmp_path])
    done = finished(table)
    assert list(done["diverged"]) == [True, True] and not done["grokked"].any()
    assert (done["time"] == 50).all() and not done["event"].any()       # KM: censored at the budget
    line = next(ln for ln in report(table, "t").split("## By optimizer")[1].splitlines() if ln.startswith("| adamw"))
    n, grokked, censored, diverged = (int(c) for c in line.split("|")[2:6])
    assert (n, grokked, censored, diverged) == (2, 0, 0, 2)


def test_a_member_that_grokked_then_diverged_counts_as_diverged_only(tmp_path):
    cfg = config("modadd", seeds=[0, 1, 2])
    folder = write_run(tmp_path / "run", cfg, [40, None, "diverged"])
    summary = json.loads((folder / "summary.json").read_text())
    summary["members"][2]["grokking_epoch"] = 20                     # grokked at 20, diverged at 30
    (folder / "summary.json").write_text(json.dumps(summary))
    done = finished(collect([tmp_path]))
    assert list(done["grokked"]) == [True, False, False]
    assert list(done["diverged"]) == [False, False, True]
    assert done["time"].tolist() == [40.0, 300.0, 300.0] and done["event"].tolist() == [True, False, False]
    line = next(ln for ln in report(collect([tmp_path]), "t").split("## By optimizer")[1].splitlines()
                if ln.startswith("| muon"))
    assert [int(c) for c in line.split("|")[2:6]] == [3, 1, 1, 1]
    assert "40.0 ± –" in line                                         # the mean is member 0's alone


# --- interruption ----------------------------------------------------------------------------------

def start_long_run(run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [grokmuon_exe(), "train", "model=tiny", *TINY, "max_epochs=100000", "seeds=[0,1]", "logger=none",
         "progress=false", "device=cpu", f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=run_dir.parent)


def wait_for_epochs(proc: subprocess.Popen, run_dir: Path, n: int, safety_net: float = 1800) -> None:
    """Wait for the event itself, n epochs' rows in metrics.csv, however slow the machine; the run cannot
    end on its own first (max_epochs=100000), and if it dies the wait ends with its error. The safety net
    only keeps a hung run from hanging the suite."""
    end = time.monotonic() + safety_net
    while not ((run_dir / "metrics.csv").exists() and len(metric_rows(run_dir)) >= 2 * n):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"no {n} epochs written in {safety_net} s: the run hangs")
        time.sleep(0.1)


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT], [signal.SIGINT, signal.SIGINT]],
                         ids=["SIGTERM", "Ctrl-C", "Ctrl-C twice"])
def test_a_stopped_run_keeps_its_metrics_and_says_interrupted(tmp_path, signals):
    run_dir = tmp_path / "run"
    proc = start_long_run(run_dir)
    wait_for_epochs(proc, run_dir, 3)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.01)
    out, err = proc.communicate(timeout=1800)         # it ends after this epoch; the timeout only guards a hang
    # 130, or killed by the second SIGINT during interpreter shutdown after its files were written
    # (Python then has no handler left): a shell shows 130 for both.
    assert proc.returncode == 130 or len(signals) > 1 and proc.returncode == -signal.SIGINT, err[-3000:]
    assert "Traceback" not in err
    if proc.returncode == 130:   # (killed during shutdown, allowed above, may end before the message)
        # The closing "grokmuon: interrupted ..." line is the last: signals after it print nothing.
        assert err.strip().splitlines()[-1].startswith("grokmuon: interrupted"), err[-3000:]
    summary = strict_json(run_dir / "summary.json")
    assert summary["status"] == "interrupted" and summary["reason"].startswith("stopped")
    rows = metric_rows(run_dir)
    for m in summary["members"]:
        assert m["status"] == "interrupted" and m["epochs_run"] >= 3
        mine = [int(r["epoch"]) for r in rows if int(r["member"]) == m["member"]]
        # nothing lost: every epoch up to the last one written (a second Ctrl-C may cut the last epoch)
        assert mine == list(range(1, m["epochs_run"] + 1)) or len(signals) > 1 and \
            mine == list(range(1, m["epochs_run"]))
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("train_acc", "val_acc", "train_loss"))
    # collect keeps it as unfinished (no warning), and the next run of the sweep trains it again
    warnings = []
    table = collect([tmp_path], warn=warnings.append)
    assert warnings == [] and set(table["run_status"]) == {"interrupted"}
    cfg = json.loads((run_dir / "config.json").read_text())
    assert decide(run_dir, config_hash(cfg))[:2] == ("set_aside", "incomplete")


def test_stop_flag_notes_a_signal_after_the_files_are_written_without_a_word(capsys):
    before = signal.getsignal(signal.SIGINT)
    stop = StopFlag()
    try:
        stop._set(signal.SIGINT, None)                  # during training: a line, then a flag
        assert stop() and "stopping after this epoch" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):          # a second one during training: at once
            stop._set(signal.SIGINT, None)
        late = StopFlag()
        late.training, late.written = False, True
        late._set(signal.SIGTERM, None)
        assert late.signal == signal.SIGTERM and capsys.readouterr().err == ""
        late.restore()
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("when", ["while writing", "after writing"])
def test_ctrl_c_after_the_last_epoch_stops_the_sweep_and_keeps_the_run_complete(tmp_path, when):
    # Deterministic: the signal is sent from inside RunLog.finish (the files are being written) or from
    # the closing printout (they are written).
    run_dir = tmp_path / "run"
    hook = ("from grokmuon import runfolder as m\nobj = m.RunLog\nattr = 'finish'\n"
            if when == "while writing" else "from grokmuon import job as m\nobj = m\nattr = '_num'\n")
    script = (
        "import os, signal\n" + hook +
        "real = getattr(obj, attr)\n"
        "def then_ctrl_c(*a, **k):\n"
        "    out = real(*a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return out\n"
        "setattr(obj, attr, then_ctrl_c)\n"
        "from grokmuon import cli\n"
        f"cli.train_cmd(['model=tiny', *{list(TINY)!r}, 'max_epochs=2', 'seeds=[0]', 'logger=none',\n"
        f"               'progress=false', 'device=cpu', 'hydra.run.dir={run_dir}'])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=cli_env(), cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("grokmuon: stopped by SIGINT after") and "a re-run skips it" in last
    # while writing, the signal is acknowledged; once the files are written, it is noted in silence
    assert ("got SIGINT; writing the run's files" in proc.stderr) == (when == "while writing")
    summary = strict_json(run_dir / "summary.json")
    assert summary["status"] == "complete"
    assert decide(run_dir, config_hash(json.loads((run_dir / "config.json").read_text())))[0] == "skip"


# --- atomic writes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("breaks", ["os.replace", "os.fsync"])
def test_a_failed_summary_write_leaves_the_previous_one_and_no_temp_file(tmp_path, monkeypatch, breaks):
    folder = write_run(tmp_path / "run", config("modadd"), [40, 50])
    before = (folder / "summary.json").read_bytes()

    def disk_full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runfolder.os, breaks.split(".")[1], disk_full)
    with pytest.raises(OSError):
        runfolder.atomic_write_text(folder / "summary.json", '{"status": "running", "members": []}')
    monkeypatch.undo()
    assert (folder / "summary.json").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.csv", "summary.json"]


def test_collect_trusts_no_temp_file(tmp_path):
    """A process killed between writing the temp file and renaming it leaves .summary.json.tmp<pid>:
    collect reads the complete summary.json beside it, and a folder with only a temp file is no run."""
    folder = write_run(tmp_path / "run", config("modadd"), [40, 50])
    (folder / ".summary.json.tmp123").write_text('{"status": "complete", "members": [')
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / ".summary.json.tmp9").write_text(json.dumps(json.loads((folder / "summary.json").read_text())))
    warnings = []
    table = collect([tmp_path], warn=warnings.append)
    assert warnings == [] and set(table.run_dir) == {str(folder)} and len(table) == 2


# --- bad files ---------------------------------------------------------------------------------------

def test_more_bad_run_folders_are_reported_by_path_and_skipped(tmp_path):
    good = write_run(tmp_path / "good", config("modadd"), [40, None])
    bad = {}
    bad["config"] = write_run(tmp_path / "config", config("gcd"), [40, 50])
    (bad["config"] / "config.json").write_text('{"task": ')
    bad["list"] = write_run(tmp_path / "list", config("modsub"), [40, 50])
    (bad["list"] / "summary.json").write_text("[1, 2]")
    bad["garbled"] = write_run(tmp_path / "garbled", config("modmul"), [40, 50])
    text = (bad["garbled"] / "metrics.csv").read_text()
    (bad["garbled"] / "metrics.csv").write_text(text.replace("\n3,0,0,0.", "\n3,0,0,x0.", 1))
    bad["nul"] = write_run(tmp_path / "nul", config("parity"), [40, 50])
    text = (bad["nul"] / "metrics.csv").read_text()
    (bad["nul"] / "metrics.csv").write_text(text[: len(text) // 2] + "\0" * 300)   # a crash's zero-filled tail
    bad["empty"] = write_run(tmp_path / "empty", config("moddiv"), [40, 50])
    (bad["empty"] / "metrics.csv").write_text("")
    warnings = []
    table = collect([tmp_path], warn=warnings.append)
    assert set(table.run_dir) == {str(good)}
    assert len(warnings) == len(bad) and all("\n" not in w for w in warnings)
    for name, file in (("config", "config.json"), ("list", "summary.json"), ("garbled", "metrics.csv"),
                       ("nul", "metrics.csv"), ("empty", "metrics.csv")):
        assert sum(str(bad[name] / file) in w for w in warnings) == 1, (name, warnings)



def test_a_run_that_has_not_finished_an_epoch_yet_is_skipped_as_running_not_as_damaged(tmp_path):
    # collect during a sweep: the newest run folder has its summary ("running") and an empty metrics.csv.
    good = write_run(tmp_path / "good", config("modadd"), [40, None])
    new = write_run(tmp_path / "new", config("gcd"), [None, None])
    summary = json.loads((new / "summary.json").read_text())
    (new / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    (new / "metrics.csv").write_text("")
    warnings = []
    table = collect([tmp_path], warn=warnings.append)
    assert set(table.run_dir) == {str(good)}
    assert warnings == [f"{new}: running, no epoch written yet"]
    # A complete run with an empty metrics.csv is damage, named as such (above).
    (new / "summary.json").write_text(json.dumps({**summary, "status": "complete"}))
    warnings.clear()
    collect([tmp_path], warn=warnings.append)
    assert len(warnings) == 1 and "metrics.csv: unreadable" in warnings[0]

@pytest.mark.parametrize("damage", ["cut mid-row", "cut", "garbled", "header only", "binary"])
def test_accuracy_curves_skip_a_metrics_file_damaged_after_collect(tmp_path, damage):
    from grokmuon import figures_curves
    folders = [write_run(tmp_path / c, config(c, opt), [40, None]) for c, opt in (("modadd", "muon"),
                                                                                  ("gcd", "adamw"))]
    done = finished(collect([tmp_path]))
    path = folders[0] / "metrics.csv"
    text = path.read_text()
    path.write_bytes({"cut mid-row": text[: len(text) // 2 + 7].encode(),
                      "cut": text[: text.index("\n", len(text) // 2) + 1].encode(),
                      "garbled": text.replace("0.0", "0.x0", 3).encode(),
                      "header only": text.splitlines(keepends=True)[0].encode(),
                      "binary": b"\x89PNG\x00\xff\xfe" * 50}[damage])
    warned = []
    paths = figures_curves.fig4_curves_task(done, tmp_path / "figs", warn=warned.append)
    assert all(p.exists() for p in paths)
    assert len(warned) == 1 and str(path) in warned[0] and "\n" not in warned[0]


def test_a_cut_results_table_is_one_clear_error(tmp_path, capsys):
    write_run(tmp_path / "runs" / "a", config("modadd", seeds=[0, 1, 2]), [40, None, 60])
    table = collect([tmp_path / "runs"])
    runs = tmp_path / "runs.csv"
    table.to_csv(runs, index=False)
    text = runs.read_text()
    runs.write_text(text[: text.rindex("\n", 0, -1) + 40])             # the last row cut after 40 characters
    with pytest.raises(TableError, match=r"runs.csv: line 4 has no .*cut off"):
        load(runs)
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "--runs", str(runs)])
    assert e.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(runs) in err[0]


# --- disk --------------------------------------------------------------------------------------------

def grokmuon_train(tmp_path, *overrides) -> subprocess.CompletedProcess:
    return subprocess.run([grokmuon_exe(), "train", "model=tiny", *TINY, "max_epochs=2", "logger=none",
                           "progress=false", "device=cpu", *overrides],
                          capture_output=True, text=True, timeout=300, env=cli_env(), cwd=tmp_path)


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_an_output_folder_that_cannot_be_made_is_one_line_before_training(tmp_path, mode):
    (tmp_path / "a_file").write_text("not a folder")
    target = tmp_path / "a_file" / "out"
    over = [f"hydra.run.dir={target}"] if mode == "run" else ["-m", f"hydra.sweep.dir={target}"]
    proc = grokmuon_train(tmp_path, *over)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"grokmuon: error: cannot create the output folder {target}: {tmp_path / 'a_file'} is a file, not a folder"]
    assert proc.stdout == ""


def test_a_read_only_output_folder_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    """A folder this user may not write into. Root writes anywhere (CI runs as root), so the refusal is
    made where the check meets it: the temp file it tries in the nearest folder that exists."""
    import tempfile
    parent = tmp_path / "ro"
    parent.mkdir()
    real = tempfile.TemporaryFile

    def refused(*args, dir=None, **kw):
        if dir is not None and Path(dir) == parent:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kw)
    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "model=tiny", *TINY, "max_epochs=2", "logger=none", "progress=false", "device=cpu",
                  f"hydra.run.dir={parent / 'run'}"])
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [
        f"grokmuon: error: cannot create the output folder {parent / 'run'}: {parent}: Permission denied"]
    assert out == "" and list(parent.iterdir()) == []                  # nothing trained, nothing made


FAIL_AT_EPOCH_3 = textwrap.dedent("""
    import errno, sys
    import grokmuon.runfolder as runfolder
    real = runfolder.RunLog.log_epoch
    def log_epoch(self, epoch, numbers, results):
        if epoch == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, epoch, numbers, results)
    runfolder.RunLog.log_epoch = log_epoch
    from grokmuon.cli import main
    main(sys.argv[1:])
""")


def test_a_write_failure_mid_run_is_one_line_and_keeps_what_was_written(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", FAIL_AT_EPOCH_3, "train", "model=tiny", *TINY, "max_epochs=50", "seeds=[0,1]",
         "logger=none", "progress=false", "device=cpu", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=300, env=cli_env(), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"grokmuon: error: cannot write the run folder {run_dir}: No space left on device; training stopped "
        "after epoch 2; metrics.csv keeps epochs 1-2; summary.json says status failed"]
    summary = strict_json(run_dir / "summary.json")
    assert summary["status"] == "failed" and "No space left on device" in summary["reason"]
    assert [m["status"] for m in summary["members"]] == ["failed", "failed"]
    assert [(int(r["epoch"]), int(r["member"])) for r in metric_rows(run_dir)] == \
        [(1, 0), (1, 1), (2, 0), (2, 1)]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert decide(run_dir, config_hash(cfg))[:2] == ("set_aside", "incomplete")      # a re-run trains it


def test_abort_when_the_summary_cannot_be_written_either(tmp_path, compose_cfg, monkeypatch):
    from omegaconf import OmegaConf
    cfg = OmegaConf.to_container(compose_cfg(*TINY, "max_epochs=2", "seeds=[0,1]"), resolve=True)
    log = runfolder.RunLog(tmp_path / "run", cfg, "cpu")
    before = (tmp_path / "run" / "summary.json").read_bytes()

    def disk_full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runfolder, "atomic_write_text", disk_full)
    assert log.abort(None, "failed", "disk full") is False
    assert (tmp_path / "run" / "summary.json").read_bytes() == before     # still the last good version
    monkeypatch.undo()
    assert log.abort(None, "failed", "disk full") is True
    summary = strict_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "failed" and summary["reason"] == "disk full"


# --- determinism -------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_the_same_config_and_seed_give_identical_numbers_on_the_cpu(compose_cfg, optimizer):
    cfg = compose_cfg(*TINY, f"optimizer={optimizer}", "max_epochs=3", "seeds=[0,1]", "model.dropout=0.1")
    first, a = run_recording(cfg)
    torch.manual_seed(12345)                    # the global generator must not matter
    second, b = run_recording(cfg)
    assert a["numbers"] == b["numbers"]         # every number, exactly
    assert [vars(r) for r in first] == [vars(r) for r in second]
    assert a["numbers"][0] != a["numbers"][-1]  # and it trained


def test_wandb_runs_of_an_interrupted_run_are_closed_as_failed(tmp_path, compose_cfg):
    """W&B must not show an interrupted run as finished: abort closes each member's run with exit code 1,
    finish with 0."""
    from omegaconf import OmegaConf

    from grokmuon.runfolder import RunLog
    from grokmuon.train import MemberResult

    class FakeRun:
        def __init__(self):
            self.summary, self.exit_code = {}, None

        def finish(self, exit_code=None):
            self.exit_code = exit_code

    cfg = OmegaConf.to_container(compose_cfg("seeds=[0,1]"), resolve=True)
    for end, code in (("abort", 1), ("finish", 0)):
        log = RunLog(tmp_path / end, cfg, "cpu")
        runs = log._wandb = [FakeRun(), FakeRun()]
        results = [MemberResult(seed=s, lr=1e-3, weight_decay=1.0, status="grokked" if end == "finish" else "running",
                                grokking_epoch=3 if end == "finish" else None, epochs_run=3) for s in (0, 1)]
        log.abort(results, "interrupted", "stopped by SIGINT") if end == "abort" else log.finish(results)
        assert [r.exit_code for r in runs] == [code, code], end
        assert runs[0].summary["status"] == ("interrupted" if end == "abort" else "grokked")


def test_gpu_campaign_without_a_gpu_refuses_in_one_line_and_writes_nothing():
    """scripts/gpu_campaign.sh on a CPU-only machine: exit 2 and one line, before it writes anything (on a
    GPU machine too: CUDA_VISIBLE_DEVICES="" hides its GPUs from the script)."""
    stamp = REPO / "results" / "gpu" / ".started"
    before = stamp.stat().st_mtime if stamp.exists() else None
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_campaign.sh")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "no CUDA GPU" in done.stderr
    assert (stamp.stat().st_mtime if stamp.exists() else None) == before


def test_gpu_campaign_dry_run_on_the_cpu_writes_only_under_out(tmp_path):
    """DEVICE=cpu, OUT set, everything shrunk: the script runs all four phases (GPU tests, grid, bench,
    collect/report/figures) and packs what it wrote into $OUT/gpu_campaign.tgz, laid out as in the
    repository; the repository's tracked folders get nothing."""
    import tarfile
    out = tmp_path / "out"
    out.mkdir()
    watched = [REPO / "results" / "gpu", REPO / "results" / "paper", REPO / "multirun" / "paper"]
    before = {p: p.stat().st_mtime for d in watched if d.exists() for p in d.rglob("*")}
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "OUT": str(out), "BUDGET_S": "400",
           "PAPER_S": "200", "TASKS": "gcd", "GRID_ARGS": "model=tiny max_epochs=2 head=softmax seeds=[0]",
           "BENCH_ARGS": "--task parity --models tiny --members 1 --epochs 1 --rounds 1 --peak-size 64 --compile off"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_campaign.sh")], capture_output=True, text=True,
                          env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    log = (out / "results" / "gpu" / "campaign.log").read_text()
    for phase in ("phase 1: GPU tests", "phase 2: experiment=paper", "phase 3: bench", "phase 4: exit 0"):
        assert phase in log, log
    assert "paper gcd: exit 0" in log and "bench fp32: exit 0" in log, log
    with tarfile.open(out / "gpu_campaign.tgz") as tar:
        names = tar.getnames()
    cells = {n.split("/")[2] for n in names if n.startswith("multirun/paper/gcd-") and n.endswith("summary.json")}
    assert {c.split("-")[1] for c in cells} == {"muon", "adamw"}       # the two optimizers' softmax cells
    assert {"results/paper/runs.csv", "results/paper/report.md", "results/gpu/campaign.log"} <= set(names)
    assert any(n.startswith("results/gpu/bench-cpu-") for n in names)
    assert any(n.startswith("results/paper/figures/") for n in names)
    assert not any(n.endswith(".pt") for n in names)
    after = {p: p.stat().st_mtime for d in watched if d.exists() for p in d.rglob("*")}
    assert after == before                              # nothing written into the repository

"""What a user meets first: the run summary in plain words, the progress bar, `train --help`, `bench --help`,
one-line errors for an --out that cannot be written, the thread count, and git_sha when installed."""
from __future__ import annotations

import json
import os
import re
import tempfile
import subprocess
import sys
from pathlib import Path

import pytest

from grokmuon import cli, threads
from grokmuon.job import outcome_lines, span
from grokmuon.runfolder import checkout_sha, installed_sha

from conftest import REPO, grokmuon_exe, study_copy


def member(**kw) -> dict:
    m = {"task": "modadd", "optimizer": "muon", "head": "softmax", "seed": 0, "lr": 0.02, "weight_decay": 0.05,
         "status": "grokked", "grokking_epoch": 13, "memorisation_epoch": 12, "diverged_epoch": None,
         "epochs_run": 23, "final_train_acc": 1.0, "final_val_acc": 0.97}
    return {**m, **kw}


def test_the_run_summary_is_in_plain_words():
    lines = outcome_lines({"members": [member()], "counts": {"grokked": 1}})
    assert lines == ["  modadd muon softmax seed 0: grokked at epoch 13 (memorised at 12), final train 1.000 val 0.970",
                     "  1 member: 1 grokked"]
    summary = {"members": [member(status="diverged", grokking_epoch=None, memorisation_epoch=None, diverged_epoch=2,
                                  epochs_run=2, final_train_acc=None),
                           member(seed=1, status="censored", grokking_epoch=None, memorisation_epoch=41, epochs_run=1),
                           member(seed=2, status="interrupted", grokking_epoch=None, epochs_run=170)],
               "counts": {"censored": 1, "diverged": 1, "interrupted": 1}}
    one, two, three, total = outcome_lines(summary)
    assert one.endswith("seed 0: diverged: loss or weights became NaN/inf at epoch 2 (never memorised), "
                        "final train nan val 0.970")
    assert "seed 1: did not grok in 1 epoch (memorised at 41)" in two
    assert "seed 2: interrupted after 170 epochs, not grokked yet (memorised at 12)" in three
    assert total == "  3 members: 1 censored, 1 diverged, 1 interrupted"
    assert not any("None" in line for line in (one, two, three, total))
    # Cut off in its patience after it grokked: grokked, and unfinished, both said.
    cut = outcome_lines({"members": [member(status="interrupted", epochs_run=15), member(seed=1, status="interrupted",
                                                                                  grokking_epoch=None, epochs_run=15)],
                         "counts": {"interrupted": 2}})
    assert "seed 0: grokked at epoch 13, then interrupted after 15 epochs (memorised at 12)" in cut[0]
    assert cut[2] == "  2 members: 2 interrupted (1 of the unfinished had grokked)"


def test_the_progress_bar_writes_whole_lines_to_a_log_file():
    """Under nohup or Slurm stderr is a file: the bar's carriage returns would make one line of a whole run.
    There it writes a line at the start, at most one a minute, and one at the end, each ending in a newline."""
    import io

    from omegaconf import OmegaConf

    from grokmuon.job import progress_bar
    cfg = OmegaConf.create({"max_epochs": 100, "progress": True, "task": {"name": "modadd"},
                            "optimizer": {"name": "muon"}, "head": {"name": "softmax"}})
    log = io.StringIO()                     # isatty() is False, as for a file
    bar = progress_bar(cfg, log)
    for epoch in range(1, 6):
        bar.set_postfix_str(f"grokked {epoch}/5", refresh=False)
        bar.update(1)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("modadd/muon/softmax: 0/100 epochs")
    assert lines[1].startswith("modadd/muon/softmax: 5/100 epochs") and lines[1].endswith("grokked 5/5")


def test_the_progress_bar_shows_one_value_for_one_member():
    assert span([0.787]) == "0.787"
    assert span([0.7871, 0.7868]) == "0.787"                      # alike to the digits shown
    assert span([0.787, 0.5]) == "0.500-0.787"
    assert span([float("nan")]) == "-" and span([float("nan"), 0.5]) == "0.500"


def test_train_help_describes_the_main_keys_and_sweeps(capsys):
    cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for wanted in ("-m, --multirun", "seeds", "max_epochs", "optimizer.lr", "grid.lr", "device",
                   "task", "gcd, modadd, moddiv", "(default: modadd)", "(default: 1000)", "OMP_NUM_THREADS",
                   "--cfg job", "continues the run from its checkpoint"):
        assert wanted in text, wanted
    assert "Powered by Hydra" not in text          # not Hydra's raw dump


def test_every_bench_option_has_help(capsys):
    from grokmuon import bench
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    section = capsys.readouterr().out.split("options:")[1]
    entries = [e for e in re.split(r"\n  (?=-)", section) if e.strip()]
    names = {e.split()[0].rstrip(",") for e in entries}
    assert {"--task", "--batch", "--device", "--precision", "--train-frac", "--out"} <= names
    for e in entries:       # an option without help is its flag and metavar alone, on one line
        assert len(e.split()) > 2 or len(e.strip().splitlines()) > 1, f"no help: {e.strip()}"


@pytest.mark.parametrize("command", ["collect", "report", "figures"])
@pytest.mark.parametrize("where", ["under a file", "read-only"])
def test_an_out_that_cannot_be_written_is_one_line(command, where, tmp_path, capsys):
    from runfolders import config, write_run
    write_run(tmp_path / "runs" / "a", config(optimizer="adamw"), [40, None])
    write_run(tmp_path / "runs" / "b", config(optimizer="muon"), [20, 30])
    table = tmp_path / "runs.csv"
    cli.main(["collect", str(tmp_path / "runs"), "--out", str(table)])
    capsys.readouterr()
    if where == "under a file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "out"
    else:
        try:
            with tempfile.TemporaryFile(dir="/sys"):
                pytest.skip("/sys can be written here")
        except OSError:
            pass            # as expected: not even root may create a file there
        out = Path("/sys/grokmuon-out")
    args = {"collect": ["collect", str(tmp_path / "runs")], "report": ["report", "--runs", str(table)],
            "figures": ["figures", "--runs", str(table), "--only", "boxplot"]}[command]
    with pytest.raises(SystemExit) as e:
        cli.main([*args, "--out", str(out / "x.csv") if command == "collect" else str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"grokmuon: error: cannot write {out}"), err
    assert "Traceback" not in err[0]


def test_a_report_out_that_is_a_folder_is_one_line(tmp_path, capsys):
    from runfolders import config, write_run
    write_run(tmp_path / "runs" / "a", config(optimizer="adamw"), [40, None])
    cli.main(["collect", str(tmp_path / "runs"), "--out", str(tmp_path / "runs.csv")])
    (tmp_path / "folder").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "--runs", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "folder")])
    assert e.value.code == 2 and "it is a folder; give a file path" in capsys.readouterr().err


def test_threads_default_to_one_and_omp_num_threads_is_respected():
    env = {}
    threads.apply(env)
    assert env == {"OMP_NUM_THREADS": "1"}
    env = {"OMP_NUM_THREADS": "3"}
    threads.apply(env)
    assert env == {"OMP_NUM_THREADS": "3"}


@pytest.mark.parametrize("omp", [None, "2"])
def test_a_run_records_the_thread_count_it_used(omp, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "OMP_NUM_THREADS"}
    env.update({"WANDB_SILENT": "true", **({"OMP_NUM_THREADS": omp} if omp else {})})
    r = subprocess.run([grokmuon_exe(), "train", "model=tiny", "task=parity", "task.n_bits=4", "max_epochs=1",
                        "logger=none", "progress=false", "device=cpu", f"hydra.run.dir={tmp_path / 'run'}"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    device = json.loads((tmp_path / "run" / "summary.json").read_text())["device"]
    assert device.endswith(", 1 thread)" if omp is None else ", 2 threads)"), device


def test_git_sha_of_a_checkout_and_of_an_installed_package(tmp_path):
    here = REPO / "grokmuon" / "runfolder.py"
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert checkout_sha(here) == sha
    # a package inside someone else's repository (a virtual environment in their project) is not its checkout
    other = tmp_path / "project"
    pkg = other / ".venv" / "lib" / "grokmuon"
    pkg.mkdir(parents=True)
    (pkg / "runfolder.py").write_text("")
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    subprocess.run(["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    assert checkout_sha(pkg / "runfolder.py") is None
    assert installed_sha({"url": "https://example.org/grokmuon.git",
                          "vcs_info": {"vcs": "git", "commit_id": "a" * 40}}, "0.1") == "a" * 40
    assert installed_sha({"url": "file:///tmp/grokmuon", "dir_info": {}}, "0.1") == "installed package 0.1"


@pytest.mark.parametrize("lanes", [["16"], [], ["13", "x"]])
def test_study_script_checks_every_lane_before_running_any(lanes, tmp_path):
    # A bad lane anywhere in the queue stops at once with one usage line and exit 2, before any lane (or
    # an install) starts: in a copy of the script with no .venv beside it, nothing is built either.
    script = study_copy(tmp_path)
    run = subprocess.run(["bash", str(script), *lanes], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.startswith("usage: scripts/study.sh LANE [LANE ...]") and run.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scripts"]


def test_a_failing_lane_stops_at_its_first_failing_step_and_the_queue_goes_on(tmp_path):
    # A stand-in grokmuon that logs each call and fails `tune`: lane 7 fails at its first step (its
    # later steps never run: set -e holds inside a queued lane), lane 11 after it still runs, and the
    # queue ends with exit 1 naming the lane that failed.
    script = study_copy(tmp_path, grokmuon=f'echo "$1 $*" >> {tmp_path}/calls\n[ "$1" != tune ]')
    run = subprocess.run(["bash", str(script), "7", "11"], capture_output=True, text=True, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["tune", "train", "train"]       # lane 7's tune; lane 11's two cells
    assert "experiment=mechanism task=modadd" in calls[1] and "task=modsub" in calls[2]
    assert run.returncode == 1 and "study 7: failed" in run.stderr and "lanes that failed: 7" in run.stderr
    assert "study 11: done" in run.stdout


@pytest.mark.parametrize("lane, opt", [("9", "adamw"), ("10", "muon")])
def test_outside_lanes_tune_one_optimizer_each_with_a_prior_from_an_earlier_condition(lane, opt, tmp_path):
    # Lanes 9 and 10 (the outside protocol) are one optimizer each, conditions 64x512, 128x512, 64x128,
    # 128x128; every condition but the first races first the lane's own confirmed choice at width 64 and
    # the same batch size (batch 512 for width 64 itself), so neither lane waits on the other. A stand-in
    # python answers `tuned` with "0.<batch> <width>" of the condition it was asked for, so the
    # --race-first each tune call gets names the condition its prior came from.
    script = study_copy(tmp_path, grokmuon=f'echo "$*" >> {tmp_path}/calls')
    (tmp_path / ".venv" / "bin" / "python").write_text('#!/bin/sh\necho "0.$6 $7"\n')
    (tmp_path / ".venv" / "bin" / "python").chmod(0o755)
    run = subprocess.run(["bash", str(script), lane], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    common = f"tune --arms {opt} --race-chunks"
    assert calls == [f"{common} 4 experiment=outside model=small batch_size=512",
                     f"{common} 12 --race-first 0.512,64 experiment=outside model=default batch_size=512",
                     f"{common} 4 --race-first 0.512,64 experiment=outside model=small batch_size=128",
                     f"{common} 12 --race-first 0.128,64 experiment=outside model=default batch_size=128"]

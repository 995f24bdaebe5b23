"""The smoke sweep end to end through the real command line: train -m, collect, report, figures; then
resume: finished cells are skipped untouched, an interrupted one is trained again, its old files kept."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The tests share one smoke sweep, and the re-run test changes it (an interrupted cell set aside): under
# xdist they run on one worker, in this order, as serially, and the sweep trains once.
pytestmark = pytest.mark.xdist_group("sweep")
REPO = Path(__file__).resolve().parent.parent
GROKMUON = [sys.executable, "-m", "grokmuon.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}   # tiny tensors: one thread is faster


def grokmuon(*args, cwd=REPO) -> subprocess.CompletedProcess:
    r = subprocess.run([*GROKMUON, *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"grokmuon {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}"
    return r


def cells(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def snapshot(folder: Path) -> dict:
    """The run's own files (not Hydra's: .hydra/ is rewritten and app.log appended by every attempt)."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()
            if p.is_file() and p.name != "app.log"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("smoke")
    grokmuon("train", "-m", "experiment=smoke", f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    return root / "sweep"


def test_smoke_sweep_trains_every_cell_into_a_named_folder(sweep):
    names = [p.name for p in cells(sweep)]
    assert [n.rsplit("-", 1)[0] for n in names] == [
        "modadd-adamw-softmax", "modadd-muon-softmax", "parity-adamw-softmax", "parity-muon-softmax"]
    for cell in cells(sweep):
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["status"] == "complete"
        assert cell.name.endswith(summary["config_hash"])        # the folder is named by the run's hash
        assert [m["seed"] for m in summary["members"]] == [0, 1]


def test_collect_report_figures_on_the_smoke_sweep(sweep, tmp_path):
    runs = tmp_path / "results" / "runs.csv"
    out = grokmuon("collect", sweep, "--out", runs, cwd=tmp_path).stdout
    assert "8 members" in out
    text = grokmuon("report", "--runs", runs, cwd=tmp_path).stdout
    assert "## By cell" in text and (tmp_path / "results" / "report.md").exists()
    grokmuon("figures", "--runs", runs, "--out", tmp_path / "figs", cwd=tmp_path)
    pngs = sorted(p.stem for p in (tmp_path / "figs").glob("*.png"))
    # The smoke runs carry the probes, and modadd's the Fourier probes (figure 7, one file per task they apply to)
    assert pngs == ["fig1_boxplot_optimizer", "fig2_boxplot_head", "fig2_boxplot_task", "fig3_km_task",
                    "fig4_curves_task", "fig6_probes", "fig7_phases_modadd"]


def test_rerun_skips_complete_cells_and_redoes_an_interrupted_one(sweep):
    first, *others = cells(sweep)
    summary = json.loads((first / "summary.json").read_text())
    (first / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    old_first = snapshot(first)
    before = {c: snapshot(c) for c in others}

    r = grokmuon("train", "-m", "experiment=smoke", f"hydra.sweep.dir={sweep}", cwd=sweep.parent)

    assert sorted(ln for ln in r.stdout.splitlines() if ln.startswith("skip: ")) == \
        sorted(f"skip: {c} already complete" for c in others)
    for c in others:
        assert snapshot(c) == before[c]                            # not a byte, not an mtime changed
    assert json.loads((first / "summary.json").read_text())["status"] == "complete"
    aside = [p for p in sweep.iterdir() if p.name.startswith(first.name + ".incomplete-")]
    assert len(aside) == 1
    assert {n: b for n, (_, b) in snapshot(aside[0]).items()} == {n: b for n, (_, b) in old_first.items()}


def test_precheck_rejects_a_bad_value_in_the_grid_before_training(tmp_path):
    r = subprocess.run([*GROKMUON, "train", "-m", "experiment=smoke", "hydra.sweeper.params.task=parity,bogus",
                        f"hydra.sweep.dir={tmp_path / 's'}"], cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "grokmuon: error: task='bogus' is unknown; allowed: gcd, modadd, moddiv, modexp, modmul, modsub, parity"]
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["submitit_local", "joblib"])
def test_launchers_run_the_same_cells(launcher, sweep, tmp_path):
    """The cluster path (submitit, here its local executor) and local parallel jobs (joblib) produce
    the same folders, by hash, as the basic launcher; a second run skips them all. ~1 min each."""
    target = tmp_path / launcher
    grokmuon("train", "-m", "experiment=smoke", f"hydra/launcher={launcher}", f"hydra.sweep.dir={target}",
             *(["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []), cwd=tmp_path)
    assert [c.name for c in cells(target)] == [c.name for c in cells(sweep) if "." not in c.name]
    for c in cells(target):
        assert json.loads((c / "summary.json").read_text())["status"] == "complete"
    before = {c: snapshot(c) for c in cells(target)}
    grokmuon("train", "-m", "experiment=smoke", f"hydra/launcher={launcher}", f"hydra.sweep.dir={target}",
             cwd=tmp_path)
    assert all(snapshot(c) == before[c] for c in cells(target))

"""Every option of every config group composes and validates; bad input fails with one clear line."""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from grokmuon.config import ConfigError, validate
from grokmuon.heads import HEADS
from grokmuon.tasks import TASKS, TRAIN_FRACTIONS

from conftest import CONF, REPO, cli_env, compose_config, grokmuon_exe

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def test_the_groups_exist():
    assert {"task", "model", "head", "optimizer", "logger", "experiment"} <= set(GROUPS)
    assert {o for g, o in OPTIONS if g == "task"} == set(TASKS)
    assert {o for g, o in OPTIONS if g == "head"} == set(HEADS)
    assert {o for g, o in OPTIONS if g == "optimizer"} == {"adamw", "muon", "normuon"}


def test_defaults_compose_and_validate():
    cfg = compose_config(shrink=False)
    validate(cfg)
    assert cfg.task.name == "modadd" and cfg.optimizer.name == "muon" and cfg.head.name == "softmax"
    # The schema is strict: a key it does not know fails at compose, before validate.
    with pytest.raises(Exception, match="widht"):
        compose_config("model.widht=3")


@pytest.mark.parametrize("group,option", [o for o in OPTIONS if o[0] != "experiment"],
                         ids=[f"{g}={o}" for g, o in OPTIONS if g != "experiment"])
def test_every_group_option_composes_and_validates(group, option):
    cfg = compose_config(f"{group}={option}", shrink=False)
    validate(cfg)
    if group in ("task", "head", "optimizer", "logger"):
        assert cfg[group].name == option
    if group == "task":
        assert cfg.task.train_frac == TRAIN_FRACTIONS[option]         # yaml and tasks.py agree
    # And with the test shrink on top.
    validate(compose_config(f"{group}={option}"))


def sweep_cells(experiment: str) -> list[list[str]]:
    """Cells of an experiment's grid (hydra.sweeper.params) that between them use every value of every
    axis: the first cell, then each other value swapped in (each compose costs ~0.25 s here, and the
    paper grid has 42 cells; the grid axes are group choices that validate does not cross-check)."""
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    parser = OverridesParser.create()
    axes = []
    for key, value in params.items():
        o = parser.parse_override(f"{key}={value}")
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        axes.append([f"{key}={v}" for v in values])
    first = [axis[0] for axis in axes]
    return [first] + [first[:i] + [v] + first[i + 1:] for i, axis in enumerate(axes) for v in axis[1:]]


EXPERIMENTS = [o for g, o in OPTIONS if g == "experiment"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_and_each_grid_cell_composes_and_validates(experiment):
    cfg = compose_config(f"experiment={experiment}", shrink=False)
    validate(cfg)
    assert cfg.experiment == experiment
    cells = sweep_cells(experiment)
    assert cells, "an experiment is a grid"
    for cell in cells:
        validate(compose_config(f"experiment={experiment}", *cell, shrink=False))


def test_validate_rejects_out_of_range_values():
    for override, needle in [("optimizer.lr=0", "optimizer.lr"), ("model.n_heads=3", "n_heads"),
                             ("model.dropout=1.0", "dropout"), ("max_epochs=0", "max_epochs"),
                             ("optimizer.betas=[0.9,1.0]", "betas"), ("device=tpu", "tpu"),
                             ("optimizer.ns_steps=-1", "ns_steps"), ("optimizer.split=embed", "split=.embed"),
                             ("optimizer.name=sgd", "allowed: adamw, muon")]:
        with pytest.raises(ConfigError, match=needle):
            validate(compose_config(override))


# --- bad input through the real CLI ----------------------------------------------------------------

def padding(args: list[str]) -> list[str]:
    """Overrides that keep a wrongly accepted command short, for keys the arguments leave alone
    (a repeated key would override the bad value and hide it)."""
    given = {a.split("=", 1)[0] for a in args}
    pad = {"logger": "none", "progress": "false", "max_epochs": "1", "model": "tiny", "device": "cpu"}
    return [f"{k}={v}" for k, v in pad.items() if k not in given and not any(g.startswith(k + ".") for g in given)]


# (arguments, what the one error line must name)
BAD_INPUT = {
    "unknown task": (["task=nosuch"], "nosuch"),
    "unknown optimizer": (["optimizer=sgd"], "sgd"),
    "unknown head": (["head=nosuchhead"], "nosuchhead"),
    "misspelled key": (["model.widht=3"], "widht"),
    "wrong type": (["model.d_model=abc"], "abc"),
    "lr not positive": (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    "train_frac outside (0, 1)": (["task.train_frac=1.0"], "train_frac=1.0"),
    "moddiv non-prime": (["task=moddiv", "task.p=91"], "91"),
    "bad value in a sweep": (["-m", "optimizer=muon,sgd"], "sgd"),
    "seeds not a list": (["seeds=5"], "seeds=[0,1,2]"),
    "an option instead of an override": (["--max_epochs", "5"], "key=value"),
    "a later combination of a sweep": (["-m", "task=modadd,moddiv", "task.p=97,100"], "task.p=100"),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Run every bad command once, two at a time (each start-up imports torch and Hydra, ~3 s)."""
    exe = grokmuon_exe()
    root = tmp_path_factory.mktemp("bad")

    def run(item):
        i, (name, (args, _)) = item
        folder = root / f"case{i}"
        # Padding that cannot mask the bad value (no key is repeated) and keeps a wrongly accepted
        # command short.
        cmd = [exe, "train", *args, *padding(args), f"hydra.run.dir={folder}", f"hydra.sweep.dir={folder}"]
        return name, (subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=cli_env()), folder)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, enumerate(BAD_INPUT.items())))


@pytest.mark.xdist_group("config-bad_runs")     # one worker runs the bad commands once (tests/README.md)
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_gives_one_error_line(bad_runs, case):
    proc, folder = bad_runs[case]
    _, needle = BAD_INPUT[case]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("grokmuon: error:"), lines[0]
    assert needle in lines[0], lines[0]
    assert not Path(folder).exists(), "a rejected command must not start a run folder"


# More bad values through the same entry point, in-process (a subprocess costs ~3 s of start-up each).
@pytest.mark.parametrize("args,needle", [
    (["optimizer.lr=0"], "optimizer.lr=0"),
    (["optimizer.adamw_lr=0"], "optimizer.adamw_lr=0"),
    (["task.train_frac=0"], "task.train_frac=0"),
    (["task.train_frac=-0.5"], "-0.5"),
    (["task.p=abc"], "abc"),
    (["seeds=[0,0]"], "seeds"),
    (["task=parity", "model=huge"], "huge"),
    (["logger=nosuch"], "nosuch"),
    (["optimizer.ns_dtype=fp8"], "fp8"),
    (["-m", "task=modadd,nosuch"], "nosuch"),
    (["seeds=abc"], "seeds takes a list"),
    (["grid.lr=0.01"], "grid.lr takes a list"),
    # A + adds any key in Hydra: a misspelt one would train the defaults with a stray key in the hash.
    (["+optimizer.lrr=0.1"], "unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)"),
    (["+bogus=1"], "unknown key 'bogus' (a + adds a key grokmuon never reads); allowed"),   # nothing close: no guess
    (["++model.widht=8"], "allowed keys in model"),
    (["optimzer.lr=0.1"], "unknown key 'optimzer' (did you mean 'optimizer'?); allowed keys: task, model"),
    # One slip in a long list of keys or options: the one meant is named first.
    (["max_epoch=10"], "unknown key 'max_epoch' (did you mean 'max_epochs'?); allowed keys: task"),
    (["task=modad"], "task='modad' is unknown (did you mean 'modadd'?); allowed: gcd, modadd"),
    (["grid.lr.x=1"], "unknown key 'grid.lr.x'; allowed keys in grid.lr: none"),   # was OmegaConf's assertion
])
def test_bad_input_in_process(capsys, tmp_path, args, needle):
    from grokmuon.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args, *padding(args), f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("grokmuon: error:") and needle in err[0], err
    assert not (tmp_path / "run").exists()


def test_a_plus_on_a_known_key_still_runs_the_check_and_passes():
    # ++ on a key the schema has is an ordinary override (Hydra: add or replace): no refusal.
    from grokmuon import precheck
    # optimizer.name and task.name are ??? in the schema (a group fills them): known keys all the same.
    precheck.precheck(["++optimizer.lr=0.01", "++task.p=13", "++optimizer.name=adamw", "model=tiny", "logger=none"])
    assert precheck.unknown_key("optimizer.lr") is None and precheck.unknown_key("optimizer.lrr")
    assert precheck.unknown_key("task.name") is None and precheck.unknown_key("optimizer.lr.x")


def test_refusing_a_command_line_does_not_import_torch():
    # A typo must be refused in the time Hydra takes to load, not PyTorch (seconds on a busy machine).
    code = ("import sys; from grokmuon import cli\n"
            "try:\n    cli.train_cmd(['task=bogus'])\nexcept SystemExit as e:\n    code = e.code\n"
            "print(code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "False"], out.stderr[-2000:]
    assert "task='bogus' is unknown" in out.stderr


def test_cuda_without_a_gpu_and_online_wandb_without_credentials_are_one_line(capsys, tmp_path, monkeypatch):
    import torch
    import wandb

    from grokmuon.cli import main
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(wandb, "login", lambda **kw: False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for args, needle in ((["device=cuda"], "sees no CUDA GPU"), (["logger.mode=online"], "wandb login")):
        with pytest.raises(SystemExit) as e:
            main(["train", *args, *padding(args), f"hydra.run.dir={tmp_path / 'run'}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and needle in err[0], err
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv,needle", [
    ([], "usage: grokmuon"), (["nosuch"], "invalid choice: 'nosuch'"), (["--bogus"], "--bogus"),
    (["bench", "--members", "abc"], "'abc' is not a list of ensemble sizes"),
    (["bench", "--members", "0"], "positive"),
    (["bench", "--models", "huge"], "give model configs from"),
    (["report"], "give --runs"), (["figures"], "give --runs"), (["collect"], "name the folders"),
    (["tune", "--max_epochs", "5"], "not an override"),
])
def test_front_door_mistakes_exit_2_in_one_line(capsys, argv, needle):
    from grokmuon.cli import main
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and needle in err and "Traceback" not in err
    assert argv == [] or len(err.splitlines()) == 1, err


def test_help_version_and_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "grokmuon", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "train" in out.stdout and "tune" in out.stdout and "docs/sweeps.md" in out.stdout
    assert "parse, check, dispatch" not in out.stdout           # user help, not the module's docstring
    v = subprocess.run([sys.executable, "-m", "grokmuon", "--version"], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout.startswith("grokmuon ")


def test_a_wheel_ships_the_configs_and_runs_outside_the_checkout(tmp_path):
    """`pip install .` or a wheel must work, not only the editable install: the configs are package data."""
    import shutil
    import zipfile
    src = tmp_path / "src"       # the checkout's layout: conf/ at the top, beside grokmuon/
    for name in ("grokmuon", "conf"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "-q"]
    r = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "whl", src],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "whl").glob("grokmuon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"grokmuon/conf/{p.relative_to(CONF)}" for p in CONF.rglob("*.yaml")}
    assert shipped and shipped <= names
    r = subprocess.run([*pip, "install", "--no-deps", "--target", tmp_path / "site", wheel],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**cli_env(), "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", "import grokmuon, sys; print(grokmuon.__file__); "
                          "from grokmuon.cli import main; main(['train', '--cfg', 'job', 'task=gcd'])"],
                         cwd=away, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0].startswith(str(tmp_path / "site")) and "name: gcd" in out.stdout
    assert not (tmp_path / "site" / "conf").exists()            # inside the package, not a top-level folder
    train = subprocess.run([sys.executable, "-m", "grokmuon", "train", "task=gcd", "task.p=11", "max_epochs=2",
                            "model=tiny", "logger=none", "progress=false", "device=cpu"],
                           cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    (summary,) = (away / "outputs").glob("gcd-muon-softmax/*/summary.json")
    assert json.loads(summary.read_text())["status"] == "complete"


def test_checking_a_good_command_line_does_not_import_torch():
    # precheck composes and checks every combination; torch is loaded only when the config asks for CUDA.
    code = ("import sys; from grokmuon import precheck\n"
            "precheck.precheck(['task=gcd', 'model=tiny', 'logger=none'])\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False"], out.stderr[-2000:]

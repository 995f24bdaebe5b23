"""The Hydra application behind `grokmuon train`: check overrides, compose, train, write the run folder."""
from __future__ import annotations

import itertools
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .cli import CONF, fail
from .config import Config, ConfigError, register_configs, validate
from .resume import config_hash, decide, read_summary, register_resolver, set_aside

register_configs()
register_resolver()     # ${run_id:} names sweep folders (grokmuon/conf/train.yaml); workers import this module too
GROUPS = ("task", "model", "head", "optimizer", "logger", "experiment")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def explain(err: Exception) -> str:
    """One line for a Hydra/OmegaConf composition error, naming the bad value and what is allowed."""
    for group in GROUPS:
        marker = f"Could not find '{group}/"
        if marker in str(err):
            bad = str(err).split(marker, 1)[1].split("'", 1)[0]
            return f"{group}={bad!r} is unknown; allowed: {', '.join(options(group))}"
    cause = err.__cause__ or err
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    full_key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("full_key:")), "")
    if "is not a ListConfig, list or tuple" in lines[0] and full_key:
        example = "[0,1,2]" if full_key == "seeds" else "[1e-3,3e-3]"
        return f"{full_key} takes a list: write {full_key}={example} (quote it in the shell: '{full_key}={example}')"
    if " not in " in lines[0] and full_key:
        parent, _, _ = full_key.rpartition(".")
        node = OmegaConf.structured(Config)
        node = OmegaConf.select(node, parent) if parent else node
        allowed = ", ".join(node.keys()) if isinstance(node, DictConfig) else "none"
        return f"unknown key {full_key!r}; allowed keys{' in ' + parent if parent else ''}: {allowed}"
    return f"{full_key}: {lines[0]}" if full_key else lines[0]


def precheck(overrides: list[str]) -> None:
    """Compose each value of each override once, before Hydra launches anything. Sweep values count
    too, from the command line and from the experiment's grid (hydra.sweeper.params)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    flags = {"-m", "--multirun", "-c", "--cfg", "-i", "--info", "-p", "--package", "--resolve", "--run", "-r"}
    for o in overrides:
        if o.startswith("-") and o.split("=", 1)[0] not in flags:
            name = o.lstrip("-").split("=", 1)[0]
            fail(f"{o!r} is not an override: overrides are key=value, e.g. {name}=5 (see `grokmuon train --help`)")
    plain = [o for o in overrides if not o.startswith("-")]
    try:
        parsed = parser.parse_overrides(plain)
    except HydraException as err:
        fail(f"cannot parse the overrides: {str(err).splitlines()[0]}")
    grid = "hydra.sweeper.params."
    head, variants = [], []

    def add(o) -> None:
        key = o.get_key_element().removeprefix(grid)
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        head.append(f"{key}={values[0]}")
        variants.extend((len(head) - 1, f"{key}={v}") for v in values[1:])

    for o in parsed:
        if o.get_key_element().startswith(grid) or not o.get_key_element().startswith("hydra"):
            add(o)
    try:
        with initialize_config_dir(str(CONF), version_base=None):
            params = compose("train", overrides=head, return_hydra_config=True).hydra.sweeper.params or {}
            mine = {h.split("=", 1)[0] for h in head}
            for key, value in params.items():       # the command line's own values win, as in Hydra
                if key not in mine:
                    add(parser.parse_override(f"{key}={value}"))
            # Every combination the sweep will run, not one value at a time: a value can be valid with one
            # setting and not another (task=moddiv with task.p=100). Up to a bound, then one at a time.
            options = [[h] + [v for j, v in variants if j == i] for i, h in enumerate(head)]
            n = 1
            for opts in options:
                n *= len(opts)
            combos = [list(c) for c in itertools.product(*options)] if n <= 2000 else \
                [head] + [head[:i] + [v] + head[i + 1:] for i, v in variants]
            for combo in combos:
                cfg = compose("train", overrides=combo)
                validate(cfg)
                check_environment(cfg)
    except ConfigError as err:
        fail(str(err))
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        fail(explain(err))


def output_dir(overrides: list[str]) -> Path | None:
    """The folder Hydra will create: hydra.run.dir, or hydra.sweep.dir with -m (None if it cannot be
    resolved here, e.g. it refers to Hydra's runtime values; then Hydra's own error stands)."""
    from hydra import compose, initialize_config_dir

    multirun = any(o in ("-m", "--multirun") for o in overrides)
    plain = [o for o in overrides if not o.startswith("-")]
    try:
        with initialize_config_dir(str(CONF), version_base=None):
            cfg = compose("train", overrides=plain, return_hydra_config=True)
            return Path(str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir))
    except Exception:       # noqa: BLE001 (a best-effort check; Hydra reports what it cannot compose)
        return None


def check_output_dir(folder: Path) -> None:
    """Fail now, with one line, if the run (or sweep) folder cannot be created and written, rather
    than after Hydra's traceback or an hour of training. Creates nothing: it tries a temp file in
    the nearest folder that exists."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        fail(f"cannot create the output folder {folder}: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        fail(f"cannot create the output folder {folder}: {probe}: {err.strerror or err}")


class StopFlag:
    """Turn Ctrl-C / SIGTERM into a flag the epoch loop polls, so the run ends with its files written.
    A second Ctrl-C during training stops at once (KeyboardInterrupt; the summary still says
    interrupted); once training is over (training = False) signals only wait for the files, and once
    the files are written (written = True) they are noted without a word, so no line prints after the
    closing one. restore() puts back the handlers it replaced."""

    def __init__(self):
        self.signal, self.training, self.written = None, True, False
        self._old = {sig: signal.signal(sig, self._set) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _set(self, signum, frame):
        name = signal.Signals(signum).name
        if self.written:
            self.signal = self.signal or signum
            return
        if not self.training:
            print(f"\ngrokmuon: got {name}; writing the run's files, then stopping", file=sys.stderr)
            self.signal = self.signal or signum
            return
        if self.signal is not None:       # a second Ctrl-C: stop at once
            self.training = False
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\ngrokmuon: got {name}; stopping after this epoch", file=sys.stderr)

    def __call__(self) -> bool:
        return self.signal is not None


def check_environment(cfg: DictConfig) -> None:
    """Refuse, in one line, what this machine cannot do: a CUDA device without a CUDA build or GPU, or
    W&B online mode without credentials. precheck calls it before Hydra makes any folder; torch and
    wandb are imported only when the config asks for CUDA or online mode."""
    if str(cfg.device).startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            fail(f"device={cfg.device} but this torch ({torch.__version__}) sees no CUDA GPU; use device=cpu "
                 "or device=auto, or install a CUDA build of torch")
    if cfg.logger.name == "wandb" and cfg.logger.mode == "online" and not os.environ.get("WANDB_API_KEY"):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb
        if not wandb.login(prompt=False, verify=False):
            fail("logger.mode=online needs W&B credentials: run `wandb login` (or set WANDB_API_KEY); "
                 "offline is the default and needs none (`wandb sync` uploads later)")


def resumable(aside: Path, chash: str) -> tuple[dict | None, list[dict] | None, str]:
    """(state, metrics rows up to its epoch, what happens) from an interrupted attempt's folder: resume
    from its checkpoint if it is this config's and its metrics.csv holds every epoch up to it; else
    (None, None, why it starts over)."""
    import csv

    from . import checkpoint
    try:
        state = checkpoint.load(aside / checkpoint.CHECKPOINT, chash)
        with open(aside / "metrics.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit() and int(r["epoch"]) <= state["epoch"]]
    except (checkpoint.CheckpointError, OSError) as err:
        return None, None, f"its checkpoint cannot be used ({err}); training again from epoch 1"
    if {int(r["epoch"]) for r in rows} != set(range(1, state["epoch"] + 1)):
        return None, None, f"its metrics.csv lacks epochs before {state['epoch']}; training again from epoch 1"
    return state, rows, f"resuming from its checkpoint after epoch {state['epoch']}"


def train_job(cfg: DictConfig) -> dict:
    """One Hydra job: an ensemble of cfg.seeds members, written to the job's output folder."""
    from tqdm import tqdm

    from . import checkpoint
    from .runlog import RunLog
    from .train import pick_device, train

    try:
        validate(cfg)
    except ConfigError as err:
        fail(str(err))
    folder = Path(HydraConfig.get().runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    # Hydra has just written .hydra/ and its job log here: they belong to this attempt, not an old one.
    own = {HydraConfig.get().output_subdir or ".hydra", f"{HydraConfig.get().job.name}.log"}
    action, kind, why = decide(folder, config_hash(resolved), own)
    if action == "skip":
        print(f"skip: {folder} already complete")
        return read_summary(folder)
    if action == "busy":
        print(f"skip: {folder} is being trained now ({why})", file=sys.stderr)
        return None
    chash, resume, carried, resumed_from = config_hash(resolved), None, None, None
    if action == "set_aside":
        try:
            aside = set_aside(folder, kind, own)
        except OSError as err:
            fail(f"cannot move the old files of {folder} aside: {err}")
        if kind == "incomplete" and (aside / checkpoint.CHECKPOINT).exists():
            resume, carried, note = resumable(aside, chash)
            print(f"{folder}: {why}; its files moved to {aside}; {note}", file=sys.stderr)
            resumed_from = {"epoch": resume["epoch"], "from": str(aside)} if resume else None
        else:
            print(f"{folder}: {why}; its files moved to {aside}; training again", file=sys.stderr)
    try:
        log = RunLog(folder, resolved, str(pick_device(cfg.device)), carried, resumed_from)
    except OSError as err:
        fail(str(err))
    from .config import members
    saver = checkpoint.Saver(folder, chash, cfg.checkpoint_every, cfg.keep_weights,
                             info={"task": resolved["task"], "members": members(resolved)})
    stop = StopFlag()
    # No ETA: a run stops when its members have grokked, usually long before the budget, so time to the
    # budget would overstate it by hours. The bar shows epochs against the budget and the time so far.
    bar = tqdm(total=cfg.max_epochs, desc=f"{cfg.task.name}/{cfg.optimizer.name}/{cfg.head.name}",
               disable=not cfg.progress, dynamic_ncols=True, file=sys.stderr, unit="epoch",
               bar_format="{desc}: {n_fmt}/{total_fmt} epochs (budget) |{bar}| {elapsed}, {rate_fmt}{postfix}")
    seen = {"results": None, "epoch": 0}     # what an aborted run can still write

    def on_epoch(epoch, numbers, results):
        seen["results"] = results
        log.log_epoch(epoch, numbers, results)
        seen["epoch"] = epoch
        grokked = sum(r.grokking_epoch is not None for r in results)
        tr, va = numbers["train_acc"], numbers["val_acc"]
        bar.update(1)
        bar.set_postfix_str(f"train {min(tr):.3f}-{max(tr):.3f} val {min(va):.3f}-{max(va):.3f} "
                            f"grokked {grokked}/{len(results)}")

    start = time.time()
    try:
        results = train(cfg, on_epoch=on_epoch, should_stop=stop, saver=saver, resume=resume)
        stop.training = False
        bar.close()
        stopped = f"stopped by {signal.Signals(stop.signal).name}" if stop.signal else None
        summary = log.finish(results, reason=stopped if any(r.status == "interrupted" for r in results) else None)
        stop.written = True
    except OSError as err:      # the run folder cannot be written (disk full, quota, gone): stop now
        stop.training = False
        bar.close()
        kept = f"metrics.csv keeps epochs 1-{seen['epoch']}" if seen["epoch"] else "no epoch was written"
        reason = f"cannot write the run folder {folder}: {err.strerror or err}"
        told = "summary.json says status failed" if log.abort(seen["results"], "failed", reason) else \
            "summary.json could not be updated either"
        fail(f"{reason}; training stopped after epoch {seen['epoch']}; {kept}; {told}", code=1)
    except KeyboardInterrupt:   # a second Ctrl-C: the epoch was not finished
        stop.training = False
        bar.close()
        log.abort(seen["results"], "interrupted", "stopped at once by a second Ctrl-C")
        print(f"grokmuon: interrupted; {folder} keeps epochs 1-{seen['epoch']}", file=sys.stderr)
        sys.exit(130)
    except Exception as err:    # a bug or a device error: say so in summary.json, then the traceback
        stop.training = False
        bar.close()
        log.abort(seen["results"], "failed", f"{type(err).__name__}: {err}")
        raise
    print(f"run folder: {folder}  ({time.time() - start:.1f} s)")
    grid = len({(m["lr"], m["weight_decay"]) for m in summary["members"]}) > 1
    for m in summary["members"]:
        if m["status"] == "diverged":
            when = f"loss or weights became NaN/inf at epoch {m['diverged_epoch']}"
        elif m["grokking_epoch"]:
            when = f"grokked at epoch {m['grokking_epoch']}"
        elif m["status"] == "raced_out":
            when = f"stopped by the race after {m['epochs_run']} epochs"
        else:
            when = f"did not grok in {m['epochs_run']} epochs"
        setting = f" lr {m['lr']:g} wd {m['weight_decay']:g}" if grid else ""
        print(f"  {m['task']} {m['optimizer']} {m['head']} seed {m['seed']}{setting}: {m['status']}, {when} "
              f"(memorised at {m['memorisation_epoch']}), final train {_num(m.get('final_train_acc'))} "
              f"val {_num(m.get('final_val_acc'))}")
    counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
    print(f"  {len(summary['members'])} members: {counts}")
    if summary.get("race"):
        race = summary["race"]
        where = f"stopped at epoch {race['stopped_at']}" if race["stopped_at"] else "ran to the end"
        print(f"  race: {where}; best lr {race['chosen']['lr']:g} weight_decay "
              f"{race['chosen']['weight_decay']:g} (median {race['chosen_median']}); rule: {race['rule']}")
    if summary["status"] == "interrupted":
        again = "resumes it from its checkpoint" if (folder / checkpoint.CHECKPOINT).exists() else "trains it again"
        print(f"grokmuon: interrupted after epoch {seen['epoch']}; {folder} says so and a re-run {again}",
              file=sys.stderr)
        sys.exit(130)
    stop.restore()          # only now: a late second Ctrl-C must not turn a written run into a traceback
    if stop.signal:         # it came after the last epoch: this run is whole, but a sweep must not go on
        print(f"grokmuon: stopped by {signal.Signals(stop.signal).name} after {folder} was complete; a "
              "re-run skips it", file=sys.stderr)
        sys.exit(130)
    return summary


def _num(x) -> str:
    return "nan" if x is None else f"{x:.3f}"


def run_train(overrides: list[str]) -> None:
    modes = [o for o in overrides if o in ("-m", "--multirun") or o.split("=")[0] in ("--cfg", "-c", "--info", "-i")]
    if len(modes) > 1:      # Hydra would raise a ValueError with a traceback
        fail(f"use one of {', '.join(modes)}: Hydra runs, sweeps or prints the config, one at a time")
    if not any(o in ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help") or o.startswith("--cfg") for o in overrides):
        precheck(overrides)
        folder = output_dir(overrides)
        if folder is not None:
            check_output_dir(folder)
    sys.argv = ["grokmuon train", *overrides]
    hydra.main(version_base=None, config_path=str(CONF), config_name="train")(train_job)()

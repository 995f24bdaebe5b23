"""The Hydra application behind `grokmuon train`: check overrides, compose, train, write the run folder."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .cli import CONF, fail
from .config import Config, ConfigError, register_configs, validate
from .resume import config_hash, decide, read_summary, register_resolver, set_aside

register_configs()
register_resolver()     # ${run_id:} names sweep folders (conf/train.yaml); workers import this module too
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
            combos = [head] + [head[:i] + [v] + head[i + 1:] for i, v in variants]
            for combo in combos:
                validate(compose("train", overrides=combo))
    except ConfigError as err:
        fail(str(err))
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        fail(explain(err))


class StopFlag:
    """Turn Ctrl-C / SIGTERM into a flag the epoch loop polls, so the run ends with its files written."""

    def __init__(self):
        self.signal = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._set)

    def _set(self, signum, frame):
        if self.signal is not None:       # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\ngrokmuon: got {signal.Signals(signum).name}; stopping after this epoch", file=sys.stderr)

    def __call__(self) -> bool:
        return self.signal is not None


def train_job(cfg: DictConfig) -> dict:
    """One Hydra job: an ensemble of cfg.seeds members, written to the job's output folder."""
    from tqdm import tqdm

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
    if action == "set_aside":
        try:
            aside = set_aside(folder, kind, own)
        except OSError as err:
            fail(f"cannot move the old files of {folder} aside: {err}")
        print(f"{folder}: {why}; its files moved to {aside}; training again", file=sys.stderr)
    try:
        log = RunLog(folder, resolved, str(pick_device(cfg.device)))
    except OSError as err:
        fail(str(err))
    stop = StopFlag()
    bar = tqdm(total=cfg.max_epochs, desc=f"{cfg.task.name}/{cfg.optimizer.name}/{cfg.head.name}",
               disable=not cfg.progress, dynamic_ncols=True, file=sys.stderr)

    def on_epoch(epoch, numbers, results):
        log.log_epoch(epoch, numbers, results)
        grokked = sum(r.grokking_epoch is not None for r in results)
        tr, va = numbers["train_acc"], numbers["val_acc"]
        bar.update(1)
        bar.set_postfix_str(f"train {min(tr):.3f}-{max(tr):.3f} val {min(va):.3f}-{max(va):.3f} "
                            f"grokked {grokked}/{len(results)}")

    start = time.time()
    results = train(cfg, on_epoch=on_epoch, should_stop=stop)
    bar.close()
    summary = log.finish(results)
    print(f"run folder: {folder}  ({time.time() - start:.1f} s)")
    for m in summary["members"]:
        when = f"grokked at epoch {m['grokking_epoch']}" if m["grokking_epoch"] else \
            f"did not grok in {m['epochs_run']} epochs"
        print(f"  {m['task']} {m['optimizer']} {m['head']} seed {m['seed']}: {m['status']}, {when} "
              f"(memorised at {m['memorisation_epoch']}), final train {m.get('final_train_acc', float('nan')):.3f} "
              f"val {m.get('final_val_acc', float('nan')):.3f}")
    if summary["status"] == "interrupted":
        sys.exit(130)
    return summary


def run_train(overrides: list[str]) -> None:
    modes = [o for o in overrides if o in ("-m", "--multirun") or o.split("=")[0] in ("--cfg", "-c", "--info", "-i")]
    if len(modes) > 1:      # Hydra would raise a ValueError with a traceback
        fail(f"use one of {', '.join(modes)}: Hydra runs, sweeps or prints the config, one at a time")
    if not any(o in ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help") or o.startswith("--cfg") for o in overrides):
        precheck(overrides)
    sys.argv = ["grokmuon train", *overrides]
    hydra.main(version_base=None, config_path=str(CONF), config_name="train")(train_job)()

"""A `grokmuon train` command line, checked before Hydra launches anything: every override composes,
every value (and every combination of a sweep's values) passes config.validate, this machine can do what
the config asks (CUDA, W&B online), and the output folder can be made. Each refusal is one line naming
the bad value and what is allowed (config.fail); nothing has been written yet.
"""
from __future__ import annotations

import dataclasses
import difflib
import itertools
import os
import re
import sys
import typing
from pathlib import Path

from omegaconf import DictConfig

from .config import CONF, Config, ConfigError, fail, register_configs, unwritable, validate
from .runid import register_resolver

register_configs()      # compose() below needs the schema in Hydra's ConfigStore
register_resolver()     # ... and ${run_id:}, which names a sweep's folders (conf/train.yaml)
GROUPS = ("task", "model", "head", "optimizer", "logger", "experiment")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def guess(word: str, allowed, prefix: str = "") -> str:
    """The hint " (did you mean 'x'?)" where one allowed name is close to a misspelt one, else "": the
    top level allows 33 keys, where the one meant is easy to miss. prefix: the key's parent path."""
    close = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.75)   # 0.75: one slip in a short word
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def explain(err: Exception) -> str:
    """One line for a Hydra/OmegaConf composition error, naming the bad value and what is allowed."""
    for group in GROUPS:
        marker = f"Could not find '{group}/"
        if marker in str(err):
            bad = str(err).split(marker, 1)[1].split("'", 1)[0]
            return f"{group}={bad!r} is unknown{guess(bad, options(group))}; allowed: {', '.join(options(group))}"
    cause = err.__cause__ or err
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    full_key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("full_key:")), "")
    if "is not a ListConfig, list or tuple" in lines[0] and full_key:
        example = "[0,1,2]" if full_key == "seeds" else "[1e-3,3e-3]"
        return f"{full_key} takes a list: write {full_key}={example} (quote it in the shell: '{full_key}={example}')"
    if " not in " in lines[0] and full_key and (why := unknown_key(full_key)):
        return why
    return f"{full_key}: {lines[0]}" if full_key else lines[0]


def unknown_key(key: str, note: str = "") -> str | None:
    """The one-line refusal for a key the schema (config.Config) does not have, naming the keys allowed
    where it strays (note: said after the key), else None. precheck asks it of every command-line key
    before composing: Hydra refuses a plain misspelt key (explain words that error with this too) but
    lets `+key=value` add any key, so a misspelt one (`+optimizer.lrr=0.1`) would train the default
    silently, with the stray key in its config hash; and a key below a None (`grid.lr.x=1`) fails inside
    OmegaConf with an assertion. Every key grokmuon reads is in the schema, so none needs `+`; a config
    group (`+experiment=...`) is left to Hydra's own rules."""
    kind, parent = Config, ""          # the schema's dataclasses themselves: a field still ??? counts too
    for part in key.split("."):
        fields = {f.name: f for f in dataclasses.fields(kind)} if dataclasses.is_dataclass(kind) else {}
        here = f"{parent}.{part}" if parent else part           # the key as far as the first stray part
        if part not in fields:
            hint = guess(part, fields, parent + "." if parent else "")
            return f"unknown key {here!r}{hint}{note}; allowed keys{' in ' + parent if parent else ''}: " \
                   f"{', '.join(fields) or 'none'}"
        kind, parent = typing.get_type_hints(kind)[part], here
    return None


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
    for o in parsed:
        key = o.get_key_element().lstrip("+~").split("@", 1)[0]      # +group@package=option: the group
        is_group = "." not in key and (CONF / key).is_dir()
        if not key.startswith("hydra") and not is_group:
            why = unknown_key(key, " (a + adds a key grokmuon never reads)" if o.is_add() or o.is_force_add() else "")
            if why:
                fail(why)
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


def resume_override(overrides: list[str]) -> str | None:
    """A single run (no -m) writes to a new timestamped folder, so its command line run again would
    start over. Instead it continues the newest run of the same config hash that was interrupted under
    the same output root (outputs/<task>-<optimizer>-<head>/, runfolder.interrupted_run), as a sweep
    continues its cell: the hydra.run.dir override that sends Hydra there, or None for a new folder.
    Says which on stderr. A command line with its own hydra.run.dir keeps it (that folder resumes)."""
    from hydra import compose, initialize_config_dir

    from .runfolder import interrupted_run
    from .runid import config_hash
    if any(o in ("-m", "--multirun") for o in overrides) or \
            any(o.split("=", 1)[0].lstrip("+~") == "hydra.run.dir" for o in overrides):
        return None
    try:
        with initialize_config_dir(str(CONF), version_base=None):
            cfg = compose("train", overrides=[o for o in overrides if not o.startswith("-")],
                          return_hydra_config=True)
            root, chash = Path(str(cfg.hydra.run.dir)).parent, config_hash(cfg)
    except Exception:       # noqa: BLE001 (precheck has composed it; Hydra reports what it cannot)
        return None
    folder, why = interrupted_run(root, chash)
    if folder is None:
        print(f"grokmuon: a new run folder under {root}/ ({why})", file=sys.stderr)
        return None
    print(f"grokmuon: continuing the interrupted run of this config in {folder} ({why})", file=sys.stderr)
    path = str(folder)      # quoted for Hydra's override grammar unless it is a plain path
    return f"hydra.run.dir={path}" if re.fullmatch(r"[\w./-]+", path) else \
        "hydra.run.dir='" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_output_dir(folder: Path) -> None:
    """Fail now, with one line, if the run (or sweep) folder cannot be created and written, rather
    than after Hydra's traceback or an hour of training. Creates nothing: it tries a temp file in
    the nearest folder that exists."""
    why = unwritable(folder)
    if why:
        fail(f"cannot create the output folder {folder}: {why}")


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

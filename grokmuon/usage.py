"""The text of `grokmuon train --help`: what a command line can say (groups, main keys, -m), with the
defaults of the config as composed now, so the values shown are never stale. Hydra's own help stays
behind --hydra-help, and `--cfg job` prints every key."""
from __future__ import annotations

from .config import CONF

# key -> what it does (the default is read from the composed config); config.py says why each is so.
KEYS = {
    "seeds": "one member per seed, trained together in one process, e.g. 'seeds=[0,1,2]'",
    "max_epochs": "the budget: a member that has not grokked by then is censored",
    "patience": "epochs to go on once every member has grokked (to see it hold)",
    "batch_size": "training batch size",
    "optimizer.lr": "learning rate (Muon: its hidden matrices; optimizer.adamw_lr for the rest)",
    "optimizer.weight_decay": "weight decay",
    "grid.lr": "a list of lrs, every one a member with every seed, e.g. 'grid.lr=[1e-3,3e-3]'",
    "grid.weight_decay": "the same for weight decay",
    "stop": "patience | race (a grid stops once its best setting is decided)",
    "grok_val_acc": "val accuracy that counts as grokked",
    "grok_train_acc": "train accuracy that counts as memorised",
    "device": "auto | cpu | cuda | cuda:N",
    "precision": "fp32 | bf16",
    "checkpoint_every": "also save the training state every N epochs (0: only when stopped)",
    "checkpoint_minutes": "also save it once N minutes have passed since the last save (0: never on the clock)",
    "keep_weights": "write weights.pt with the final weights",
    "probes": "weight and logit probes each epoch into metrics.csv",
    "progress": "the progress bar",
    "eval_train": "every | lazy (the train split only where it can matter)",
}
GROUPS = {"task": "the data set", "model": "transformer size", "head": "output map and its loss",
          "optimizer": "the optimizer and its defaults", "grokfast": "a gradient filter before the optimizer",
          "logger": "the W&B mirror (offline by default)",
          "experiment": "a sweep's grid and settings, for -m"}


def train_help() -> str:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from .precheck import options
    from .config import register_configs
    register_configs()
    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("train", return_hydra_config=True)
    chosen = cfg.hydra.runtime.choices
    width = max(map(len, [*KEYS, *GROUPS])) + 2
    groups = "\n".join(f"  {g:<{width}}{text} (default: {chosen.get(g) or 'none'}): {', '.join(options(g))}"
                       for g, text in GROUPS.items())
    keys = "\n".join(f"  {k:<{width}}{text} (default: {_value(OmegaConf.select(cfg, k))})" for k, text in KEYS.items())
    return f"""usage: grokmuon train [-m] [group=option ...] [key=value ...]

Train one ensemble (one member per seed) until its members grok or reach the budget, and write a run
folder: outputs/<task>-<optimizer>-<head>/<time>/ (config.json, metrics.csv, summary.json, weights.pt).
Stopped (Ctrl-C), the same command line run again continues the run from its checkpoint, in its folder.

config groups (group=option):
{groups}

main keys (key=value; nested keys with a dot, e.g. task.p=23, model.d_model=64):
{keys}

modes:
  -m, --multirun        a sweep: every combination of comma-separated values (optimizer=adamw,muon) or an
                        experiment's grid, one run folder per cell under multirun/<experiment>/; run again,
                        it skips finished cells and resumes an interrupted one
  --cfg job             print the composed config (every key and its value) and exit
  --hydra-help          Hydra's own help
  hydra.run.dir=PATH    write the run folder there instead

examples:
  grokmuon train optimizer=adamw task=gcd
  grokmuon train head=stablemax 'seeds=[0,1,2,3]' max_epochs=300
  grokmuon train -m optimizer=adamw,muon 'seeds=[0,1,2]'
  grokmuon train -m experiment=smoke

threads: on a CPU a run uses one intra-op thread per process when several share the cores (a parallel
sweep) and all cores for a lone run; OMP_NUM_THREADS=N sets it yourself (docs/threads.md).
Values are checked before anything trains; a bad one is one line naming it and what is allowed.
"""


def _value(v) -> str:
    from omegaconf import OmegaConf
    if OmegaConf.is_config(v):
        v = OmegaConf.to_container(v)
    return "unset" if v is None else str(v).lower() if isinstance(v, bool) else str(v).replace(" ", "")

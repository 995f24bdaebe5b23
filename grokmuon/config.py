"""Config schemas (registered in Hydra's ConfigStore) and their validation.

YAML under conf/ holds values only; these dataclasses say what each value means and why it was chosen.
Unknown keys and wrong types fail when Hydra composes; `validate` catches values out of range.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from .names import HEADS, TASKS, TRAIN_FRACTIONS, is_prime
from .optimizers import names as optimizer_names


class ConfigError(ValueError):
    """A user's config value is wrong; the message is one line naming it and what is allowed."""


@dataclass
class TaskConfig:
    name: str = MISSING
    p: int = 97                 # the paper's modulus (§2.1)
    train_frac: float = 0.8     # the paper's Fig. 2 fraction per task; each conf/task/*.yaml sets its own
    n_bits: int = 10            # parity only: 10-bit strings, 1024 rows (§2.1)


@dataclass
class ModelConfig:
    # The paper gives no sizes. 2 layers and width 128 are the cited code's ([T]) and Power et al.'s;
    # 4 heads are Power et al.'s (the cited code has 1, which also hides its RoPE bug); MLP 4 x width.
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    dropout: float = 0.1        # [T] uses 0.2; 0.1 groks faster in our CPU trials and is the brief's default
    rope_base: float = 10000.0  # the RoPE paper's base; with 4 to 11 positions the base barely matters


@dataclass
class HeadConfig:
    name: str = "softmax"       # softmax | stablemax | sparsemax, each trained with its own loss


@dataclass
class OptimizerConfig:
    name: str = MISSING         # a module of grokmuon/optimizers (adamw | muon | ...)
    lr: float = 1e-3            # adamw: the lr for all weights; muon: the lr of the hidden matrices
    # Decoupled decay: each step multiplies a weight by (1 - lr * weight_decay). "Equivalent weight
    # decay" (paper §2.4) is, for us, the same per-step shrink lr * weight_decay on every weight under
    # both optimizers: AdamW 1e-3 x 1.0 = Muon 0.02 x 0.05 = 1e-3.
    weight_decay: float = 1.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])  # the paper's AdamW betas (§2.4)
    eps: float = 1e-8
    warmup_steps: int = 10      # linear lr warm-up over the first steps, as [M] (the paper is silent)
    # Muon only. Keller Jordan's defaults as of the paper's date (momentum 0.95, Nesterov, 5 NS steps).
    momentum: float = 0.95
    nesterov: bool = True
    ns_steps: int = 5
    ns_coefficients: list[float] = field(default_factory=lambda: [3.4445, -4.7750, 2.0315])
    adjust_lr: str = "original"  # update scale sqrt(max(1, rows/cols)), torch.optim.Muon's default
    # Newton-Schulz precision: auto = bf16 on CUDA (as torch.optim.Muon) and fp32 on CPU, where this
    # machine's batched bf16 matmul ran 30x slower than fp32 (grokmuon bench); fp32 is only more exact.
    ns_dtype: str = "auto"
    # Which weights Muon trains: hidden (the blocks' matrices; embedding, head and gains go to AdamW, as
    # Keller Jordan's README recommends, and the study's split) or all (every matrix, embedding and head
    # included, as his code does for the head). Added later; its default is what every older run did.
    split: str = "hidden"
    adamw_lr: float = 1e-3       # AdamW half of Muon (embedding, head, gains): the AdamW run's values,
    adamw_weight_decay: float = 1.0  # so the two optimizers differ only on the hidden matrices
    # NorMuon only: the rate of the EMA of each output row's mean square that normalises every neuron's
    # update (the paper's and its code's beta2; AdamW's betas are apart). Added later; no older run used it.
    normuon_beta2: float = 0.95
    # AdamW only: the stablemax paper's ⊥Grad (arXiv 2501.04697), each weight's gradient without its
    # component along that weight, rescaled to its norm, before AdamW. Added later; false is what older runs did.
    orthogonal_grad: bool = False


@dataclass
class LoggerConfig:
    name: str = "wandb"         # wandb | none
    mode: str = "offline"       # offline needs no account or network; online is the user's opt-in
    project: str = "grokmuon"
    entity: str | None = None


@dataclass
class GridConfig:
    # Hyperparameters on the member axis: every (lr, weight_decay) pair of these lists trains with every
    # seed, all in one ensemble (a member is (seed, lr, weight_decay)). Unset (null) = the optimizer's
    # own value. For Muon they move the hidden matrices' lr and decay; its AdamW part keeps adamw_lr and
    # adamw_weight_decay. Only these two can vary per member: the optimizers take them as [E] tensors.
    lr: list[float] | None = None
    weight_decay: list[float] | None = None


@dataclass
class GrokfastConfig:
    # A gradient filter before any optimizer's step (grokmuon/grokfast.py). none: the gradient as it is
    # (every run before it existed); ema: Grokfast-EMA (arXiv 2405.20233), g + lamb * EMA(g).
    name: str = "none"
    alpha: float = 0.98         # the EMA's decay per step: the paper's and its code's default
    lamb: float = 2.0           # how much of the slow component is added: the paper's and its code's default


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seeds: list[int] = field(default_factory=lambda: [0])  # one member per seed, trained together
    grid: GridConfig = field(default_factory=GridConfig)
    # Added later; its default (no filter) is what every older run did, so it leaves their hashes alone.
    grokfast: GrokfastConfig = field(default_factory=GrokfastConfig)
    # When to stop. patience: every member grokked and held it `patience` epochs (or the budget).
    # race: as soon as one (lr, weight_decay) of the grid has grokked in at least half its seeds, the
    # grid's best Kaplan-Meier median is decided (grokmuon/racing.py); the rest stop as raced_out.
    stop: str = "patience"
    # With stop=race: stop by the end of this epoch at the latest, the rest raced_out (null: no limit).
    # `grokmuon tune --race-chunks` sets it on each part of a race after the first, to the best median the
    # parts before found: past it no setting of this part could be chosen (racing.in_parts). Added later;
    # null is what every older run did, so it leaves their hashes alone.
    race_stop_by: int | None = None
    role: str = ""              # a label only (tune | confirm from `grokmuon tune`); not hashed
    # A label only: which race of `grokmuon tune` a tuning run is: 0 the plan's grid, k the k-th window
    # past an edge of what was raced before (tune.py); not hashed.
    race_round: int = 0
    batch_size: int = 512       # [T]'s and Power et al.'s batch; the paper is silent
    max_epochs: int = 1000      # budget; the paper's Fig. 4 has a Muon point at exactly 1000
    patience: int = 10          # epochs to go on after every member has grokked (to see it hold)
    grok_val_acc: float = 0.95  # the paper's threshold (§2.3)
    grok_train_acc: float = 0.99  # our reading of "near 100%": the paper gives no number
    # Which grokking epoch the report judges by. first: the paper's, the first epoch with val >=
    # grok_val_acc while train >= grok_train_acc. near_max: the later study's (Essential AI, "Muon Doesn't
    # Clearly Grok Faster", 2025), the first epoch with val within 0.01 of the run's maximum, which must
    # reach grok_val_acc (metrics.near_max_epoch); give it `patience` epochs past the first crossing to
    # find that maximum. Training, stopping and racing always use the first crossing (known online).
    grok_rule: str = "first"
    device: str = "auto"        # auto | cpu | cuda | cuda:N
    precision: str = "fp32"     # fp32 | bf16 (autocast for the forward pass)
    # Dropout masks: generator (one per member: every committed CPU run), hash (all members in one draw,
    # still member-private: model.MaskStream), auto: generator on a CPU, hash on a GPU.
    dropout_masks: str = "auto"
    # The train step (grokmuon/step.py). off: eager, the reference and every committed run. step:
    # torch.compile(fullgraph=True) of the whole step (CUDA graphs on a GPU); its numbers equal eager's to
    # float rounding, not bit for bit, so a compiled run is its own run (its hash keeps compile=step).
    # Needs hashed dropout masks (auto picks them).
    compile: str = "off"
    # Member-rows per evaluation forward (rows x members). 0: auto, 512 on a CPU, where the activations
    # then stay in cache (an evaluation 2x faster than at 8192, results/bench), 65536 on a GPU, where few
    # large launches win. The numbers do not depend on it (tested).
    eval_chunk: int = 0
    # Members per training forward/backward, one group after another. 0: auto, 4096 member-rows on a CPU
    # (8 members at batch 512: a step over 36 members left the cache), all members on a GPU. The
    # numbers do not depend on it (tested).
    train_chunk: int = 0
    # Train-split evaluation. every: both splits each epoch (full curves). lazy: the val split each epoch,
    # the train split only while a member has not memorised, on epochs where a member's val accuracy
    # reaches grok_val_acc, every eval_train_every epochs (the curves) and at the budget. The grokking and
    # memorisation epochs are the same (tested); the train columns of skipped epochs are blank. Saves up
    # to a fifth of an epoch once memorised (docs/speed.md).
    eval_train: str = "every"
    eval_train_every: int = 10  # lazy: the train split's curve has a point this often
    progress: bool = True       # the tqdm bar; to a log file or a pipe a line a minute (job.progress_bar)
    # checkpoint.pt (the whole training state) every N epochs, besides the one written at an
    # interruption; 0: only then. An interrupted cell resumes from its last checkpoint (checkpoint.py).
    checkpoint_every: int = 0
    # ...and at the end of the first epoch this many minutes after the last save (0: never on the clock):
    # a run killed without a signal (out of memory, a laptop's battery, a job's hard limit) resumes having
    # lost at most this much, on any hardware; one save every ten minutes costs little beside them.
    checkpoint_minutes: float = 10.0
    probes: bool = True         # weight and logit probes each epoch (probes.py) into metrics.csv
    # The Fourier probes (fourier.py: modadd, modsub, modmul, moddiv) every N epochs and at a run's last
    # epoch, blank between; 0: never. Each costs about one evaluation (~2% of a model=small epoch on a
    # CPU), so every 10th epoch keeps them near 0.2%.
    probe_every: int = 10
    keep_weights: bool = True   # weights.pt with every member's final weights (sweeps committed to git: false)
    experiment: str = "default"  # set by conf/experiment/*.yaml; names the sweep


def members(cfg: Any) -> list[tuple[int, float, float]]:
    """The ensemble's members as (seed, lr, weight_decay), in member order: for each lr of the grid, each
    weight decay, each seed; an unset grid axis takes the optimizer's value. Takes a DictConfig or the
    plain dict of a config.json (one written before the grid existed has no `grid`)."""
    grid, opt = cfg.get("grid") or {}, cfg["optimizer"]
    lrs = list(grid.get("lr") or [opt["lr"]])
    wds = list(grid.get("weight_decay") or [opt["weight_decay"]])
    return [(int(s), float(lr), float(wd)) for lr in lrs for wd in wds for s in cfg["seeds"]]


def register_configs() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate(cfg: Any) -> None:
    """Raise ConfigError (one line) for the first value out of range."""
    t, m, o = cfg.task, cfg.model, cfg.optimizer
    _check(t.name in TASKS, f"task={t.name!r} is unknown; allowed: {', '.join(TASKS)}")
    _check(cfg.head.name in HEADS, f"head={cfg.head.name!r} is unknown; allowed: {', '.join(HEADS)}")
    _check(o.name in optimizer_names(), f"optimizer={o.name!r} is unknown; allowed: {', '.join(optimizer_names())}")
    _check(cfg.logger.name in ("wandb", "none"), f"logger={cfg.logger.name!r} is unknown; allowed: wandb, none")
    _check(cfg.logger.mode in ("offline", "online", "disabled"),
           f"logger.mode={cfg.logger.mode!r} is unknown; allowed: offline, online, disabled")
    _check(0 < t.train_frac < 1, f"task.train_frac={t.train_frac} must lie strictly between 0 and 1")
    _check(t.p >= 2, f"task.p={t.p} must be at least 2")
    if t.name == "moddiv":
        _check(is_prime(t.p), f"task.p={t.p} is not prime; moddiv needs a prime modulus")
    _check(1 <= t.n_bits <= 20, f"task.n_bits={t.n_bits} must lie in 1..20")
    for key in ("lr", "adamw_lr"):
        _check(getattr(o, key) > 0, f"optimizer.{key}={getattr(o, key)} must be > 0")
    for key in ("weight_decay", "adamw_weight_decay", "momentum", "warmup_steps"):
        _check(getattr(o, key) >= 0, f"optimizer.{key}={getattr(o, key)} must be >= 0")
    _check(len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
           f"optimizer.betas={list(o.betas)} must be two numbers in [0, 1)")
    _check(0 <= o.normuon_beta2 < 1, f"optimizer.normuon_beta2={o.normuon_beta2} must lie in [0, 1)")
    _check(not o.orthogonal_grad or o.name == "adamw",
           f"optimizer.orthogonal_grad=true is AdamW's ⊥Grad; optimizer={o.name} does not take it")
    _check(len(o.ns_coefficients) == 3, "optimizer.ns_coefficients must hold three numbers (a, b, c)")
    _check(o.ns_dtype in ("auto", "bf16", "fp32"), f"optimizer.ns_dtype={o.ns_dtype!r} is unknown; allowed: auto, bf16, fp32")
    # ns_steps=0 is the ablation without orthogonalisation: the update divided by its Frobenius norm.
    _check(o.ns_steps >= 0, f"optimizer.ns_steps={o.ns_steps} must be >= 0")
    _check(o.split in ("hidden", "all"), f"optimizer.split={o.split!r} is unknown; allowed: hidden, all")
    _check(o.adjust_lr in ("original", "match_rms_adamw"),
           f"optimizer.adjust_lr={o.adjust_lr!r} is unknown; allowed: original, match_rms_adamw")
    for key in ("n_layers", "d_model", "n_heads", "d_mlp"):
        _check(getattr(m, key) >= 1, f"model.{key}={getattr(m, key)} must be >= 1")
    _check(m.d_model % m.n_heads == 0 and (m.d_model // m.n_heads) % 2 == 0,
           f"model.d_model={m.d_model} must split into model.n_heads={m.n_heads} heads of even size (RoPE)")
    _check(0 <= m.dropout < 1, f"model.dropout={m.dropout} must lie in [0, 1)")
    _check(len(cfg.seeds) >= 1, "seeds must list at least one seed, e.g. seeds=[0,1,2]")
    _check(len(set(cfg.seeds)) == len(cfg.seeds), f"seeds={list(cfg.seeds)} has repeats")
    for key in ("lr", "weight_decay"):
        values = cfg.grid[key]
        if values is None:
            continue
        _check(len(values) >= 1, f"grid.{key}=[] is empty; give values, e.g. grid.{key}=[1e-3,3e-3], or leave it out")
        _check(len(set(values)) == len(values), f"grid.{key}={list(values)} has repeats")
        low = 0 if key == "weight_decay" else 1e-300
        _check(all(v >= low for v in values),
               f"grid.{key}={list(values)}: every value must be {'>= 0' if key == 'weight_decay' else '> 0'}")
    gf = cfg.get("grokfast") or {"name": "none", "alpha": 0.98, "lamb": 2.0}
    _check(gf["name"] in ("none", "ema"), f"grokfast={gf['name']!r} is unknown; allowed: none, ema")
    _check(0 <= gf["alpha"] < 1, f"grokfast.alpha={gf['alpha']} must lie in [0, 1)")
    _check(gf["lamb"] >= 0, f"grokfast.lamb={gf['lamb']} must be >= 0")
    _check(cfg.stop in ("patience", "race"), f"stop={cfg.stop!r} is unknown; allowed: patience, race")
    _check(cfg.race_stop_by is None or cfg.race_stop_by >= 1, f"race_stop_by={cfg.race_stop_by} must be >= 1 (or null)")
    _check(cfg.race_stop_by is None or cfg.stop == "race", "race_stop_by stops a race: give it with stop=race only")
    _check(cfg.batch_size >= 1, f"batch_size={cfg.batch_size} must be >= 1")
    _check(cfg.max_epochs >= 1, f"max_epochs={cfg.max_epochs} must be >= 1")
    _check(cfg.patience >= 0, f"patience={cfg.patience} must be >= 0")
    _check(0 < cfg.grok_val_acc <= 1, f"grok_val_acc={cfg.grok_val_acc} must lie in (0, 1]")
    _check(0 < cfg.grok_train_acc <= 1, f"grok_train_acc={cfg.grok_train_acc} must lie in (0, 1]")
    _check(cfg.grok_rule in ("first", "near_max"), f"grok_rule={cfg.grok_rule!r} is unknown; allowed: first, near_max")
    _check(cfg.precision in ("fp32", "bf16"), f"precision={cfg.precision!r} is unknown; allowed: fp32, bf16")
    _check(cfg.dropout_masks in ("auto", "generator", "hash"),
           f"dropout_masks={cfg.dropout_masks!r} is unknown; allowed: auto, generator, hash")
    _check(cfg.compile in ("off", "step"), f"compile={cfg.compile!r} is unknown; allowed: off, step")
    _check(cfg.compile == "off" or cfg.dropout_masks != "generator" or cfg.model.dropout == 0,
           "compile=step needs dropout_masks=hash or auto: per-member dropout generators do not compile")
    _check(cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"),
           f"device={cfg.device!r} is unknown; allowed: auto, cpu, cuda, cuda:N")
    _check(cfg.eval_chunk >= 0, f"eval_chunk={cfg.eval_chunk} must be >= 0 (0: auto)")
    _check(cfg.train_chunk >= 0, f"train_chunk={cfg.train_chunk} must be >= 0 (0: auto)")
    _check(cfg.eval_train in ("every", "lazy"), f"eval_train={cfg.eval_train!r} is unknown; allowed: every, lazy")
    _check(cfg.eval_train_every >= 1, f"eval_train_every={cfg.eval_train_every} must be >= 1")
    _check(cfg.probe_every >= 0, f"probe_every={cfg.probe_every} must be >= 0 (0: never)")
    _check(cfg.checkpoint_every >= 0, f"checkpoint_every={cfg.checkpoint_every} must be >= 0 (0: only at an interruption)")
    _check(cfg.checkpoint_minutes >= 0, f"checkpoint_minutes={cfg.checkpoint_minutes} must be >= 0 (0: never on the clock)")


# The Hydra configs: conf/ beside the package in a checkout (editable install or not); an installed wheel
# carries them as package data in grokmuon/conf/ (pyproject.toml), so `pip install .` works from any folder.
_HERE = Path(__file__).resolve().parent
CONF = next((d for d in (_HERE / "conf", _HERE.parent / "conf") if (d / "train.yaml").is_file()), _HERE / "conf")


def leaves(node: Any = Config, prefix: str = "") -> list[str]:
    """Every leaf of the schema as a dotted path (task.p, optimizer.betas, seeds, ...), in schema order.
    A leaf is any field that is not itself a dataclass; lists (seeds, optimizer.betas) are leaves."""
    from dataclasses import fields, is_dataclass

    node = node() if isinstance(node, type) else node
    out = []
    for f in fields(node):
        value = getattr(node, f.name)
        out += leaves(value, f"{prefix}{f.name}.") if is_dataclass(value) else [f"{prefix}{f.name}"]
    return out


def unwritable(folder: Path) -> str | None:
    """Why nothing could be written in `folder` (created if need be), or None if it could. Creates
    nothing: it tries a temp file in the nearest folder that exists."""
    import tempfile
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        return f"{probe}: {err.strerror or err}"
    return None


def fail(message: str, code: int = 2) -> None:
    """A user mistake: one line on stderr, no traceback, non-zero exit."""
    print(f"grokmuon: error: {message}", file=sys.stderr)
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    """argparse, with its usage-and-message error turned into our one line (exit 2)."""

    def error(self, message: str) -> None:
        fail(f"{message.replace('argument command: ', '')}; see `{self.prog} --help`")


__all__ = ["CONF", "Config", "ConfigError", "Parser", "fail", "leaves", "members", "register_configs", "unwritable",
           "validate",
           "TRAIN_FRACTIONS"]

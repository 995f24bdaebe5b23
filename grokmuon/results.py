"""Run folders -> one table with a row per member (`grokmuon collect`), and reading it back.

A run folder is any folder holding a summary.json (written by runlog.py), with its config.json and
metrics.csv beside it. A folder whose files are corrupt or cut short is reported on stderr, one line,
and left out; it never stops the collection. Several runs of one member (same member_hash: a re-run,
a cell shared by two sweeps, a set-aside attempt) become one row: the newest complete one.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from .resume import SUMMARY, config_hash, member_hash, read_summary

METRICS, CONFIG = "metrics.csv", "config.json"
DEFAULT_DIRS = ("outputs", "multirun")

# Config axes copied to every row: column -> dotted path in config.json.
AXES = {
    "experiment": "experiment", "role": "role", "stop": "stop", "task": "task.name", "optimizer": "optimizer.name", "head": "head.name",
    "lr": "optimizer.lr", "weight_decay": "optimizer.weight_decay",
    "adamw_lr": "optimizer.adamw_lr", "adamw_weight_decay": "optimizer.adamw_weight_decay",
    "batch_size": "batch_size", "train_frac": "task.train_frac", "p": "task.p", "n_bits": "task.n_bits",
    "n_layers": "model.n_layers", "d_model": "model.d_model", "n_heads": "model.n_heads",
    "d_mlp": "model.d_mlp", "dropout": "model.dropout", "max_epochs": "max_epochs",
    "patience": "patience", "grok_val_acc": "grok_val_acc", "grok_train_acc": "grok_train_acc",
    "precision": "precision",
}
# Per-member values of a grid run (summary.json's members carry them); they override the config's.
PER_MEMBER = ("lr", "weight_decay")
# Per-member outcome, from summary.json's members.
OUTCOME = ("seed", "member", "grokking_epoch", "memorisation_epoch", "censored", "status",
           "diverged_epoch", "epochs_run", "final_train_acc", "final_val_acc")
COLUMNS = [*AXES, *OUTCOME, "plateau", "run_status", "wall_s", "device", "config_hash", "member_hash",
           "written_at", "run_dir"]
NEEDED_METRICS = ["epoch", "member", "seed", "train_acc", "val_acc"]
# Cells every row of runs.csv has (collect always writes them); a blank one means the file was cut.
REQUIRED = ("task", "optimizer", "head", "seed", "status", "epochs_run", "run_status")


class BadRun(ValueError):
    """A run folder whose files cannot be trusted; the message says which file and why."""


class TableError(ValueError):
    """A results table that is missing, empty or holds nothing to report; the message is one line."""


def _get(cfg: dict, dotted: str):
    for key in dotted.split("."):
        cfg = cfg.get(key) if isinstance(cfg, dict) else None
    return cfg


def run_folders(dirs: Iterable[str | Path]) -> list[Path]:
    """Every folder under dirs that holds a summary.json (dirs that do not exist are passed over)."""
    found = set()
    for d in map(Path, dirs):
        if d.is_dir():
            found.update(p.parent for p in d.rglob(SUMMARY))
    return sorted(found)


def lazy_blanks(cfg: dict) -> tuple[str, ...]:
    """The metrics.csv columns a run may leave blank: the train split's, under eval_train=lazy."""
    return ("train_acc",) if cfg.get("eval_train") == "lazy" else ()


def check_metrics(folder: Path, members: list[dict], complete: bool, blank_ok: tuple[str, ...] = ()) -> pd.DataFrame:
    """metrics.csv, checked: it parses, its NEEDED_METRICS cells are numbers (not blank, not garbage;
    blank_ok: columns that may be blank, the train split of an eval_train=lazy run) and, for a finished
    run, it holds epochs 1..epochs_run of every member (a shorter file was cut off). BadRun, naming the
    file, if not."""
    path = folder / METRICS
    try:
        m = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise BadRun(f"{path}: unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})")
    missing = [c for c in NEEDED_METRICS if c not in m.columns]
    if missing:
        raise BadRun(f"{path}: no column {', '.join(missing)}")
    blank = m[NEEDED_METRICS].isna()
    m[NEEDED_METRICS] = m[NEEDED_METRICS].apply(pd.to_numeric, errors="coerce")
    bad = m[NEEDED_METRICS].isna() & ~(blank & blank.columns.isin(blank_ok))
    if bad.any().any():
        raise BadRun(f"{path}: blank, partial or garbled rows (cut off mid-write?)")
    if not complete:
        return m
    for mem in members:
        epochs = m.loc[m["member"] == mem["member"], "epoch"]
        if len(epochs) != mem["epochs_run"] or (len(epochs) and epochs.max() != mem["epochs_run"]):
            raise BadRun(f"{path}: member {mem['member']} has {len(epochs)} epochs, summary.json says "
                         f"{mem['epochs_run']} (truncated?)")
    return m


# A plateau: a member that neither fits nor generalises for many epochs (seen on modadd at batch 128: train
# and val accuracy stuck at 0.3-0.5 for 150 epochs). Slow learners still climb; a plateau does not.
PLATEAU_EPOCHS = 50             # how long it must have stayed flat, at the end of its run
PLATEAU_RANGE = 0.05            # its train accuracy moved less than this over those epochs
PLATEAU_BELOW = 0.9             # ... and stayed below this: far from fitting (one stuck at 0.988 is a near miss)


def on_plateau(member_metrics: pd.DataFrame, mem: dict, train_threshold: float) -> bool:
    """Whether a member ended on a plateau: never memorised, not diverged, and its train accuracy over its
    last PLATEAU_EPOCHS epochs stayed within PLATEAU_RANGE and below PLATEAU_BELOW of the threshold."""
    if mem.get("memorisation_epoch") is not None or mem.get("status") in ("diverged", "grokked"):
        return False
    tail = member_metrics.sort_values("epoch")["train_acc"].dropna().tail(PLATEAU_EPOCHS)
    return bool(len(tail) == PLATEAU_EPOCHS and tail.max() - tail.min() < PLATEAU_RANGE
                and tail.max() < PLATEAU_BELOW * train_threshold)


def read_run(folder: Path) -> list[dict]:
    """The rows of one run folder, one per member; BadRun if a file is corrupt or partial."""
    summary = read_summary(folder)
    if summary is None or not isinstance(summary.get("members"), list) or "status" not in summary:
        raise BadRun(f"{folder / SUMMARY}: unreadable or not a grokmuon summary")
    try:
        cfg = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise BadRun(f"{folder / CONFIG}: unreadable ({type(err).__name__})")
    complete = summary["status"] == "complete"
    metrics = check_metrics(folder, summary["members"], complete, lazy_blanks(cfg))
    written = summary.get("written_at") or pd.Timestamp((folder / SUMMARY).stat().st_mtime, unit="s",
                                                           tz="UTC").isoformat()
    run = {"run_status": summary["status"], "wall_s": summary.get("wall_s"), "device": summary.get("device"),
           "config_hash": summary.get("config_hash") or config_hash(cfg), "written_at": written,
           "run_dir": str(folder)}
    rows = []
    for mem in summary["members"]:
        try:
            outcome = {k: mem.get(k) for k in OUTCOME if k != "seed"} | {"seed": int(mem["seed"])}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadRun(f"{folder / SUMMARY}: a member without a seed")
        own = {k: mem[k] for k in PER_MEMBER if mem.get(k) is not None}
        rows.append({**{c: _get(cfg, p) for c, p in AXES.items()}, **own, **outcome, **run,
                     "plateau": on_plateau(metrics[metrics["member"] == mem.get("member")], mem,
                                           float(_get(cfg, "grok_train_acc") or 0.99)),
                     "member_hash": mem.get("member_hash") or member_hash(cfg, outcome["seed"], **own)})
    return rows


def newest_complete(table: pd.DataFrame) -> pd.DataFrame:
    """One row per member_hash: a complete run before an incomplete one, then the newest."""
    when = pd.to_datetime(table["written_at"], utc=True, format="ISO8601", errors="coerce")
    order = table.assign(_done=table["run_status"] == "complete", _when=when)
    order = order.sort_values(["_done", "_when"], ascending=False, kind="stable")
    return order.drop_duplicates("member_hash").drop(columns=["_done", "_when"])


def collect(dirs: Iterable[str | Path], warn: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The table of every member of every readable run under dirs (see the module doc)."""
    warn = warn or (lambda msg: print(f"grokmuon: skipped {msg}", file=sys.stderr))
    rows = []
    for folder in run_folders(dirs):
        try:
            rows.extend(read_run(folder))
        except BadRun as err:
            warn(str(err))
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    table = newest_complete(table)
    for col in ("grokking_epoch", "memorisation_epoch", "diverged_epoch"):
        table[col] = table[col].astype("Int64")
    return table.sort_values(["experiment", "task", "optimizer", "head", "seed", "config_hash"],
                             kind="stable").reset_index(drop=True)


def load(path: str | Path) -> pd.DataFrame:
    """A runs.csv written by collect; TableError if it is missing, empty or not one."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"no results table at {path}; make one with `grokmuon collect`")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise TableError(f"{path} is not a results table ({str(err).splitlines()[0]})")
    missing = [c for c in ("task", "optimizer", "head", "seed", "grokking_epoch", "status") if c not in table]
    if missing:
        raise TableError(f"{path} is not a results table: no column {', '.join(missing)}")
    if table.empty:
        raise TableError(f"{path} holds no runs")
    required = [c for c in REQUIRED if c in table]
    blank = table[required].isna().any(axis=1)
    if blank.any():
        i = blank.idxmax()
        empty = [c for c in required if pd.isna(table.at[i, c])]
        raise TableError(f"{path}: line {int(i) + 2} has no {', '.join(empty)} (cut off?); "
                         "make the table again with `grokmuon collect`")
    for col in ("grokking_epoch", "memorisation_epoch", "diverged_epoch", "epochs_run", "max_epochs"):
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def finished(table: pd.DataFrame, source: str = "the table") -> pd.DataFrame:
    """Members of complete runs (incomplete ones have no outcome yet), with the columns the statistics
    and figures use: grokked, diverged, and time/event for survival curves. A member that did not grok
    is censored at its last epoch; a diverged one at the budget, since it will never grok (it is not
    a member that might have grokked later, as ordinary censoring assumes). A diverged member is
    never counted as grokked, even one that grokked before it diverged (within `patience`): its
    grokking epoch stays in the table, but the counts n = grokked + censored + diverged hold."""
    done = table[table["run_status"] == "complete"] if "run_status" in table else table
    if done.empty:
        raise TableError(f"{source} holds no complete runs ({len(table)} rows, all unfinished)")
    done = done.copy()
    done["diverged"] = done["status"] == "diverged"
    done["grokked"] = done["grokking_epoch"].notna() & ~done["diverged"]
    budget = done["max_epochs"] if "max_epochs" in done else done["epochs_run"]
    stopped = done["epochs_run"].where(~done["diverged"], budget).astype(float)
    done["time"] = done["grokking_epoch"].astype(float).where(done["grokked"], stopped)
    done["event"] = done["grokked"]
    # Learning speed and the grokking delay, apart: the memorisation epoch m (train acc reached its
    # threshold; censored where it never did) and the delay d = grokking epoch - m. A member that
    # memorised but never grokked has its delay censored at (where it stopped - m); one that never
    # memorised has no delay at all (NaN: counted apart). d = 0: it generalised while it fit.
    mem = done["memorisation_epoch"].astype(float)
    done["memorised"] = mem.notna() & ~done["diverged"]
    done["mem_time"] = mem.where(done["memorised"], stopped)
    done["mem_event"] = done["memorised"]
    done["delay_time"] = (done["time"] - mem).where(done["memorised"])
    done["delay_event"] = done["grokked"] & done["memorised"]
    done["no_delay"] = done["delay_event"] & (done["delay_time"] == 0)
    return done


def judged(done: pd.DataFrame) -> pd.DataFrame:
    """The members a comparison is judged on: a `grokmuon tune` table's confirmation runs (fresh seeds
    at each optimizer's chosen setting), else every member."""
    if "role" in done and (done["role"] == "confirm").any():
        return done[done["role"] == "confirm"]
    return done

"""Run folders -> one table with a row per member (`grokmuon collect`), reading it back, and the axes
of a study: which config columns a table has and which of them vary within a cell.

A run folder (runfolder.py owns its format) is any folder holding a summary.json, with its config.json
and metrics.csv beside it. A folder whose files are corrupt or cut short is reported on stderr, one line,
and left out; it never stops the collection. Several runs of one member (same member_hash: a re-run,
a cell shared by two sweeps, a set-aside attempt) become one row: the newest complete one.

The config columns come from the schema (config.Config): every leaf but the member axis and the keys
that are not results, so a sweep over any key (optimizer.momentum, optimizer.betas, ...) shows in the
table, and the report keeps its values apart rather than pooling them silently.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from . import arms
from .phases import PHASES
from .config import leaves
from .runfolder import METRICS, SUMMARY, BadRun, check_metrics, lazy_blanks, read_config, read_summary, run_folders
from .runid import NOT_RESULTS, config_hash, member_hash, with_defaults

DEFAULT_DIRS = ("outputs", "multirun")
CELL = ("task", "optimizer", "head")            # a cell of the study's grid; its seeds are its members
# Not results (runid.NOT_RESULTS), but they say which sweep, and which step of `grokmuon tune`, a row is of.
LABELS = ("experiment", "role", "race_round")
# The member axis is not a column of its own: a row's seed, lr and weight decay are the member's.
MEMBER_AXIS = ("seeds", "grid")
# The config columns of tables collected before the columns came from the schema, in their order: kept
# first, so old and new tables line up column for column; the schema's other columns end each row.
FIRST = ("experiment", "role", "stop", "task", "optimizer", "head", "lr", "weight_decay", "adamw_lr",
         "adamw_weight_decay", "batch_size", "train_frac", "p", "n_bits", "n_layers", "d_model", "n_heads",
         "d_mlp", "dropout", "max_epochs", "patience", "grok_val_acc", "grok_train_acc", "precision")


def column_names(paths: list[str]) -> dict[str, str]:
    """column -> dotted config path. A group's name is the group's column (task.name -> task); any other
    leaf is its last key (optimizer.momentum -> momentum), or its whole path where two share a last key."""
    short = [p.split(".")[0] if p.endswith(".name") else p.rsplit(".", 1)[-1] for p in paths]
    return {s if short.count(s) == 1 else p: p for s, p in zip(short, paths)}


def axes(paths: list[str]) -> dict[str, str]:
    """The config columns of a table: every schema leaf but the member axis and NOT_RESULTS (LABELS
    excepted), FIRST first, then the rest in schema order."""
    kept = [p for p in paths if p.split(".")[0] not in MEMBER_AXIS
            and (p.split(".")[0] not in NOT_RESULTS or p in LABELS)]
    named = column_names(kept)
    return {**{c: named[c] for c in FIRST}, **{c: p for c, p in named.items() if c not in FIRST}}


# Config axes copied to every row: column -> dotted path in config.json.
AXES = axes(leaves())
# Per-member values of a grid run (summary.json's members carry them); they override the config's.
PER_MEMBER = ("lr", "weight_decay")
# Per-member outcome, from summary.json's members.
OUTCOME = ("seed", "member", "grokking_epoch", "memorisation_epoch", "censored", "status",
           "diverged_epoch", "epochs_run", "final_train_acc", "final_val_acc")
# Computed at collect time from each member's metrics.csv curve (see member_extras): the outside study's
# grokking epoch beside ours (grokking_epoch stays the first crossing), what grokking cost, and whether
# it held (metrics.after_grokking).
# Whole numbers that may be blank (a member that never grokked): pandas' nullable Int64, in collect and load.
EPOCH_COLUMNS = ("grokking_epoch", "memorisation_epoch", "diverged_epoch", "grokking_epoch_near_max", "flops_to_grok",
                 "post_grok_epochs", *PHASES)
# The Fourier probes' phase epochs (phases.py) are blank for a run trained without them; so are the
# update's and gradient's stable ranks (probes.UpdateWatch: the median over a member's probe epochs up to
# its grokking epoch, all of them where it did not grok).
SPECTRUM = {"update_rank_to_grok": "update_stable_rank", "grad_rank_to_grok": "grad_stable_rank"}
EXTRAS = ("grokking_epoch_near_max", "wall_s_to_grok", "flops_to_grok", "post_grok_epochs", "post_grok_below",
          "post_grok_min_val", "regressed", *PHASES, *SPECTRUM)
COLUMNS = [*FIRST, *OUTCOME, "plateau", "run_status", "wall_s", "device", "config_hash", "member_hash",
           "written_at", "run_dir", *(c for c in AXES if c not in FIRST), *EXTRAS, "arm"]      # new columns last
# Cells every row of runs.csv has (collect always writes them); a blank one means the file was cut.
REQUIRED = ("task", "optimizer", "head", "seed", "status", "epochs_run", "run_status")
# Columns that may differ between the members of one cell; a report that pools over them says so. The
# cell itself is no such column, nor the labels (a sweep's name changes no run), nor how `grokmuon tune`
# stops its steps (judged() parts them by role).
CONFIG_AXES = tuple(c for c in AXES if c not in (*CELL, *LABELS, "stop", "race_stop_by"))
# What a sweep may scan on purpose, two kinds. SCANNED: each optimizer's own hyperparameters; the
# report keeps their values apart and sets each optimizer's best against the other's (*By scanned
# value*). CONDITIONS: what both optimizers share and are compared at, value by value, never picked:
# the batch size and the model's shape, which a later study found move grokking more than the optimizer.
# Any other config column that differs within a cell means sweeps were mixed: the report warns that it
# pools over it.
SCANNED = tuple(c for c in CONFIG_AXES if AXES[c].startswith("optimizer."))
CONDITIONS = ("batch_size", *(c for c in CONFIG_AXES if c in ("n_layers", "d_model", "n_heads", "d_mlp")))


class TableError(ValueError):
    """A results table that is missing, empty or holds nothing to report; the message is one line."""


def _get(cfg: dict, dotted: str):
    for key in dotted.split("."):
        cfg = cfg.get(key) if isinstance(cfg, dict) else None
    return json.dumps(cfg) if isinstance(cfg, list) else cfg    # a list (betas) as one comparable cell


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


def member_extras(member_metrics: pd.DataFrame, mem: dict, cfg: dict) -> dict:
    """A member's EXTRAS from its own curve: grokking_epoch_near_max (metrics.near_max_epoch at the run's
    val threshold), whether grokking held after it (metrics.after_grokking), and at its grokking epoch
    (first crossing; blank where it did not grok) the run's wall_s (the ensemble's clock: its E members train together, so this is what one waits, not a share)
    and the member's model FLOPs (cost.member_flops: training, evaluation and, for Muon, Newton-Schulz)."""
    from . import cost, metrics, phases

    curve = member_metrics.sort_values("epoch")
    val, threshold = curve["val_acc"].astype(float).tolist(), float(_get(cfg, "grok_val_acc") or 0.95)
    g = mem.get("grokking_epoch")
    out = {"grokking_epoch_near_max": metrics.near_max_epoch(val, threshold), "wall_s_to_grok": None,
           "flops_to_grok": None, **metrics.after_grokking(val, g, threshold), **dict.fromkeys(PHASES)}
    for col, probe in SPECTRUM.items():
        vals = curve.loc[curve["epoch"] <= (g if g is not None else curve["epoch"].max()), probe] \
            if probe in curve else pd.Series(dtype=float)
        out[col] = float(vals.median()) if vals.notna().any() else None
    if {"restricted_loss", "excluded_loss"} <= set(curve.columns):
        probed = curve.dropna(subset=["restricted_loss", "excluded_loss"])
        if len(probed):
            out.update(phases.member_phases(probed["epoch"], probed["restricted_loss"], probed["excluded_loss"]))
    at = curve[curve["epoch"] == g]
    if g is None or at.empty:
        return out
    if "wall_s" in at and pd.notna(at["wall_s"].iloc[0]):
        out["wall_s_to_grok"] = float(at["wall_s"].iloc[0])
    from .optimizers import orthogonalises      # Newton-Schulz FLOPs: the optimizer's module says (no torch)
    ns_steps = _get(cfg, "optimizer.ns_steps")
    ns_steps = (5 if ns_steps is None else int(ns_steps)) if orthogonalises(_get(cfg, "optimizer.name")) else None
    flops = cost.member_flops(
        _get(cfg, "task.name"), int(_get(cfg, "task.p") or 97), int(_get(cfg, "task.n_bits") or 10),
        float(_get(cfg, "task.train_frac")), int(_get(cfg, "model.n_layers")), int(_get(cfg, "model.d_model")),
        int(_get(cfg, "model.d_mlp")), int(_get(cfg, "batch_size")),
        ns_steps, curve.loc[curve["epoch"] <= g, "train_acc"].notna().tolist(),
        _get(cfg, "optimizer.split") or "hidden")
    out["flops_to_grok"] = flops[-1]
    return out


def read_run(folder: Path) -> list[dict]:
    """The rows of one run folder, one per member; BadRun if a file is corrupt or partial."""
    summary = read_summary(folder)
    if summary is None or not isinstance(summary.get("members"), list) or "status" not in summary:
        raise BadRun(f"{folder / SUMMARY}: unreadable or not a grokmuon summary")
    cfg = with_defaults(read_config(folder))  # a key added since the run: what the run did, not a blank
    complete = summary["status"] == "complete"
    path = folder / METRICS
    if not complete and (not path.exists() or path.stat().st_size == 0):   # started, no epoch finished yet
        raise BadRun(f"{folder}: {summary['status']}, no epoch written yet")
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
        curve = metrics[metrics["member"] == mem.get("member")]
        rows.append({**{c: _get(cfg, p) for c, p in AXES.items()}, **own, **outcome, **run,
                     **member_extras(curve, mem, cfg),
                     "plateau": on_plateau(curve, mem, float(_get(cfg, "grok_train_acc") or 0.99)),
                     "arm": arms.label(cfg),
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
    for col in EPOCH_COLUMNS:
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
    for col in (*EPOCH_COLUMNS, "epochs_run", "max_epochs"):
        if col in table:
            table[col] = table[col].astype("Int64")
    if "arm" not in table:          # a table collected before arms: each row's from its config columns
        table["arm"] = [arms.label(row_config(row)) for row in table.to_dict("records")]
    return table


def by_arm(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the report and the figures compare it: its `optimizer` column holding each row's arm
    (arms.label: "muon momentum=0"), so every group, cell and test is per arm; the optimizer's own name
    stays the arm's first word. A table without arms (made by hand) is as it is."""
    return table.assign(optimizer=table["arm"]) if "arm" in table else table


# What --arm-by may split an arm by: the settings an arm is tuned at (arms.NOT_ARM), each a number.
SPLITS = ("lr", "weight_decay", "adamw_lr", "adamw_weight_decay")


def split_arms(table: pd.DataFrame, keys: list[str] | None) -> pd.DataFrame:
    """The table with each row's arm extended by its value of each key, as a Hydra override writes it
    ("muon adamw_lr=0.003"): the settings of a scan compared as arms, each against a reference setting
    (report and figures --arm-by). Only a setting an arm is tuned at can split it (SPLITS); a key given
    twice counts once; a blank cell (a table collected before the column) reads as the optimizer's
    default; anything else is one line."""
    keys = list(dict.fromkeys(keys or ()))
    if not keys:
        return table
    bad = [k for k in keys if k not in SPLITS or k not in table]
    if bad:
        raise TableError(f"--arm-by {bad[0]}: give a setting an arm is tuned at that this table has: "
                         f"{', '.join(k for k in SPLITS if k in table)}")
    arm = table["arm"].astype(str) if "arm" in table else table["optimizer"].astype(str)
    for k in keys:
        values = [arms.optimizer_defaults(o).get(k) if pd.isna(v) else v for o, v in zip(table["optimizer"], table[k])]
        arm = arm + [f" {k}={arms.value_text(v)}" for v in values]
    return table.assign(arm=arm)


def row_config(row: dict) -> dict:
    """A row's config columns nested back into a config dict ({"optimizer": {"name": ..., ...}}), a blank
    cell left out (a key the table lacks reads as its default) and a list cell ("[0.9, 0.98]") a list."""
    cfg: dict = {}
    for col, path in AXES.items():
        v = row.get(col)
        if v is None or (isinstance(v, float) and pd.isna(v)):
            continue
        if isinstance(v, str) and v.startswith("["):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        *parents, key = path.split(".")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[key] = v
    return cfg


def stopped_at(done: pd.DataFrame) -> pd.Series:
    """Where each member is censored if it did not grok: its last epoch; a diverged one at the budget."""
    budget = done["max_epochs"] if "max_epochs" in done else done["epochs_run"]
    return done["epochs_run"].where(done["status"] != "diverged", budget).astype(float)


def outcome(done: pd.DataFrame) -> pd.DataFrame:
    """The grokking outcome columns from grokking_epoch and status: diverged, grokked, and time/event
    for survival curves (finished() explains the censoring)."""
    done = done.assign(diverged=done["status"] == "diverged")
    done["grokked"] = done["grokking_epoch"].notna() & ~done["diverged"]
    done["time"] = done["grokking_epoch"].astype(float).where(done["grokked"], stopped_at(done))
    done["event"] = done["grokked"]
    return done


def as_raced(tune: pd.DataFrame) -> pd.DataFrame:
    """Tuning members as their race judged them. A race stops on the first crossing, the one rule known
    while training, under any grok_rule; where finished() moved the near-max epoch into grokking_epoch,
    the first crossing comes back, with the outcome columns it gives."""
    if "grokking_epoch_first" not in tune:
        return tune
    return outcome(tune.assign(grokking_epoch=tune["grokking_epoch_first"]))


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
    if "grok_rule" in done and (done["grok_rule"] == "near_max").any():
        # Rows run under the later study's rule are judged by it: their grokking epoch is the near-max
        # one from here on (every table, test and figure), the first crossing kept beside it.
        near = done["grok_rule"] == "near_max"
        done["grokking_epoch_first"] = done["grokking_epoch"]
        done["grokking_epoch"] = done["grokking_epoch"].where(~near, done["grokking_epoch_near_max"])
    done = outcome(done)
    stopped = stopped_at(done)
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
    # The Fourier probes' phase epochs (phases.py): a member without one (its curve never moved that far)
    # is censored at its last epoch. The report's Phases section and figure 7's markers both read these.
    for c in PHASES:
        if c in done:
            phase = pd.to_numeric(done[c], errors="coerce")
            done[f"{c}_time"] = phase.fillna(done["epochs_run"].astype(float))
            done[f"{c}_event"] = phase.notna()
    return done


def judged(done: pd.DataFrame) -> pd.DataFrame:
    """The members a comparison is judged on: every member but the tuning members of `grokmuon tune`,
    which chose the settings (judging on them would flatter both), so its confirmation runs (fresh seeds
    at each optimizer's chosen setting) and any runs collected beside them at those settings (the other
    heads, experiment=heads_tuned). A table of tuning members only is judged on them all."""
    rest = done[done["role"] != "tune"] if "role" in done else done
    return rest if len(rest) else done


# ----------------------------------------------------------------------------------- axes of a study
def varying_axes(done: pd.DataFrame) -> dict[str, int]:
    """Config columns that differ between members of one cell (task, optimizer, head), with how many values."""
    cols = [c for c in CONFIG_AXES if c in done]
    spread = done.groupby(list(CELL))[cols].nunique(dropna=False).max()
    return {c: int(n) for c, n in spread.items() if n > 1}


def scanned_axes(done: pd.DataFrame) -> list[str]:
    """The SCANNED columns that differ within a cell at one condition: what a scan varied (empty for a plain
    grid, and for a table tuned per condition, whose lr and weight decay differ only between its batch
    sizes or widths: each was chosen there, none scanned)."""
    cols = [c for c in varying_axes(done) if c in SCANNED]
    if not cols:
        return []
    spread = done.groupby([*CELL, *condition_axes(done)], dropna=False)[cols].nunique(dropna=False).max()
    return [c for c in cols if spread[c] > 1]


def condition_axes(done: pd.DataFrame) -> list[str]:
    """The CONDITIONS columns that differ within a task and head (within a cell, or only between the
    optimizers: then no value has both, and the report shows that rather than compare across it), less
    any that only relabel an earlier one (d_mlp moves with d_model between model=small and
    model=default): what the table compares optimizers at."""
    cols = [c for c in CONDITIONS if c in done]
    spread = done.groupby(["task", "head"])[cols].nunique(dropna=False).max()
    kept: list[str] = []
    for c in (c for c in cols if spread[c] > 1):
        if not any(one_to_one(done[k], done[c]) for k in kept):
            kept.append(c)
    return kept


def one_to_one(a: pd.Series, b: pd.Series) -> bool:
    """Whether each value of a goes with one value of b and back (two names for one split of the rows)."""
    pairs = pd.DataFrame({"a": a.astype(str), "b": b.astype(str)}).drop_duplicates()
    return pairs["a"].is_unique and pairs["b"].is_unique


def best_setting(cell: pd.DataFrame, scanned: list[str]) -> tuple[tuple, pd.DataFrame] | None:
    """The values of the scanned columns with the earliest Kaplan-Meier median in one cell, and its
    members (None when fewer than half grokked at every value)."""
    from . import stats     # scipy: only for a scan's best setting, not for every `grokmuon collect`

    groups = {k if isinstance(k, tuple) else (k,): g for k, g in cell.groupby(scanned, dropna=False)}
    medians = {k: stats.km_median(g["time"], g["event"]) for k, g in groups.items()}
    reached = {k: m for k, m in medians.items() if m is not None}
    if not reached:
        return None
    k = min(reached, key=reached.get)
    return k, groups[k]

"""The Hydra job behind `grokmuon train`: open the run folder, train, close it (one try/finally).

cli.py checks the command line first (precheck.py); `main` hands it to Hydra, which calls `train_job`
once per run (a sweep: once per cell). The run folder's format and the skip / resume decision are
runfolder.py's; the epoch loop is train.py's.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .config import CONF, ConfigError, fail, members, register_configs, validate
from .records import save_run_records
from .runfolder import RunLog, decide, read_summary, resumable, set_aside
from .runid import config_hash, register_resolver

register_configs()
register_resolver()     # ${run_id:} names sweep folders (conf/train.yaml); workers import this module too


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


def start_over(folder: Path, kind: str, why: str, own: set[str], chash: str) -> tuple:
    """Move an earlier attempt's files aside and say so. (checkpoint state, its metrics rows, where it
    resumed from) when that attempt can be resumed (runfolder.resumable), else (None, None, None)."""
    from . import checkpoint
    try:
        aside = set_aside(folder, kind, own)
    except OSError as err:
        fail(f"cannot move the old files of {folder} aside: {err}")
    if kind == "incomplete" and (aside / checkpoint.CHECKPOINT).exists():
        resume, carried, note = resumable(aside, chash)
        print(f"{folder}: {why}; its files moved to {aside}; {note}", file=sys.stderr)
        return resume, carried, {"epoch": resume["epoch"], "from": str(aside)} if resume else None
    print(f"{folder}: {why}; its files moved to {aside}; training again", file=sys.stderr)
    return None, None, None


class LogLines:
    """stderr when it is a log file or a pipe (nohup, Slurm, `| tee`): each state of the bar on a line of
    its own, where tqdm's carriage returns would join a whole run into one line no pager can read."""

    def __init__(self, f):
        self.f = f

    def write(self, s: str) -> None:
        line = s.replace("\r", "").rstrip()
        if line:                                    # tqdm's blanking writes and final newline: nothing
            self.f.write(line + "\n")

    def flush(self) -> None:
        self.f.flush()


def progress_bar(cfg: DictConfig, stream=None):
    from tqdm import tqdm
    stream = sys.stderr if stream is None else stream
    tty = stream.isatty()
    # No ETA: a run stops when its members have grokked, usually long before the budget, so time to the
    # budget would overstate it by hours. The bar shows epochs against the budget and the time so far.
    # Not a terminal: a line a minute (mininterval), not a redraw every 0.1 s, so a day's log stays short.
    return tqdm(total=cfg.max_epochs, desc=f"{cfg.task.name}/{cfg.optimizer.name}/{cfg.head.name}",
                disable=not cfg.progress, dynamic_ncols=tty, file=stream if tty else LogLines(stream),
                mininterval=0.1 if tty else 60, unit="epoch",
                bar_format="{desc}: {n_fmt}/{total_fmt} epochs (budget) |{bar}| {elapsed}, {rate_fmt}{postfix}")


def span(values) -> str:
    """The members' range for the progress bar: "0.787" for one member (or all alike), "0.712-0.787" for
    several, "-" when none was measured (the train split on an epoch eval_train=lazy skipped)."""
    seen = [f"{v:.3f}" for v in sorted(v for v in values if v == v)]
    return "-" if not seen else seen[0] if seen[0] == seen[-1] else f"{seen[0]}-{seen[-1]}"


def train_job(cfg: DictConfig) -> dict | None:
    """One Hydra job: an ensemble of cfg.seeds members, written to the job's output folder."""
    import torch

    from . import checkpoint, memory
    from .train import pick_device, train

    try:
        validate(cfg)
        memory.check_fits(cfg, pick_device(cfg.device))     # a GPU too small: one line, before anything is written
    except ConfigError as err:
        fail(str(err))
    folder = Path(HydraConfig.get().runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    chash = config_hash(resolved)
    # Hydra has just written .hydra/ and its job log here: they belong to this attempt, not an old one.
    own = {HydraConfig.get().output_subdir or ".hydra", f"{HydraConfig.get().job.name}.log"}
    action, kind, why = decide(folder, chash, own)
    if action == "skip":
        print(f"skip: {folder} already complete")
        return read_summary(folder)
    if action == "busy":
        print(f"skip: {folder} is being trained now ({why})", file=sys.stderr)
        return None
    resume, carried, resumed_from = start_over(folder, kind, why, own, chash) if action == "set_aside" \
        else (None, None, None)
    try:
        save_run_records(folder, cfg)       # Hydra's .hydra/, now that this attempt trains (records.py)
        log = RunLog(folder, resolved, str(pick_device(cfg.device)), carried, resumed_from)
    except OSError as err:
        fail(str(err))
    saver = checkpoint.Saver(folder, chash, cfg.checkpoint_every, cfg.keep_weights,
                             info={"task": resolved["task"], "members": members(resolved)},
                             minutes=cfg.checkpoint_minutes)
    stop, bar = StopFlag(), progress_bar(cfg)
    seen = {"results": None, "epoch": 0}     # what an aborted run can still write

    def on_epoch(epoch, numbers, results):
        seen["results"] = results
        log.log_epoch(epoch, numbers, results)
        seen["epoch"] = epoch
        grokked = sum(r.grokking_epoch is not None for r in results)
        bar.set_postfix_str(f"train {span(numbers['train_acc'])} val {span(numbers['val_acc'])} "
                            f"grokked {grokked}/{len(results)}", refresh=False)
        bar.update(1)           # draws the bar with its new postfix, at most once a mininterval

    start = time.time()
    try:
        try:
            results = train(cfg, on_epoch=on_epoch, should_stop=stop, saver=saver, resume=resume)
        finally:            # however training ended: the bar goes, and from now on a signal waits for the files
            stop.training = False
            bar.close()
        stopped = f"stopped by {signal.Signals(stop.signal).name}" if stop.signal else None
        summary = log.finish(results, reason=stopped if any(r.status == "interrupted" for r in results) else None)
        stop.written = True
    except OSError as err:      # the run folder cannot be written (disk full, quota, gone): stop now
        kept = f"metrics.csv keeps epochs 1-{seen['epoch']}" if seen["epoch"] else "no epoch was written"
        reason = f"cannot write the run folder {folder}: {err.strerror or err}"
        told = "summary.json says status failed" if log.abort(seen["results"], "failed", reason) else \
            "summary.json could not be updated either"
        fail(f"{reason}; training stopped after epoch {seen['epoch']}; {kept}; {told}", code=1)
    except KeyboardInterrupt:   # a second Ctrl-C: the epoch was not finished
        log.abort(seen["results"], "interrupted", "stopped at once by a second Ctrl-C")
        print(f"grokmuon: interrupted; {folder} keeps epochs 1-{seen['epoch']}", file=sys.stderr)
        sys.exit(130)
    except torch.cuda.OutOfMemoryError as err:     # memory.check_fits misjudged (another process took memory)
        log.abort(seen["results"], "failed", f"out of GPU memory: {str(err).splitlines()[0]}")
        fail(f"out of GPU memory after epoch {seen['epoch']} with {len(members(resolved))} members (the estimate said "
             f"they fit; another process may hold memory): give fewer seeds; {folder} says status failed", code=1)
    except Exception as err:    # a bug or a device error: say so in summary.json, then the traceback
        log.abort(seen["results"], "failed", f"{type(err).__name__}: {err}")
        raise
    print(f"run folder: {folder}  ({time.time() - start:.1f} s)")
    print_outcome(summary)
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


def print_outcome(summary: dict) -> None:
    print("\n".join(outcome_lines(summary)))


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


UNFINISHED = ("interrupted", "failed", "running")     # member statuses of a run that did not end on its own


def outcome_lines(summary: dict) -> list[str]:
    """Each member's outcome in plain words, the counts by status and, for a raced grid, what the race
    chose: e.g. "modadd muon softmax seed 0: grokked at epoch 13 (memorised at 12), final train ...". """
    grid = len({(m["lr"], m["weight_decay"]) for m in summary["members"]}) > 1
    lines = []
    for m in summary["members"]:
        memo = "never memorised" if m["memorisation_epoch"] is None else f"memorised at {m['memorisation_epoch']}"
        if m["status"] == "diverged":
            what = f"diverged: loss or weights became NaN/inf at epoch {m['diverged_epoch']}"
        elif m["grokking_epoch"]:
            what = f"grokked at epoch {m['grokking_epoch']}"
            if m["status"] in UNFINISHED:       # cut off in its patience: the count below says it apart
                what += f", then {m['status']} after {plural(m['epochs_run'], 'epoch')}"
        elif m["status"] == "raced_out":
            what = f"stopped by the race after {plural(m['epochs_run'], 'epoch')}"
        elif m["status"] in UNFINISHED:
            what = f"{m['status']} after {plural(m['epochs_run'], 'epoch')}, not grokked yet"
        else:
            what = f"did not grok in {plural(m['epochs_run'], 'epoch')}"
        setting = f" lr {m['lr']:g} wd {m['weight_decay']:g}" if grid else ""
        lines.append(f"  {m['task']} {m['optimizer']} {m['head']} seed {m['seed']}{setting}: {what} ({memo}), "
                     f"final train {_num(m.get('final_train_acc'))} val {_num(m.get('final_val_acc'))}")
    counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items())
    held = sum(1 for m in summary["members"] if m["status"] in UNFINISHED and m["grokking_epoch"])
    if held:            # a member cut off after it grokked counts as unfinished: say it had grokked
        counts += f" ({held} of the unfinished had grokked)"
    lines.append(f"  {plural(len(summary['members']), 'member')}: {counts}")
    if summary.get("race"):
        race = summary["race"]
        where = f"stopped at epoch {race['stopped_at']}" if race["stopped_at"] else "ran to the end"
        lines.append(f"  race: {where}; best lr {race['chosen']['lr']:g} weight_decay "
                     f"{race['chosen']['weight_decay']:g} (median {race['chosen_median']}); rule: {race['rule']}")
    return lines


def _num(x) -> str:
    return "nan" if x is None else f"{x:.3f}"


def main(overrides: list[str]) -> None:
    """Hand a checked command line to Hydra: one run, a sweep (-m), or what Hydra prints (--cfg, --help)."""
    sys.argv = ["grokmuon train", *overrides]
    hydra.main(version_base=None, config_path=str(CONF), config_name="train")(train_job)()

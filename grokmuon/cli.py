"""`grokmuon <command> ...`: every command's arguments, their one-line help, and dispatch (argparse
subcommands). train, collect, report and figures parse here and hand the work on (precheck.py and job.py;
results.py, report.py, figures.py); tune and bench parse their own (tune.py, bench.py)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .config import Parser, fail, unwritable

RESULTS = Path("results")       # where collect, report and figures put what they make, by default
# command -> (one line of help, module:function that runs it with the rest of the command line)
COMMANDS = {
    "train": ("train one ensemble (key=value overrides; -m sweeps)", "cli:train_cmd"),
    "tune": ("race each optimizer's (lr, weight decay) grid, confirm its best on fresh seeds", "tune:main"),
    "collect": ("gather run folders into results/<name>/runs.csv", "cli:collect_cmd"),
    "report": ("statistics of a runs.csv, as markdown", "cli:report_cmd"),
    "figures": ("the figures of a runs.csv", "cli:figures_cmd"),
    "bench": ("speed benchmark", "bench:main"),
}
EPILOG = """examples:
  grokmuon train optimizer=adamw task=gcd
  grokmuon train -m experiment=cpu
  grokmuon tune task=moddiv
  grokmuon <command> --help     the options of one command
read more: README.md (results), docs/protocol.md, docs/sweeps.md (sweeps, resume, collect), docs/robustness.md"""


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as v
    try:
        return v("grokmuon")
    except PackageNotFoundError:
        return "unknown"


def train_cmd(overrides: list[str]) -> None:
    """`grokmuon train <overrides>`: check the command line (precheck.py), then hand it to Hydra (job.py)."""
    from . import threads
    threads.apply()         # one intra-op thread per process unless OMP_NUM_THREADS is set (threads.py)
    modes = [o for o in overrides if o in ("-m", "--multirun") or o.split("=")[0] in ("--cfg", "-c", "--info", "-i")]
    if len(modes) > 1:      # Hydra would raise a ValueError with a traceback
        fail(f"use one of {', '.join(modes)}: Hydra runs, sweeps or prints the config, one at a time")
    if any(o in ("--help", "-h") for o in overrides):      # ours: the keys and -m (Hydra's: --hydra-help)
        from .usage import train_help
        print(train_help())
        return
    if not any(o in ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help") or o.startswith("--cfg") for o in overrides):
        from .precheck import check_output_dir, output_dir, precheck, resume_override
        precheck(overrides)
        folder = output_dir(overrides)
        if folder is not None:
            check_output_dir(folder)
        resume = resume_override(overrides)     # a single run continues the run it interrupted
        overrides = [*overrides, resume] if resume else overrides
    from .job import main as hydra_job
    hydra_job(overrides)


def no_table() -> None:
    """report/figures without --runs: name the tables there are rather than guess one."""
    here = sorted(str(p) for p in RESULTS.glob("*/runs.csv"))
    fail("which table? give --runs PATH (a runs.csv from `grokmuon collect`)"
         + (f"; here: {', '.join(here[:6])}{' ...' if len(here) > 6 else ''}" if here else ""))


# report and figures: a scanned setting as part of the arm, so each value is an arm of its own
ARM_BY = ("also tell arms apart by a setting they are tuned at (lr, weight_decay, adamw_lr, adamw_weight_decay; "
          "repeatable), each value an arm of its own: --arm-by adamw_lr makes 'muon adamw_lr=0.003'; name "
          "the reference the same way")


def from_table(runs: Path | None, use):
    """(the table's path, use(path, name)); no table given or a bad one is one line."""
    from .results import TableError
    if runs is None:
        no_table()
    print(f"reading {runs}")
    try:
        return runs, use(runs, str(runs))
    except TableError as err:
        fail(str(err))


def record(folder: Path, command: str, args: list[str]) -> None:
    """Append the command to <folder>/commands.txt (once): a results folder says what made it."""
    line = f"grokmuon {command} {shlex.join(args)}".strip() + "\n"
    path = folder / "commands.txt"
    if line not in (path.read_text().splitlines(keepends=True) if path.exists() else []):
        with path.open("a") as f:
            f.write(line)


def check_out(path: Path, folder: bool = False) -> None:
    """Fail now, in one line, if the file (or folder) an --out names cannot be written: before the work,
    not with a traceback after it. Creates nothing: it tries a temp file in the nearest existing folder."""
    if not folder and path.is_dir():
        fail(f"cannot write {path}: it is a folder; give a file path (e.g. one inside it)")
    why = unwritable(path if folder else path.parent)
    if why:
        fail(f"cannot write {path}: {why}")


def written(path: Path, write) -> None:
    """write(), with the folder made first; a failure (disk full, a folder gone) is one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write()
    except OSError as err:
        fail(f"cannot write {path}: {err.strerror or err}")


def collect_cmd(args: list[str]) -> None:
    from .results import DEFAULT_DIRS, collect
    ap = Parser(prog="grokmuon collect", description="Gather run folders into "
                                 "results/<name>/runs.csv: a row per member (see docs/sweeps.md).")
    ap.add_argument("dirs", nargs="*", help="folders searched for run folders, e.g. multirun/cpu or outputs")
    ap.add_argument("--experiment", help="keep only the runs of this experiment (e.g. paper)")
    ap.add_argument("--name", help="results/<name>/ (default: the experiment's name if there is one, else 'all')")
    ap.add_argument("--out", type=Path, help="the table's path (default: results/<name>/runs.csv)")
    a = ap.parse_args(args)
    if not a.dirs:          # never pool committed sweeps with the user's own runs by default
        fail("which runs? name the folders to collect, e.g. `grokmuon collect multirun/cpu` or "
             f"`grokmuon collect {' '.join(DEFAULT_DIRS)}`")
    missing = [d for d in a.dirs if not Path(d).is_dir()]
    if len(missing) == len(a.dirs):
        fail(f"no such folder: {', '.join(missing)}")
    table = collect(a.dirs)
    if a.experiment:
        table = table[table["experiment"] == a.experiment]
    if table.empty:
        fail(f"no readable runs{' of experiment ' + a.experiment if a.experiment else ''} in {', '.join(a.dirs)}")
    exps = sorted(table["experiment"].dropna().unique())
    out = a.out or RESULTS / (a.name or (exps[0] if len(exps) == 1 else "all")) / "runs.csv"
    check_out(out)
    written(out, lambda: (table.to_csv(out, index=False), record(out.parent, "collect", args)))
    done = int((table["run_status"] == "complete").sum())
    print(f"{out}: {len(table)} members ({done} of complete runs) from {table['run_dir'].nunique()} "
          f"run folders; experiments: {', '.join(exps)}")


def report_cmd(args: list[str]) -> None:
    from .report import report
    from .results import load
    ap = Parser(prog="grokmuon report", description="Statistics of a results table, "
                                 "printed and written as markdown.")
    ap.add_argument("--runs", type=Path, help="a runs.csv from collect (required)")
    ap.add_argument("--out", type=Path, help="the markdown file (default: report.md beside runs.csv)")
    # An arm: an optimizer and its keys that differ from its defaults, as runs.csv's arm column names it.
    ap.add_argument("--reference", metavar="ARM", help="the arm every other arm is set against "
                    "(default: adamw), as runs.csv's arm column names it, e.g. muon or 'muon momentum=0'")
    ap.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"),
                    help="also set arm B against arm A (repeatable), e.g. --pair muon normuon")
    ap.add_argument("--arm-by", action="append", metavar="KEY", help=ARM_BY)
    a = ap.parse_args(args)
    if a.arm_by and a.reference is None:     # else the first split arm, alphabetically, would be the reference
        fail("--arm-by splits the arms: name the one to set the others against with --reference, e.g. "
             "--reference 'muon adamw_lr=0.001'")
    if a.runs is not None:
        check_out(a.out or a.runs.parent / "report.md")
    runs, text = from_table(a.runs, lambda table, name: report(load(table), name, a.reference,
                                                               [tuple(p) for p in a.pair], a.arm_by or ()))
    out = a.out or runs.parent / "report.md"
    # the command is recorded beside what it wrote: a report sent elsewhere leaves no trace here
    written(out, lambda: (out.write_text(text), record(out.parent, "report", args)))
    print(text)
    print(f"written: {out}")


def figures_cmd(args: list[str]) -> None:
    from .figures import FIGURES
    from .figures_curves import has_probes
    from .figures_phases import fig7_phases, has_fourier
    FIGURES = {**FIGURES, "phases": fig7_phases}   # made by default only when its runs have the Fourier probes
    from .results import TableError, by_arm, condition_axes, finished, judged, load, scanned_axes, split_arms
    ap = Parser(prog="grokmuon figures", description="The figures of a results table, "
                                 "as PNG and PDF.")
    ap.add_argument("--runs", type=Path, help="a runs.csv from collect (required)")
    ap.add_argument("--out", type=Path, help="folder for the files (default: figures/ beside runs.csv)")
    ap.add_argument("--only", nargs="+", choices=list(FIGURES), help="make only these figures")
    ap.add_argument("--arm-by", action="append", metavar="KEY", help=ARM_BY)
    a = ap.parse_args(args)
    if a.runs is not None:
        check_out(a.out or a.runs.parent / "figures", folder=True)
    runs, done = from_table(a.runs, lambda table, name: judged(finished(by_arm(split_arms(load(table), a.arm_by)),
                                                                        name)))
    out, failed = a.out or runs.parent / "figures", []
    # The scan figure draws one scanned column (or a condition) along x: not made by default for a table of
    # tuning races alone, whose grids vary lr and weight decay together (asked for, it says so).
    scan = lambda cols: len(cols) == 1 or (not cols and bool(condition_axes(done)))
    optional = {"scan": lambda: scan(scanned_axes(done)),
                "probes": lambda: has_probes(done),
                "phases": lambda: has_fourier(done)}
    names = a.only or [n for n in FIGURES if n not in optional or optional[n]()]
    for name in names:
        try:
            for path in FIGURES[name](done, out):
                print(path)
        except TableError as err:
            failed.append(f"figure {name}: {err}")
        except OSError as err:          # the folder went or filled up since check_out
            fail(f"cannot write the figures to {out}: {err.strerror or err}")
    # even when every figure failed: the record goes here
    where = runs.parent if a.out is None else out
    written(where / "commands.txt", lambda: record(where, "figures", args))
    if failed:
        fail("; ".join(failed))


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="grokmuon", description="Train, tune, sweep and report grokking runs: Muon vs AdamW.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"grokmuon {version()}")
    sub = ap.add_subparsers(dest="command", metavar="command", parser_class=argparse.ArgumentParser)
    for name, (text, _) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)   # its own --help: the command's parser
    return ap


def main(argv: list[str] | None = None) -> None:
    """`grokmuon <argv>` (tests call it in-process)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    if not argv:
        ap.print_help(sys.stderr)
        sys.exit(2)
    ns, rest = ap.parse_known_args(argv[:1])
    if ns.command is None:
        ap.error(f"unknown option {argv[0]!r}")
    module, func = COMMANDS[ns.command][1].split(":")
    from importlib import import_module
    getattr(import_module(f"grokmuon.{module}"), func)(argv[1:])


if __name__ == "__main__":
    main()

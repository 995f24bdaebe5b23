"""`grokmuon <command> ...`: the commands, their one-line help, and dispatch (argparse subcommands).
Each command parses its own arguments (train and tune take Hydra overrides); the work lives elsewhere."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The Hydra configs ship inside the package (package data), so a wheel or a plain `pip install .` works.
CONF = Path(__file__).resolve().parent / "conf"
# command -> (one line of help, module:function that runs it with the rest of the command line)
COMMANDS = {
    "train": ("train one ensemble (key=value overrides; -m sweeps)", "app:run_train"),
    "tune": ("race each optimizer's (lr, weight decay) grid, confirm its best on fresh seeds", "tune:main"),
    "collect": ("gather run folders into results/<name>/runs.csv", "reporting:collect_cmd"),
    "report": ("statistics of a runs.csv, as markdown", "reporting:report_cmd"),
    "figures": ("the figures of a runs.csv", "reporting:figures_cmd"),
    "bench": ("speed benchmark", "bench:main"),
}
EPILOG = """examples:
  grokmuon train optimizer=adamw task=gcd
  grokmuon train -m experiment=cpu
  grokmuon tune task=moddiv
  grokmuon <command> --help     the options of one command
read more: README.md (protocol, results), docs/sweeps.md (sweeps, resume, collect), docs/robustness.md"""


def fail(message: str, code: int = 2) -> None:
    """A user mistake: one line on stderr, no traceback, non-zero exit."""
    print(f"grokmuon: error: {message}", file=sys.stderr)
    sys.exit(code)


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as v
    try:
        return v("grokmuon")
    except PackageNotFoundError:
        return "unknown"


class Parser(argparse.ArgumentParser):
    """argparse, with its usage-and-message error turned into our one line (exit 2)."""

    def error(self, message: str) -> None:
        fail(f"{message.replace('argument command: ', '')}; see `{self.prog} --help`")


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="grokmuon", description="Train, tune, sweep and report grokking runs: Muon vs AdamW.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"grokmuon {version()}")
    sub = ap.add_subparsers(dest="command", metavar="command", parser_class=argparse.ArgumentParser)
    for name, (text, _) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)   # its own --help: the command's parser
    return ap


def main(argv: list[str] | None = None) -> None:
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

"""`grokmuon <command> [overrides]`: parse, check, dispatch. The work lives in the other modules.

  grokmuon train [key=value ...] [-m]   train (Hydra overrides; -m sweeps)
  grokmuon tune [key=value ...]          race an (lr, wd) grid per optimizer, confirm on fresh seeds
  grokmuon collect | report | figures   results table, statistics, figures (see --help of each)
  grokmuon bench                         speed benchmark
"""
from __future__ import annotations

import sys
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "conf"
COMMANDS = ("train", "tune", "collect", "report", "figures", "bench")


def fail(message: str, code: int = 2) -> None:
    """A user mistake: one line on stderr, no traceback, non-zero exit."""
    print(f"grokmuon: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
    if command == "train":
        from .app import run_train
        run_train(rest)
    elif command == "tune":
        from .tune import main as tune_main
        tune_main(rest)
    elif command == "bench":
        from .bench import main as bench_main
        bench_main(rest)
    else:
        from . import reporting
        reporting.main(command, rest)


if __name__ == "__main__":
    main()

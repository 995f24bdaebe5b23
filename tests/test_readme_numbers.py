"""Every number a results/*/README.md quotes is found in that folder's report.md or in a file the README
names: the text says only what its tables say.

What counts as a quoted number: a decimal (5.4, 0.0079, −22.0), a number in scientific notation (5e-05)
and a signed number (z = −3.32, +6.98), in the prose and tables of the README. Not checked: plain
unsigned integers (counts, epochs, seeds, "5/5": too many are design constants to tell apart), anything
inside code (fenced blocks and `inline code`: commands, paths, config overrides), dates, versions
(2.13.0), bounds after <, >, ≤, ≥ ("p < 1e-4", "> 300") and approximations after ~ or ≈.

Counts written as a fraction (“5/5”, “2/5 grokked”, “10/15”) are checked too, as written: the same
fraction must appear in a source. That is a weak check for small cells: a report with 5 members a cell
holds most of 0/5 to 5/5 somewhere, so a wrong “3/5” can pass; it catches a count the sources have
nowhere (a mis-summed “11/15”, a count from another table). Counts in words (“5 of 7 tasks”) are not
checked: they are mostly counted from a table's rows, not written in it.

Where it may come from: the folder's report.md; any file the README names by path (relative to the
repository or to the folder; a glob counts as every file it matches), code spans and fences included;
for a named results folder (results/tune) or a named README.md, that folder's report.md. Not a CSV:
runs.csv and metrics.csv hold thousands of accuracies and losses, among which nearly any two-digit
fraction would find a match, and the check would say nothing. A README's
number matches a source's number of the same sign when they are equal (0.10 and 0.1) or when the
source is at least as precise and rounds to it, its own rounding allowed for (0.0079 matches 0.00794,
−3.32 matches -3.321; 0.94 does not match a source's 0.9).
"""
from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

from conftest import REPO

RESULTS = REPO / "results"
READMES = sorted(RESULTS.glob("*/README.md"))

FENCE = re.compile(r"```.*?```", re.S)
CODE = re.compile(r"`[^`\n]*`")
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:/\d{2})?\b")
VERSION = re.compile(r"\b\d+\.\d+\.\d+\S*")
SHA = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b")
# A number: an optional sign (only where it cannot be a range's dash: not right after a digit or a
# letter), digits, an optional fraction, an optional exponent.
NUMBER = re.compile(r"(?<![\w.])([+\-−]?)(\d+(?:\.\d+)?(?:[eE][+\-−]?\d+)?)(?![\w.]*\d)")
PATHS = re.compile(r"(?<![\w/.-])((?:[\w.*-]+/)*[\w.*-]+\.(?:md|csv|json|txt|yaml))\b|(?<![\w/])(results/\w+)")


def prose(text: str) -> str:
    """The README without what is not checked: code, dates, versions, commit SHAs."""
    for pattern in (FENCE, CODE, DATE, VERSION, SHA):
        text = pattern.sub(" ", text)
    return text


def numbers(text: str, quoted: bool = False) -> list[tuple[str, float, int]]:
    """(as written, value, decimals) of each number in text; quoted: only the kinds a README is held to."""
    out = []
    for m in NUMBER.finditer(text):
        sign, body = m.group(1), m.group(2)
        before = text[max(0, m.start() - 2):m.start()].strip()
        if quoted:
            if before[-1:] in ("<", ">", "≤", "≥", "~", "≈"):
                continue
            if not sign and "." not in body and "e" not in body.lower():
                continue                              # a plain unsigned integer
        if sign and m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] in "–-"):
            sign = ""
        value = float(body.replace("−", "-")) * (-1 if sign in ("-", "−") else 1)
        mantissa = body.lower().split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        exponent = int(body.lower().split("e")[1].replace("−", "-")) if "e" in body.lower() else 0
        out.append((sign + body, value, min(max(decimals - exponent, -12), 12)))
    return out


# A count as a fraction, N/M: not part of a path, a date or a longer fraction (1/2/3).
COUNT = re.compile(r"(?<![\w./])(\d+)/(\d+)(?![\w/]|\.\d)")


def counts(text: str) -> list[str]:
    """Every N/M count in text, as written."""
    return [f"{a}/{b}" for a, b in COUNT.findall(text)]


def sources(readme: Path) -> list[Path]:
    """report.md of the README's folder and every file (or results folder) the README names."""
    folder, text = readme.parent, readme.read_text()
    found = [folder / "report.md"]
    for file, results in PATHS.findall(text):
        if results:
            found.append(REPO / results / "report.md")
            continue
        for base in (REPO, folder):
            for hit in glob.glob(str(base / file)):
                path = Path(hit)
                found.append(path.parent / "report.md" if path.name == "README.md" else path)
    return [p for p in dict.fromkeys(found) if p.is_file() and p != readme and p.suffix != ".csv"]


def matches(value: float, decimals: int, pool: list[tuple[str, float, int]]) -> bool:
    """Whether a source number rounds to the README's: within half a unit of the README's last digit,
    plus half a unit of the source's own (it was rounded once already)."""
    for _, v, d in pool:
        if (v < 0) != (value < 0) and value != 0:
            continue
        if abs(v - value) <= 1e-12 * max(1.0, abs(v)):
            return True                               # the same number (0.1 and 0.10)
        if d >= decimals and abs(v - value) <= 0.5 * 10.0 ** -decimals + 0.5 * 10.0 ** -d + 1e-12:
            return True                               # a source at least as precise, rounded
    return False


def unmatched(readme: Path) -> list[str]:
    pool = [n for src in sources(readme) for n in numbers(src.read_text(errors="replace"))]
    return [text for text, value, decimals in numbers(prose(readme.read_text()), quoted=True)
            if not matches(value, decimals, pool)]


def test_the_number_finder_on_hand_made_text():
    text = prose("z = −3.32 (p 0.0012), range 0.61–0.93, `lr=0.003`, 2026-11-26, torch 2.13.0+cpu, "
                 "p < 1e-4, ~0.15 s, 5/5 grokked, +6.98, 5e-05, code at cb43bfa")
    assert [t for t, _, _ in numbers(text, quoted=True)] == ["−3.32", "0.0012", "0.61", "0.93", "+6.98", "5e-05"]
    pool = numbers("-3.321 | 0.00119 | 0.606 | 0.93 | 6.977 | 5e-05")
    assert all(matches(v, d, pool) for _, v, d in numbers(text, quoted=True))
    assert not matches(3.32, 2, pool)                  # the sign counts
    assert not matches(0.0013, 4, pool)                # 0.00119 is not 0.0013
    assert not matches(0.62, 2, pool)                  # 0.606 is not 0.62
    assert not matches(0.94, 2, numbers("0.9"))        # a coarser source cannot vouch for a finer number
    assert matches(0.9, 1, numbers("0.93"))


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_every_number_a_results_readme_quotes_is_in_its_report_or_a_file_it_names(readme):
    missing = unmatched(readme)
    assert not missing, (f"{readme.relative_to(REPO)} quotes numbers found in none of "
                         f"{[str(p.relative_to(REPO)) for p in sources(readme)]}: {missing}")


def test_the_count_finder_on_hand_made_text():
    text = prose("5/5 grokked, 2/5 (1 plateau), 10/15 members, 2026-11-25/26, multirun/tune/x, 1/2/3, 0.5/1")
    assert counts(text) == ["5/5", "2/5", "10/15"]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_every_count_a_results_readme_quotes_as_a_fraction_is_in_its_report_or_a_file_it_names(readme):
    pool = {c for src in sources(readme) for c in counts(src.read_text(errors="replace"))}
    missing = [c for c in counts(prose(readme.read_text())) if c not in pool]
    assert not missing, (f"{readme.relative_to(REPO)} quotes counts found in none of "
                         f"{[str(p.relative_to(REPO)) for p in sources(readme)]}: {missing}")

"""The optimizers, one module each, found by name: `optimizer=NAME` trains with grokmuon/optimizers/NAME.py.

A module here is an optimizer when its name does not start with "_" (those hold shared helpers). It
defines `build(model, cfg, lr, weight_decay, horizon) -> list[torch.optim.Optimizer]`: which weights it
trains and with what, every weight of the model trained by exactly one of the optimizers it returns.
Its update math lives in small functions over member-stacked [E, ...] tensors, tested slice by slice
against a plain reference (tests/test_optim.py). docs/optimizers.md shows how to add one.

A module also says whether it orthogonalises its matrices with Newton-Schulz, in a module-level literal
`ORTHOGONALISES = True` (absent: False); cost.py counts those FLOPs where it is true.

Listing the names and reading ORTHOGONALISES import nothing (no torch), so config validation and
`grokmuon collect` can take them from here.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType


def names() -> list[str]:
    """Every optimizer's name, sorted: the modules of this package not starting with "_"."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> ModuleType:
    """The optimizer module called `name` (ValueError for an unknown name, listing the known ones)."""
    if name not in names():
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}")


def orthogonalises(name: str) -> bool:
    """Whether optimizer `name` runs Newton-Schulz on its matrices: its module's ORTHOGONALISES literal,
    read from the source without importing the module (False for an unknown name or none given)."""
    if name not in names():
        return False
    tree = ast.parse((Path(__path__[0]) / f"{name}.py").read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "ORTHOGONALISES" for t in targets):
            return bool(ast.literal_eval(node.value))
    return False

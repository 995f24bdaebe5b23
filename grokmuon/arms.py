"""What an arm is: the optimizer a run trained with, plus each of its keys that differs from that
optimizer's defaults, plus a gradient filter where one is on. Two runs of one arm differ only in the
settings an arm is tuned at (lr, weight decay) and in what the study's cells already say (task, head,
model, seeds); the report and the figures compare arms, each against a reference arm.

label(cfg) names an arm from a run's config.json: "adamw", "muon", "muon momentum=0", "muon split=all",
"normuon", "adamw orthogonal_grad=true", "adamw grokfast=ema". Short (only what differs), stable (keys
in the schema's order, values as Hydra overrides write them) and sortable (an optimizer's variants
sort right after it: "adamw" < "adamw orthogonal_grad=true" < "muon"). No torch here: `grokmuon collect`
labels every row.
"""
from __future__ import annotations

import json
from functools import lru_cache

# Optimizer keys that are no part of an arm:
#   lr, weight_decay              the settings an arm is tuned at (`grokmuon tune` races them per arm)
#   adamw_lr, adamw_weight_decay  the same two for the AdamW half of Muon-like optimizers (the AdamW
#                                 run's values by default; a change of them is a setting, not another method)
#   ns_dtype                      the precision Newton-Schulz runs in (auto: bf16 on a GPU, fp32 on a CPU),
#                                 where a run ran, like the top-level `precision`, not what it computes
#   name                          the arm's first word
# Every other optimizer key is part of the arm where it differs from the optimizer's default (a key
# added to the schema later is, too, until it is listed here with its reason).
NOT_ARM = ("name", "lr", "weight_decay", "adamw_lr", "adamw_weight_decay", "ns_dtype")
# Gradient filters: a top-level config node with a `name`, "none" when off, usable with any optimizer.
FILTERS = ("grokfast",)
# How the report and the figures spell an optimizer's name (others: as the name is).
TITLES = {"adamw": "AdamW", "muon": "Muon", "normuon": "NorMuon"}


@lru_cache(maxsize=None)
def optimizer_defaults(name: str) -> dict:
    """The optimizer's defaults: the schema's (config.OptimizerConfig) with its conf/optimizer/<name>.yaml
    on top, as Hydra composes `optimizer=<name>` (an unknown name: the schema's alone)."""
    from omegaconf import OmegaConf

    from .config import CONF
    from .runid import schema_defaults
    out = dict(schema_defaults()["optimizer"])
    path = CONF / "optimizer" / f"{name}.yaml"
    if path.is_file():
        out.update(OmegaConf.to_container(OmegaConf.load(path), resolve=True) or {})
    return out


def _plain(v):
    """A numpy scalar (a pandas cell) as the Python value it holds."""
    return v.item() if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str)) else v


def value_text(v) -> str:
    """A value as a Hydra override writes it: 0, 0.9, true, all, [0.9,0.99]."""
    v = _plain(v)
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return format(v, "g")
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(value_text(x) for x in v) + "]"
    return str(v)


def _differs(a, b) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) != float(b)         # 0 and 0.0 are one value (a config.json may hold either)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b))
    return json.dumps(a, default=str) != json.dumps(b, default=str)


def _filter_part(cfg: dict, node: str) -> list[str]:
    """`grokfast=ema` and the filter's keys that differ from the schema's defaults (none if it is off
    or the config has no such node)."""
    f = cfg.get(node)
    if not isinstance(f, dict) or f.get("name", "none") in ("none", None):
        return []
    from .runid import schema_defaults
    defaults = schema_defaults().get(node) or {}
    return [f"{node}={f['name']}"] + [f"{node}.{k}={value_text(v)}" for k, v in f.items()
                                      if k != "name" and k in defaults and _differs(v, defaults[k])]


def label(cfg: dict) -> str:
    """The arm of a run's config (a config.json dict, or a runs.csv row's config axes nested back as
    {"optimizer": {...}}): the optimizer's name, each key not in NOT_ARM that differs from that
    optimizer's defaults as key=value (in the schema's order), then any gradient filter that is on.
    A key the config lacks (written before it existed) is at its default."""
    opt = cfg.get("optimizer") or {}
    name = opt.get("name")
    defaults = optimizer_defaults(name)
    parts = [str(name)] + [f"{k}={value_text(opt[k])}" for k in defaults
                           if k not in NOT_ARM and k in opt and _differs(opt[k], defaults[k])]
    for node in FILTERS:
        parts += _filter_part(cfg, node)
    return " ".join(parts)


def title(arm: str) -> str:
    """An arm as the report's text and the figures' legends write it: "Muon", "Muon momentum=0"."""
    name, _, rest = arm.partition(" ")
    return TITLES.get(name, name) + (f" {rest}" if rest else "")


def order(arms) -> list[str]:
    """Arms in a stable order: the paper's two first (AdamW, then Muon, as its figures), then every other
    sorted."""
    arms = set(arms)
    first = [a for a in PAPER if a in arms]
    return first + sorted(arms - set(first))


PAPER = ("adamw", "muon")           # the paper's two arms, in its order

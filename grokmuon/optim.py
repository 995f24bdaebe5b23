"""Build a run's optimizers: `optimizer.name` picks a module of grokmuon/optimizers (the registry), which
says which weight goes to which update. The update math lives there, one module per optimizer; the names
below stay importable from here.
"""
from __future__ import annotations

from torch.optim import Optimizer

from . import optimizers
from .optimizers._common import at_step, bias_tables, closure_loss, per_member, scheduled  # noqa: F401
from .optimizers.adamw import BatchedAdamW  # noqa: F401
from .optimizers.muon import NS_COEFFICIENTS, BatchedMuon, lr_scale, newton_schulz, ns_dtype  # noqa: F401


def build_optimizers(model, cfg, lr=None, weight_decay=None, horizon: int = 0) -> list[Optimizer]:
    """The optimizers of `optimizer=cfg.name` for model, every weight trained by exactly one of them.

    lr, weight_decay: per-member [E] tensors (a grid on the member axis) for the optimizer the run is
    named after (AdamW: every weight; Muon: its matrices); default cfg.lr / cfg.weight_decay. Muon's AdamW
    part always takes cfg.adamw_lr / cfg.adamw_weight_decay. horizon: AdamW's step count on the device,
    for that many steps (BatchedAdamW).
    """
    lr = cfg.lr if lr is None else lr
    weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
    return optimizers.get(cfg.name).build(model, cfg, lr, weight_decay, horizon)

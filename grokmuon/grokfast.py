"""Grokfast-EMA (Lee et al. 2024, arXiv 2405.20233): a low-pass filter on the gradients, usable with any
optimizer (`grokfast=ema`).

After the backward pass and before the optimizer's step, every weight's gradient g is amplified by an
exponential moving average of its past gradients (its slow component):
    ema <- alpha * ema + (1 - alpha) * g         (the first step starts from ema = g)
    g   <- g + lamb * ema
exactly as the authors' `gradfilter_ema` (ironjr/grokfast, grokfast.py) writes it, in its order of
operations; their paper's defaults are alpha 0.98 and lamb 2.0. The filter is elementwise, so on
member-stacked weights [E, ...] member e's slice of the EMA sees only member e's gradients: every member
has its own filter, as a solo run would (tested against the authors' per-parameter dict loop). The EMA is
part of the training state: checkpoints save it and a resumed run equals an uninterrupted one (tested).
"""
from __future__ import annotations

import torch

NAMES = ("none", "ema")


def ema_update(ema: torch.Tensor, grad: torch.Tensor, alpha: float) -> torch.Tensor:
    """The new EMA of the gradients: ema * alpha + grad * (1 - alpha) (the authors' expression)."""
    return ema * alpha + grad * (1 - alpha)


def amplified(grad: torch.Tensor, ema: torch.Tensor, lamb: float) -> torch.Tensor:
    """The gradient the optimizer gets: grad + ema * lamb (the authors' expression)."""
    return grad + ema * lamb


class GradFilterEMA:
    """The EMA of each weight's gradient (by its name in the model), updated in place each step.

    apply() runs after the backward pass and before the optimizer's step. It changes every tensor in
    place (the EMA and the gradient), so a compiled or captured step (grokmuon/step.py) sees fixed
    addresses; the first call creates the EMA from that step's gradients, as the authors' first call
    does (the train step's first call is eager).
    """

    def __init__(self, model: torch.nn.Module, alpha: float = 0.98, lamb: float = 2.0):
        self.alpha, self.lamb = float(alpha), float(lamb)
        self.params = dict(model.named_parameters())
        self.ema: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def apply(self) -> None:
        for name, p in self.params.items():
            if not p.requires_grad or p.grad is None:
                continue
            if name not in self.ema:
                self.ema[name] = p.grad.detach().clone()
            ema = self.ema[name]
            ema.copy_(ema_update(ema, p.grad, self.alpha))
            p.grad.copy_(amplified(p.grad, ema, self.lamb))

    def tensors(self) -> list[torch.Tensor]:
        """The state a CUDA graph must find at fixed addresses."""
        return list(self.ema.values())

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "lamb": self.lamb, "ema": {k: v.detach().cpu() for k, v in self.ema.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.ema = {k: v.to(self.params[k].device) for k, v in state["ema"].items()}


def build(model: torch.nn.Module, cfg) -> GradFilterEMA | None:
    """The run's gradient filter from its `grokfast` config node (None: none, or a config without it)."""
    if cfg is None or cfg.get("name", "none") == "none":
        return None
    if cfg.name == "ema":
        return GradFilterEMA(model, cfg.alpha, cfg.lamb)
    raise ValueError(f"unknown grokfast filter {cfg.name!r}; allowed: {', '.join(NAMES)}")

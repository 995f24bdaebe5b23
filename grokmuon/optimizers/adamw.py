"""AdamW over member-stacked weights [E, ...], with a per-member lr and weight decay.

AdamW is elementwise, so the member axis needs nothing but a per-member factor on the decay and the
step; the rest is torch.optim.AdamW's update in its order (decay, moments, bias corrections), tested
slice by slice against torch.optim.AdamW. `optimizer=adamw` trains every weight with it.

`optimizer.orthogonal_grad=true` is the stablemax paper's ⊥Grad (Prieto et al. 2025, arXiv 2501.04697):
before the update, each member's gradient of each weight loses its component along that weight,
g - (<g, w> / <w, w>) w, and is rescaled to g's norm, as the authors' orthograd.py does
(LucasPrietoAl/grokking-at-the-edge-of-numerical-stability; the paper writes the projection, the code
also keeps the gradient's norm). Tested against a plain per-member reference (tests/test_orthogonal_grad.py).
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from ._common import at_step, bias_tables, closure_loss, decay, per_member, scheduled

ORTHOGONALISES = False   # no Newton-Schulz (grokmuon/cost.py counts none)


def orthogonal_grad(w: torch.Tensor, g: torch.Tensor, eps: float = 1e-30) -> torch.Tensor:
    """⊥Grad of g [E, ...] at weights w [E, ...]: per member, g without its component along w, rescaled
    to g's norm (eps: the authors' guard against a zero weight or a gradient along the weight)."""
    wf, gf = w.flatten(1), g.flatten(1)
    along = (wf * gf).sum(1, keepdim=True) / ((wf * wf).sum(1, keepdim=True) + eps)
    perp = gf - along * wf
    return (perp * (gf.norm(dim=1, keepdim=True) / (perp.norm(dim=1, keepdim=True) + eps))).view_as(g)


def adamw_update(p, grad, exp_avg, exp_avg_sq, lr, weight_decay, beta1, beta2, eps, bias1, root2) -> None:
    """One AdamW step of p [E, ...] in place, as torch.optim.AdamW orders it. bias1 = 1 - beta1^t and
    root2 = sqrt(1 - beta2^t) for this step t; lr and weight_decay: floats, 0-dim or [E] tensors."""
    decay(p, lr, weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq.sqrt() / root2).add_(eps)
    p.sub_(exp_avg / denom * per_member(lr / bias1, p))


class BatchedAdamW(Optimizer):
    """AdamW over parameters [E, ...] with a per-member lr and weight decay (floats or [E] tensors)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, horizon: int = 0,
                 orthogonal_grad: bool = False):
        """horizon > 0: the step count is a device tensor (state["step"]) and the bias corrections come from
        tables for that many steps (bias_tables), so the update has no Python number that changes.
        orthogonal_grad: ⊥Grad on every gradient first (an attribute, not a group key, so checkpoints
        written before it load unchanged)."""
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.orthogonal_grad = orthogonal_grad
        self.lr_factor: torch.Tensor | None = None      # [1]: the warm-up factor, set by the train step (scheduled)
        self.horizon = horizon
        self.tables = [bias_tables(g["betas"], horizon, g["params"][0].device) if horizon else None
                       for g in self.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure_loss(closure)
        for group, tables in zip(self.param_groups, self.tables):
            lr, wd, (beta1, beta2), eps = (scheduled(group["lr"], self.lr_factor), group["weight_decay"],
                                           group["betas"], group["eps"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=torch.zeros((), dtype=torch.int64, device=p.device) if tables else 0,
                                 exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                if tables:
                    state["step"].add_(1)
                    bias1, root2 = (at_step(table, state["step"]) for table in tables)
                else:
                    state["step"] += 1
                    bias1, root2 = 1 - beta1 ** state["step"], math.sqrt(1 - beta2 ** state["step"])
                grad = orthogonal_grad(p, p.grad) if self.orthogonal_grad else p.grad
                adamw_update(p, grad, state["exp_avg"], state["exp_avg_sq"], lr, wd, beta1, beta2, eps,
                             bias1, root2)
        return loss

    def load_state_dict(self, state_dict) -> None:
        """A saved count comes back as this optimizer counts: a device tensor with a horizon, else an int
        (a checkpoint written before the count moved to the device holds an int)."""
        super().load_state_dict(state_dict)
        for p, state in self.state.items():
            if "step" in state:
                n = int(state["step"])
                state["step"] = torch.tensor(n, dtype=torch.int64, device=p.device) if self.horizon else n


def adamw(params, cfg, lr, weight_decay, horizon: int = 0, orthogonal: bool = False) -> BatchedAdamW:
    """BatchedAdamW on params with the config's betas and eps (also Muon's optimizer for the rest)."""
    return BatchedAdamW(params, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=weight_decay,
                        horizon=horizon, orthogonal_grad=orthogonal)


def build(model, cfg, lr, weight_decay, horizon: int = 0) -> list[Optimizer]:
    """AdamW on every weight, with the run's lr and weight decay (floats or [E] tensors); ⊥Grad first
    with optimizer.orthogonal_grad."""
    return [adamw(list(model.parameters()), cfg, lr, weight_decay, horizon,
                  bool(getattr(cfg, "orthogonal_grad", False)))]

"""What every optimizer here shares: per-member hyperparameters and the device-side schedule.

Optimizers take lr and weight decay as a float or as an [E] tensor, one value per member: a grid of
(lr, weight_decay) trains as one ensemble, and member e's slice gets exactly the update a solo run with
its own values would get.

What changes every step lives on the device, so a compiled or captured step (grokmuon/step.py) has no
Python number to bake in: the lr's warm-up factor is a device tensor the step sets in place
(`lr_factor`), and with a `horizon` AdamW counts its steps in a device tensor and reads its bias
corrections from tables computed once in Python doubles, exactly the numbers the Python-int count gives.
A 0-dim float64 tensor enters the update exactly as the Python float it holds (tested bit for bit).
"""
from __future__ import annotations

import math

import torch


def closure_loss(closure):
    """torch.optim's step(closure) convention: re-evaluate the loss with gradients on (None without one)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def per_member(x, p: torch.Tensor):
    """A float or 0-dim tensor (as is), or an [E] tensor shaped to scale member e's slice of p [E, ...]."""
    return x.view(-1, *[1] * (p.dim() - 1)) if torch.is_tensor(x) and x.dim() else x


def scheduled(lr, factor: torch.Tensor | None):
    """The lr of this step: the group's lr times the warm-up factor (a [1] float64 device tensor the train
    step sets in place; None: no schedule). Taken as a 0-dim float64, it scales a float32 tensor as the
    Python float it holds would."""
    return lr if factor is None else lr * factor[0]


def at_step(table: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """table[step] for a 0-dim device step, as a 0-dim tensor, without reading the step on the host
    (plain indexing would: a compiler then has to know its value)."""
    return table.index_select(0, step.view(1)).view(())


def bias_tables(betas, horizon: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """AdamW's bias corrections for steps t = 0..horizon as float64 tables, computed in Python as
    torch.optim.AdamW computes them (1 - beta1^t and sqrt(1 - beta2^t)): torch.pow differs from Python's
    pow in the last bit for some t, so the tables, not a device pow, keep the numbers of the count."""
    b1, b2 = betas
    return (torch.tensor([1 - b1 ** t for t in range(horizon + 1)], dtype=torch.float64, device=device),
            torch.tensor([math.sqrt(1 - b2 ** t) for t in range(horizon + 1)], dtype=torch.float64, device=device))


def decay(p: torch.Tensor, lr, weight_decay) -> None:
    """Decoupled weight decay in place: p *= 1 - lr * weight_decay (per member)."""
    p.mul_(per_member(1 - lr * weight_decay, p))

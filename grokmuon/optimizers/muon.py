"""Muon over member-stacked matrices [E, rows, cols], plus AdamW on the weights Muon does not train.

Which weight goes where (`optimizer.split`):
- hidden (the default, the study's split): Muon trains the per-member 2-D weights inside the blocks
  (attention q, k, v, o and the MLP's w1, w3, w2); AdamW trains the token embedding, the output head and
  the RMSNorm gains. This is the split Keller Jordan's Muon README recommends (embeddings and the
  classifier are not "hidden" layers; 1-D gains have no matrix to orthogonalise).
- all: Muon on every matrix, the embedding [E, V, D] and the head [E, V, D] included (Keller Jordan's
  code sends the head to Muon; the paper does not say which it used); AdamW keeps only the gains.
AdamW here takes adamw_lr and adamw_weight_decay, the AdamW run's values, so the arms differ only where
Muon acts.

torch.optim.Muon accepts only 2-D parameters, so the member-stacked matrices need our own step; it
follows torch.optim.Muon line for line, and tests compare it slice by slice. Ablations, each a config
value, each tested against a plain reference: momentum=0 (the orthogonalised gradient itself) and
ns_steps=0 (no orthogonalisation: the Nesterov momentum divided by its Frobenius norm, lr scaled alike).
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

from ._common import closure_loss, decay, per_member, scheduled
from .adamw import adamw

ORTHOGONALISES = True   # Newton-Schulz on its matrices (grokmuon/cost.py counts its FLOPs)

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
SPLITS = ("hidden", "all")


def newton_schulz(g: torch.Tensor, steps: int = 5, coefficients=NS_COEFFICIENTS, eps: float = 1e-7,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximately orthogonalise each matrix of g [..., m, n] (quintic Newton-Schulz iteration).

    Each matrix is normalised by its own Frobenius norm, so members never mix; steps=0 returns just
    that normalised matrix. Computed in `dtype` (bf16 as in torch.optim.Muon and Keller Jordan's
    muon.py); returns that dtype.
    """
    a, b, c = coefficients
    lead, (m, n) = g.shape[:-2], g.shape[-2:]
    x = g.reshape(-1, m, n).to(dtype)
    if m > n:
        x = x.transpose(1, 2)
    x = x / x.norm(dim=(1, 2), keepdim=True).clamp(min=eps)
    for _ in range(steps):  # the same fused steps as torch.optim.Muon, batched
        gram = torch.bmm(x, x.transpose(1, 2))
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.baddbmm(x, poly, x, beta=a)
    if m > n:
        x = x.transpose(1, 2)
    return x.reshape(*lead, m, n)


def lr_scale(rows: int, cols: int, rule: str = "original") -> float:
    """torch.optim.Muon's adjust_lr_fn: sqrt(max(1, rows/cols)) ("original", Keller Jordan) or
    0.2 * sqrt(max(rows, cols)) ("match_rms_adamw", Moonshot)."""
    if rule == "original":
        return math.sqrt(max(1.0, rows / cols))
    if rule == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    raise ValueError(f"unknown Muon lr rule {rule!r}; allowed: original, match_rms_adamw")


def momentum_directions(grads: list[torch.Tensor], bufs: list[torch.Tensor], mu: float,
                        nesterov: bool) -> list[torch.Tensor]:
    """EMA momentum in place (B = mu B + (1 - mu) g) and the direction to orthogonalise: the Nesterov
    look-ahead lerp(g, B, mu), or B itself, as torch.optim.Muon codes them. mu = 0 gives g exactly."""
    torch._foreach_lerp_(bufs, grads, 1 - mu)
    return torch._foreach_lerp(grads, bufs, mu) if nesterov else bufs


def orthogonalise(params: list[torch.Tensor], updates: list[torch.Tensor], ns_steps: int, coefficients,
                  eps: float, dtype: torch.dtype) -> list[torch.Tensor]:
    """Newton-Schulz on every row block of every update (a parameter with `row_blocks = k` holds k stacked
    matrices, each orthogonalised as its own layer). Blocks of one oriented shape (wide, so the Gram matrix
    is the small one) go through Newton-Schulz in a single batched call."""
    by_shape: dict[tuple[int, int], list[tuple[int, torch.Tensor, bool]]] = {}
    for i, (p, u) in enumerate(zip(params, updates)):
        E, rows, cols = p.shape
        k = getattr(p, "row_blocks", 1)
        blocks, tall = u.view(E * k, rows // k, cols), rows // k > cols
        if tall:
            blocks = blocks.transpose(1, 2)
        by_shape.setdefault(tuple(blocks.shape[1:]), []).append((i, blocks, tall))
    ortho: list[torch.Tensor | None] = [None] * len(params)
    for members in by_shape.values():
        sizes = [b.shape[0] for _, b, _ in members]
        out = newton_schulz(torch.cat([b for _, b, _ in members]), ns_steps, coefficients, eps, dtype)
        for (i, _, tall), o in zip(members, out.split(sizes)):
            ortho[i] = (o.transpose(1, 2) if tall else o).reshape(params[i].shape)
    return ortho


def muon_apply(p: torch.Tensor, o: torch.Tensor, lr, weight_decay, adjust_lr: str) -> None:
    """Decoupled decay, then the orthogonalised update o scaled by lr and the block shape's lr rule."""
    decay(p, lr, weight_decay)
    step = lr * lr_scale(p.shape[1] // getattr(p, "row_blocks", 1), p.shape[2], adjust_lr)
    p.sub_(o.to(p.dtype) * per_member(step, p))


class BatchedMuon(Optimizer):
    """Muon over parameters [E, rows, cols]: member e's slice gets exactly torch.optim.Muon's update.

    A parameter with attribute `row_blocks = k` holds k stacked matrices [rows/k, cols] (fused q, k, v);
    each block is orthogonalised on its own, as if it were its own layer.
    """

    def __init__(self, params, lr=0.02, weight_decay=0.0, momentum=0.95, nesterov=True, ns_steps=5,
                 ns_coefficients=NS_COEFFICIENTS, eps=1e-7, adjust_lr="original", ns_dtype=torch.bfloat16):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_steps=ns_steps, ns_coefficients=tuple(ns_coefficients), eps=eps,
                        adjust_lr=adjust_lr, ns_dtype=ns_dtype)
        super().__init__(params, defaults)
        self.lr_factor: torch.Tensor | None = None      # [1]: the warm-up factor, set by the train step (scheduled)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 3:
                    raise ValueError(f"BatchedMuon takes [members, rows, cols] weights, got {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure_loss(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, wd = scheduled(group["lr"], self.lr_factor), group["weight_decay"]
            bufs = []
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad)
                bufs.append(self.state[p]["momentum_buffer"])
            updates = momentum_directions([p.grad for p in params], bufs, group["momentum"], group["nesterov"])
            ortho = orthogonalise(params, updates, group["ns_steps"], group["ns_coefficients"], group["eps"],
                                  group["ns_dtype"])
            for p, o in zip(params, ortho):
                muon_apply(p, self.direction(p, o, group), lr, wd, group["adjust_lr"])
        return loss

    def direction(self, p: torch.Tensor, o: torch.Tensor, group: dict) -> torch.Tensor:
        """The step's direction from p's orthogonalised momentum o: o itself (a variant reshapes it)."""
        return o


def ns_dtype(name: str, device: torch.device) -> torch.dtype:
    """The Newton-Schulz dtype of optimizer.ns_dtype: auto = bf16 on CUDA, fp32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def muon_params(model, split: str) -> list[torch.nn.Parameter]:
    """The weights Muon trains under `split` (see the module docstring), hidden matrices first."""
    hidden = model.hidden_matrices()
    if split == "hidden":
        return hidden
    if split == "all":
        ids = {id(p) for p in hidden}
        return hidden + [p for p in model.parameters() if p.dim() == 3 and id(p) not in ids]
    raise ValueError(f"unknown Muon split {split!r}; allowed: {', '.join(SPLITS)}")


def build(model, cfg, lr, weight_decay, horizon: int = 0) -> list[Optimizer]:
    """Muon on the split's matrices with the run's lr and weight decay (floats or [E] tensors), AdamW on
    the rest with adamw_lr and adamw_weight_decay."""
    matrices = muon_params(model, getattr(cfg, "split", "hidden"))
    ids = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if id(p) not in ids]
    muon = BatchedMuon(matrices, lr=lr, weight_decay=weight_decay, momentum=cfg.momentum,
                       nesterov=cfg.nesterov, ns_steps=cfg.ns_steps, ns_coefficients=cfg.ns_coefficients,
                       adjust_lr=cfg.adjust_lr, ns_dtype=ns_dtype(cfg.ns_dtype, matrices[0].device))
    return [muon, adamw(rest, cfg, cfg.adamw_lr, cfg.adamw_weight_decay, horizon)]

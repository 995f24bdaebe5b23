"""Output heads: softmax, stablemax and sparsemax, each with the loss that matches it.

Every head maps logits z [..., V] to probabilities; accuracy is argmax z for all three, since each map
is monotone in z. Losses return one value per row so the trainer can average per member.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .names import HEADS


def log_stablemax(z: torch.Tensor) -> torch.Tensor:
    """log s(z_i) - log sum_j s(z_j), s(z) = z + 1 (z >= 0), 1 / (1 - z) (z < 0)  [Prieto et al. 2025].

    log s is taken as log1p(z) or -log1p(-z) on the clamped branch, so neither branch ever sees a value
    that would make NaN or inf (torch.where back-propagates through both branches).
    """
    log_s = torch.where(z >= 0, torch.log1p(z.clamp(min=0)), -torch.log1p((-z).clamp(min=0)))
    return log_s - torch.logsumexp(log_s, dim=-1, keepdim=True)


def sparsemax_projection(z: torch.Tensor) -> torch.Tensor:
    """sparsemax(z) over the last axis of z [n, V]: entmax.sparsemax's forward (full sort), op for op."""
    z = z - z.max(dim=-1, keepdim=True)[0]
    top, _ = torch.sort(z, dim=-1, descending=True)
    cumsum = top.cumsum(-1) - 1
    rhos = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype).view(1, -1)
    support = (rhos * top > cumsum).sum(dim=-1).unsqueeze(-1)
    tau = cumsum.gather(-1, support - 1)
    tau /= support.to(z.dtype)
    return torch.clamp(z - tau, min=0)


class SparsemaxLoss(torch.autograd.Function):
    """entmax.sparsemax_loss, op for op (the same numbers, tested), written with static methods: entmax's
    class-method Function calls super().forward, which torch.compile cannot trace (compile=step)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = sparsemax_projection(z)
        loss = (1 - (p ** 2).sum(dim=1)) / 2
        p.scatter_add_(1, y.unsqueeze(1), torch.full_like(p, -1))
        loss += torch.einsum("ij,ij->i", p, z)
        ctx.save_for_backward(p)
        return loss

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        p, = ctx.saved_tensors
        return grad.unsqueeze(1) * p, None


def probabilities(head: str, z: torch.Tensor) -> torch.Tensor:
    if head == "softmax":
        return torch.softmax(z, dim=-1)
    if head == "stablemax":
        return log_stablemax(z).exp()
    if head == "sparsemax":
        from entmax import sparsemax
        return sparsemax(z, dim=-1)
    raise ValueError(f"unknown head {head!r}; allowed: {', '.join(HEADS)}")


def row_losses(head: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss of each row: z [..., V], y [...] -> [...]."""
    flat_z, flat_y = z.reshape(-1, z.shape[-1]), y.reshape(-1)
    if head == "softmax":
        loss = F.cross_entropy(flat_z.float(), flat_y, reduction="none")
    elif head == "stablemax":
        loss = -log_stablemax(flat_z.float()).gather(1, flat_y[:, None])[:, 0]
    elif head == "sparsemax":
        loss = SparsemaxLoss.apply(flat_z.float(), flat_y)  # (1 - |p*|^2)/2 + <p* - e_y, z>; Martins & Astudillo 2016
    else:
        raise ValueError(f"unknown head {head!r}; allowed: {', '.join(HEADS)}")
    return loss.view(y.shape)

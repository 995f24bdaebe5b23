"""Which weight goes to which optimizer, and a Muon step batched over the member axis.

The rule, in one place: Muon trains the hidden matrices, the per-member 2-D weights inside the blocks
(attention q, k, v, o and the MLP's w1, w3, w2). AdamW trains everything else: the token embedding,
the output head and the RMSNorm gains. This is the split Keller Jordan's Muon README recommends
(embeddings and the classifier are not "hidden" layers; 1-D gains have no matrix to orthogonalise).

torch.optim.Muon accepts only 2-D parameters, so the member-stacked [E, m, n] matrices need our own
step; it follows torch.optim.Muon line for line, and tests compare it slice by slice.

Both optimizers take lr and weight decay as a float or as an [E] tensor, one value per member: a grid of
(lr, weight_decay) trains as one ensemble, and member e's slice gets exactly the update a solo run with
its own values would get (tested against torch.optim.Muon / torch.optim.AdamW slice by slice).
"""
from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: torch.Tensor, steps: int = 5, coefficients=NS_COEFFICIENTS, eps: float = 1e-7,
                  dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximately orthogonalise each matrix of g [..., m, n] (quintic Newton-Schulz iteration).

    Each matrix is normalised by its own Frobenius norm, so members never mix. Computed in `dtype`
    (bf16 as in torch.optim.Muon and Keller Jordan's muon.py); returns that dtype.
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


def closure_loss(closure):
    """torch.optim's step(closure) convention: re-evaluate the loss with gradients on (None without one)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def per_member(x, p: torch.Tensor):
    """A float, or an [E] tensor shaped to scale member e's slice of p [E, ...]."""
    return x.view(-1, *[1] * (p.dim() - 1)) if torch.is_tensor(x) else x


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
            lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
            grads = [p.grad for p in params]
            bufs = []
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad)
                bufs.append(self.state[p]["momentum_buffer"])
            # EMA momentum and Nesterov, as torch.optim.Muon codes them.
            torch._foreach_lerp_(bufs, grads, 1 - mu)                      # B = mu B + (1 - mu) g
            updates = torch._foreach_lerp(grads, bufs, mu) if group["nesterov"] else bufs
            # Orthogonalise every block of every parameter: blocks of one oriented shape (wide, so the
            # Gram matrix is the small one) go through Newton-Schulz in a single batched call.
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
                out = newton_schulz(torch.cat([b for _, b, _ in members]), group["ns_steps"],
                                    group["ns_coefficients"], group["eps"], group["ns_dtype"])
                for (i, _, tall), o in zip(members, out.split(sizes)):
                    ortho[i] = (o.transpose(1, 2) if tall else o).reshape(params[i].shape)
            for p, o in zip(params, ortho):
                k = getattr(p, "row_blocks", 1)
                p.mul_(per_member(1 - lr * wd, p))                          # decoupled weight decay
                step = lr * lr_scale(p.shape[1] // k, p.shape[2], group["adjust_lr"])
                p.sub_(o.to(p.dtype) * per_member(step, p))
        return loss


class BatchedAdamW(Optimizer):
    """AdamW over parameters [E, ...] with a per-member lr and weight decay (floats or [E] tensors).

    AdamW is elementwise, so the member axis needs nothing but a per-member factor on the decay and the
    step; the rest is torch.optim.AdamW's update in its order (decay, moments, bias corrections).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure_loss(closure)
        for group in self.param_groups:
            lr, wd, (beta1, beta2), eps = group["lr"], group["weight_decay"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                p.mul_(per_member(1 - lr * wd, p))                          # decoupled weight decay
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                p.sub_(m / denom * per_member(lr / (1 - beta1 ** t), p))
        return loss


def ns_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def build_optimizers(model, cfg, lr=None, weight_decay=None) -> list[Optimizer]:
    """AdamW alone (cfg.name == "adamw") or Muon on the hidden matrices plus AdamW on the rest.

    lr, weight_decay: per-member [E] tensors (a grid on the member axis) for the optimizer the run is
    named after (AdamW: every weight; Muon: the hidden matrices); default cfg.lr / cfg.weight_decay.
    Muon's AdamW part always takes cfg.adamw_lr / cfg.adamw_weight_decay.
    """
    lr = cfg.lr if lr is None else lr
    weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
    hidden = model.hidden_matrices() if cfg.name == "muon" else []
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in hidden_ids]
    adamw = BatchedAdamW(rest, lr=cfg.adamw_lr if cfg.name == "muon" else lr, betas=tuple(cfg.betas), eps=cfg.eps,
                         weight_decay=cfg.adamw_weight_decay if cfg.name == "muon" else weight_decay)
    if cfg.name == "adamw":
        return [adamw]
    muon = BatchedMuon(hidden, lr=lr, weight_decay=weight_decay, momentum=cfg.momentum,
                       nesterov=cfg.nesterov, ns_steps=cfg.ns_steps, ns_coefficients=cfg.ns_coefficients,
                       adjust_lr=cfg.adjust_lr, ns_dtype=ns_dtype(cfg.ns_dtype, hidden[0].device))
    return [muon, adamw]

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

What changes every step lives on the device, so a compiled or captured step (grokmuon/step.py) has no
Python number to bake in: the lr's warm-up factor is a device tensor the step sets in place
(`lr_factor`), and with a `horizon` AdamW counts its steps in a device tensor and reads its bias
corrections from tables computed once in Python doubles, exactly the numbers the Python-int count gives.
A 0-dim float64 tensor enters the update exactly as the Python float it holds (tested bit for bit).
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
            lr, wd, mu = scheduled(group["lr"], self.lr_factor), group["weight_decay"], group["momentum"]
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

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, horizon: int = 0):
        """horizon > 0: the step count is a device tensor (state["step"]) and the bias corrections come from
        tables for that many steps (bias_tables), so the update has no Python number that changes."""
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
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
                m, v = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(per_member(1 - lr * wd, p))                          # decoupled weight decay
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (v.sqrt() / root2).add_(eps)
                p.sub_(m / denom * per_member(lr / bias1, p))
        return loss

    def load_state_dict(self, state_dict) -> None:
        """A saved count comes back as this optimizer counts: a device tensor with a horizon, else an int
        (a checkpoint written before the count moved to the device holds an int)."""
        super().load_state_dict(state_dict)
        for p, state in self.state.items():
            if "step" in state:
                n = int(state["step"])
                state["step"] = torch.tensor(n, dtype=torch.int64, device=p.device) if self.horizon else n


def ns_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]


def build_optimizers(model, cfg, lr=None, weight_decay=None, horizon: int = 0) -> list[Optimizer]:
    """AdamW alone (cfg.name == "adamw") or Muon on the hidden matrices plus AdamW on the rest.

    lr, weight_decay: per-member [E] tensors (a grid on the member axis) for the optimizer the run is
    named after (AdamW: every weight; Muon: the hidden matrices); default cfg.lr / cfg.weight_decay.
    Muon's AdamW part always takes cfg.adamw_lr / cfg.adamw_weight_decay. horizon: AdamW's step count
    on the device, for that many steps (BatchedAdamW).
    """
    lr = cfg.lr if lr is None else lr
    weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
    hidden = model.hidden_matrices() if cfg.name == "muon" else []
    hidden_ids = {id(p) for p in hidden}
    rest = [p for p in model.parameters() if id(p) not in hidden_ids]
    adamw = BatchedAdamW(rest, lr=cfg.adamw_lr if cfg.name == "muon" else lr, betas=tuple(cfg.betas), eps=cfg.eps,
                         weight_decay=cfg.adamw_weight_decay if cfg.name == "muon" else weight_decay,
                         horizon=horizon)
    if cfg.name == "adamw":
        return [adamw]
    muon = BatchedMuon(hidden, lr=lr, weight_decay=weight_decay, momentum=cfg.momentum,
                       nesterov=cfg.nesterov, ns_steps=cfg.ns_steps, ns_coefficients=cfg.ns_coefficients,
                       adjust_lr=cfg.adjust_lr, ns_dtype=ns_dtype(cfg.ns_dtype, hidden[0].device))
    return [muon, adamw]

"""Fourier probes of the modular tasks (Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability"): how concentrated the number embedding is on a few frequencies, and how much of the
loss the key frequencies alone carry. Pure functions over [E, ...] tensors; no model, no I/O.

Each task is read as a cyclic group of order n in which the answer is a + s·b (s = +1 or -1):
  modadd  Z_p, n = p, s = +1: the group coordinate of a number x is x itself.
  modsub  Z_p, n = p, s = -1: a - b is addition with b negated. The embedding's frequency norms apply as
          they are (negation maps frequency k onto itself); the logits' 2D components are cos(w(a - b)),
          sin(w(a - b)).
  modmul  Z_p^* (order p - 1), s = +1: x != 0 has coordinate log_g x, g the smallest primitive root of p
          (5 for p = 97), so a·b becomes log a + log b mod p - 1. The number 0 is outside the group: its
          embedding row and every row with a = 0 or b = 0 are left out.
  moddiv  Z_p^*, s = -1: a·b⁻¹ becomes log a - log b; the rows with a = 0 are left out (b = 0 has none).
  modexp, gcd, parity: left out (`applies` is False), nothing is returned. a^b mod p is b · log a in the
          log coordinates, a product of a group element and an exponent, not a sum of two group elements,
          so no cos/sin(w(a ± b)) components carry it (the embedding norms could be computed, but there
          is no circuit they are known to feed). gcd is not a group operation at all. Parity's inputs are
          ten bits, not two numbers: its Fourier basis is the Walsh basis of {0, 1}^10, in which the
          answer is the one top-degree character, and its two bit tokens have no frequencies.

Basis over n elements (x = 0..n-1, w_k = 2πk/n): the constant 1/√n, and for k = 1..m, m = ⌊n/2⌋ = 48 for
n = 97 and n = 96, cos(w_k x) and sin(w_k x) each scaled to unit norm. For even n (the group of order 96)
frequency k = n/2 is the Nyquist term: cos(πx) = (-1)^x is kept, its sin vector is identically 0 and is
kept as a zero row (not normalised). So both groups have m = 48 frequencies and the Gini is over 48 norms;
the Nyquist norm has one dimension instead of two (under random weights it is about 1/√2 of the others).
"""
from __future__ import annotations

import math

import torch

from . import heads

ADDITIVE = {"modadd": 1, "modsub": -1}           # task -> sign s of b in a + s·b, over Z_p
MULTIPLICATIVE = {"modmul": 1, "moddiv": -1}     # the same over Z_p^*, in discrete-log coordinates
N_KEY = 5                                        # key frequencies kept (the "up to 5")
# The per-member columns these probes would add to metrics.csv (not wired in yet): key_freq_i is the
# i-th largest frequency norm's k.
PROBES = ("fourier_gini", *(f"key_freq_{i}" for i in range(1, N_KEY + 1)), "restricted_loss", "excluded_loss")


def applies(task: str) -> bool:
    """Whether the Fourier probes are defined for `task` (see the module docstring)."""
    return task in ADDITIVE or task in MULTIPLICATIVE


def primitive_root(p: int) -> int:
    """The smallest g whose powers g^0..g^(p-2) mod p are all of 1..p-1 (5 for p = 97)."""
    for g in range(2, p):
        if len({pow(g, i, p) for i in range(p - 1)}) == p - 1:
            return g
    raise ValueError(f"{p} has no primitive root below it (not a prime?)")


def group_order(task: str, p: int) -> int:
    return p if task in ADDITIVE else p - 1


def sign(task: str) -> int:
    return ADDITIVE.get(task, MULTIPLICATIVE.get(task))


def number_tokens(task: str, p: int) -> torch.Tensor:
    """[n]: the number token (embedding row) at each group coordinate: x itself, or g^i mod p."""
    if task in ADDITIVE:
        return torch.arange(p)
    g = primitive_root(p)
    return torch.tensor([pow(g, i, p) for i in range(p - 1)])


def grid_rows(task: str, p: int) -> torch.Tensor:
    """[n, n]: for group coordinates (i, j), the index of the row "a op b =" in tasks.make_task's order
    (a-major, b from 0, or from 1 for moddiv), a and b being the numbers at coordinates i and j."""
    t = number_tokens(task, p)
    a, b = t[:, None], t[None, :]
    if task == "moddiv":
        return a * (p - 1) + (b - 1)
    return a * p + b


def fourier_basis(n: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(const [n], cs [m, 2, n]): the unit constant, and cs[k-1] = (cos w_k x, sin w_k x) of unit norm,
    x = 0..n-1, k = 1..m = ⌊n/2⌋; the Nyquist sin (even n, k = n/2) is a zero row."""
    x = torch.arange(n, dtype=torch.float64)
    k = torch.arange(1, n // 2 + 1, dtype=torch.float64)[:, None]
    cs = torch.stack([torch.cos(2 * math.pi * k * x / n), torch.sin(2 * math.pi * k * x / n)], 1)
    norm = cs.norm(dim=-1, keepdim=True)
    cs = torch.where(norm > 1e-6, cs / norm.clamp(min=1e-6), 0.0)      # sin(πx) = 0 (up to rounding)
    return torch.full((n,), 1 / math.sqrt(n), dtype=dtype), cs.to(dtype)


def frequency_norms(W: torch.Tensor) -> torch.Tensor:
    """n_k = sqrt(‖cos_kᵀW‖² + ‖sin_kᵀW‖²) for W [..., n, D] (rows in group order, e.g. the number tokens'
    embedding rows [E, p, D]): [..., m], k = 1..m."""
    _, cs = fourier_basis(W.shape[-2], torch.float64)
    coef = torch.einsum("kcx,...xd->...kcd", cs.to(W.device), W.detach().double())
    return coef.pow(2).sum((-2, -1)).sqrt().to(W.dtype)


def gini(x: torch.Tensor) -> torch.Tensor:
    """Gini coefficient over the last axis: Σ_i Σ_j |x_i - x_j| / (2 m² mean(x)), m = x.shape[-1].
    0: all equal; (m - 1)/m: one nonzero. NaN where every entry is 0."""
    m = x.shape[-1]
    diff = (x[..., :, None] - x[..., None, :]).abs().sum((-2, -1))
    return diff / (2 * m * m * x.mean(-1))


def fourier_gini(W: torch.Tensor) -> torch.Tensor:
    """The Gini of the frequency norms of W [..., n, D]: 0 spread over all frequencies, near 1 a few."""
    return gini(frequency_norms(W))


def key_freqs(norms: torch.Tensor, k: int = N_KEY) -> torch.Tensor:
    """The (up to) k frequencies (numbered 1..m) with the largest norms [..., m], largest first."""
    return norms.topk(min(k, norms.shape[-1]), dim=-1).indices + 1


def grid_directions(n: int, s: int, dtype=torch.float64) -> torch.Tensor:
    """[m, 2, n, n]: the unit vectors cos(w_k(i + s·j)) and sin(w_k(i + s·j)) over the n×n grid of group
    coordinates (i, j), k = 1..m; the Nyquist sin is a zero row. The nonzero ones are orthonormal to each
    other and to the constant over the full grid (1 <= k < k' <= n/2: k ± k' ≢ 0 mod n), so projecting
    on each in turn is the orthogonal projection on their span."""
    i = torch.arange(n, dtype=torch.float64)
    phase = i[:, None] + s * i[None, :]                                           # [n, n]
    k = torch.arange(1, n // 2 + 1, dtype=torch.float64)[:, None, None]
    d = torch.stack([torch.cos(2 * math.pi * k * phase / n), torch.sin(2 * math.pi * k * phase / n)], 1)
    norm = d.norm(dim=(-2, -1), keepdim=True)
    return torch.where(norm > 1e-6, d / norm.clamp(min=1e-6), 0.0).to(dtype)


def key_components(logits: torch.Tensor, key: torch.Tensor, s: int) -> torch.Tensor:
    """The part of logits [E, n, n, V] (class column c as a function of the group coordinates (i, j))
    in the span of cos(w_k(i + s·j)), sin(w_k(i + s·j)) for member e's key frequencies key[e] [E, K]:
    each class column is projected on its own, over all n² pairs; [E, n, n, V]."""
    d = grid_directions(logits.shape[1], s, logits.dtype).to(logits.device)[key - 1]   # [E, K, 2, n, n]
    coef = torch.einsum("ekcij,eijv->ekcv", d, logits)
    return torch.einsum("ekcij,ekcv->eijv", d, coef)


def restricted_logits(logits: torch.Tensor, key: torch.Tensor, s: int) -> torch.Tensor:
    """Each class's mean over the n² pairs plus its key-frequency components: the logits rebuilt from
    the key frequencies alone (Nanda et al.'s restricted logits, with their bias correction)."""
    return logits.mean((1, 2), keepdim=True) + key_components(logits, key, s)


def excluded_logits(logits: torch.Tensor, key: torch.Tensor, s: int) -> torch.Tensor:
    """The logits with their key-frequency components removed (the constant and all else kept)."""
    return logits - key_components(logits, key, s)


def _loss(z: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, head: str) -> torch.Tensor:
    per_row = heads.row_losses(head, z, labels.expand(z.shape[:-1]))                   # [E, n, n]
    rows = rows.expand(per_row.shape).to(per_row.dtype)
    return (per_row * rows).sum((1, 2)) / rows.sum((1, 2))


def restricted_loss(logits, labels, rows, key, s: int, head: str = "softmax") -> torch.Tensor:
    """Mean loss over the rows where rows [E, n, n] (or [n, n]) is True, typically the training rows, of
    restricted_logits(logits [E, n, n, V], key [E, K], s); labels [n, n] are the answers. [E].

    What is projected: every class column of the logits, as a function of (a, b) over all n² pairs of the
    grid (not only the training rows, since the directions are orthonormal over the full grid), onto
    cos(w_k(a + s·b)), sin(w_k(a + s·b)) for the key k, plus the per-class constant. Nanda et al. project
    the same 2D components cos/sin(w_k(x + y)) of the logits (their code's `trig loss`, which evaluates on
    all pairs by default; the paper's restricted loss first projects the MLP activations the same way);
    here the rows are the caller's: the training rows, as the issue asks. All V classes take part; pass
    logits[..., :p] to score the number classes only, as their code does."""
    return _loss(restricted_logits(logits, key, s), labels, rows, head)


def excluded_loss(logits, labels, rows, key, s: int, head: str = "softmax") -> torch.Tensor:
    """Mean loss over the rows where rows is True (the training rows, as Nanda et al. measure it) of the
    logits with all key frequencies' components cos/sin(w_k(a + s·b)) removed at once (as their
    `excluded_loss_2D_full`; the constant and every other frequency kept). Arguments as restricted_loss."""
    return _loss(excluded_logits(logits, key, s), labels, rows, head)


def embedding_probes(embed: torch.Tensor, task: str, p: int) -> dict[str, torch.Tensor]:
    """From the token embedding [E, V, D]: fourier_gini [E] and key_freqs [E, 5] (numbered 1..m in the
    task's group), over the number tokens in group order. {} where the probes do not apply."""
    if not applies(task):
        return {}
    norms = frequency_norms(embed[:, number_tokens(task, p).to(embed.device)])
    return {"fourier_gini": gini(norms), "key_freqs": key_freqs(norms)}


def logit_probes(logits, labels, is_train, key, task: str, p: int, head: str = "softmax"):
    """From the logits of every row of the task, in tasks.make_task's order ([E, N, V], labels [N],
    is_train [E, N]) and each member's key frequencies [E, K]: restricted_loss and excluded_loss [E] over
    the training rows that lie in the group (all of them for modadd and modsub). {} where not defined."""
    if not applies(task):
        return {}
    idx = grid_rows(task, p).to(logits.device)
    z, y, rows, s = logits[:, idx].float(), labels[idx], is_train[:, idx], sign(task)
    return {"restricted_loss": restricted_loss(z, y, rows, key, s, head),
            "excluded_loss": excluded_loss(z, y, rows, key, s, head)}

"""The algorithmic tasks as pure functions: every row "a op b =" and its answer, plus a seeded split.

A task returns (inputs LongTensor[N, T], labels LongTensor[N]) over one shared vocabulary:
tokens 0..p-1 are the numbers, p is the operator token and p+1 is "=". Every modular task uses the same
operator token, as the cited code does ([T] data.py): the task is a property of the dataset, not of a token.
Parity uses tokens 0/1 for the bits, then "="; its label is 0 or 1 (the sum of the bits mod 2).
"""
from __future__ import annotations

import math

import torch

from .names import FIRST_B, TASKS, TRAIN_FRACTIONS, is_prime  # noqa: F401  (the names live where no torch is)


def _binary(p: int, fn, b_from: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.meshgrid(torch.arange(p), torch.arange(b_from, p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    op, eq = torch.full_like(a, p), torch.full_like(a, p + 1)
    return torch.stack([a, op, b, eq], dim=1), fn(a, b)


def modular_inverse(b: torch.Tensor, p: int) -> torch.Tensor:
    """b^(p-2) mod p: the inverse of b modulo a prime p (Fermat), elementwise."""
    return modular_power(b, torch.full_like(b, p - 2), p)


def modular_power(a: torch.Tensor, e: torch.Tensor, p: int) -> torch.Tensor:
    """a^e mod p elementwise by square-and-multiply; 0^0 = 1 (the empty product, as Python's pow)."""
    result, base, e = torch.ones_like(a), a % p, e.clone()
    while bool((e > 0).any()):
        odd = (e % 2) == 1
        result = torch.where(odd, result * base % p, result)
        base, e = base * base % p, e // 2
    return result


def elementwise_gcd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclid elementwise; gcd(0, 0) = 0 (as math.gcd), so every label lies in 0..p-1."""
    a, b = a.clone(), b.clone()
    while bool((b != 0).any()):
        nz = b != 0
        a, b = torch.where(nz, b, a), torch.where(nz, a % torch.where(nz, b, 1), b)
    return a


def parity_rows(n_bits: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """All 2^n_bits strings, most significant bit first, then "=" (token 2); label = number of ones mod 2."""
    n = torch.arange(2 ** n_bits)
    bits = (n[:, None] >> torch.arange(n_bits - 1, -1, -1)) & 1
    eq = torch.full((len(n), 1), 2)
    return torch.cat([bits, eq], dim=1), bits.sum(1) % 2


# The binary tasks, by name: the label of row "a op b =" from tensors a, b and the modulus p. A new one is
# a line here, its train fraction in names.py (and its first b there, if b = 0 has no answer) and its
# conf/task/<name>.yaml (README: Adding a task).
BINARY = {
    "modadd": lambda a, b, p: (a + b) % p,
    "modsub": lambda a, b, p: (a - b) % p,
    "modmul": lambda a, b, p: a * b % p,
    "moddiv": lambda a, b, p: a * modular_inverse(b, p) % p,     # b from 1 (FIRST_B): 97·96 rows, as [T]
    "modexp": lambda a, b, p: modular_power(a, b, p),
    "gcd": lambda a, b, p: elementwise_gcd(a, b),
}


def make_task(name: str, p: int = 97, n_bits: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row of task `name`: (inputs [N, T], labels [N])."""
    if name in BINARY:
        return _binary(p, lambda a, b: BINARY[name](a, b, p), FIRST_B.get(name, 0))
    if name == "parity":
        return parity_rows(n_bits)
    raise ValueError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")


def vocab_size(name: str, p: int = 97) -> int:
    """Tokens the model embeds and classes the head scores (numbers, operator, "=")."""
    return 3 if name == "parity" else p + 2


def split_indices(n: int, train_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random permutation of range(n) from `seed`, cut at floor(train_frac * n): (train, val)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_train = int(math.floor(train_frac * n))
    return perm[:n_train], perm[n_train:]

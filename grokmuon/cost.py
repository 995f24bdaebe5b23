"""What grokking costs: model FLOPs from the model's shape and the task's rows, pure arithmetic (no torch).

What is counted (a FLOP is a multiply or an add: a matmul [a, b] @ [b, c] is 2abc):
- The forward pass of one row: every matmul of the transformer, as model.py computes it. Per token
  of a block: q, k, v, o (4 d^2 multiply-adds) and the gated MLP (w1, w3, w2: 3 d m); attention per
  query over the whole sequence (scores and weighted sum: 2 T d, the causal mask's zeros included, as
  the kernel computes them); the last block computes k and v at every position but q, o, attention and
  the MLP for the "=" position only (model.py does); then the head (d x vocab). The embedding is a
  lookup (no FLOPs); norms, RoPE, dropout, softmax and the loss are elementwise and not counted.
- Training: 3x the forward for every training row of every epoch (forward + backward, the backward
  counted as twice the forward), n_train rows an epoch whatever the batch size.
- Evaluation: one forward per evaluated row each epoch: the val split always, the train split on the
  epochs that measured it (every epoch, or fewer under eval_train=lazy: metrics.csv leaves those blank).
- An optimizer that orthogonalises (Muon, NorMuon: the registry's ORTHOGONALISES, grokmuon/optimizers/):
  its Newton-Schulz iteration, `ns_steps` quintic steps per matrix per optimizer step (ceil(n_train /
  batch) steps an epoch; ns_steps=0 costs none). A step on X [r, c], r <= c (X is transposed when
  taller), is A = X X^T (2 r^2 c), B = b A + c A A (2 r^3), X = a X + B X (2 r^2 c). The hidden matrices
  per block are q, k, v, o (d x d), w1, w3 (m x d) and w2 (d x m), each orthogonalised on its own
  (optimizers/muon.py); with optimizer.split=all also the embedding and the head (vocab x d each).
  AdamW's and Muon's elementwise updates (moments, decay) are not counted; nor are the probes.
Per member: an ensemble of E members costs E times this.
"""
from __future__ import annotations

import math

from .names import FIRST_B


def task_rows(task: str, p: int = 97, n_bits: int = 10) -> tuple[int, int]:
    """(rows of the task, tokens per row): every "a op b =" row, b from its first value (names.FIRST_B:
    moddiv without b = 0); parity's bit strings and "=" (tasks.make_task, which needs torch; tested equal)."""
    if task == "parity":
        return 2 ** n_bits, n_bits + 1
    return p * (p - FIRST_B.get(task, 0)), 4


def vocab(task: str, p: int = 97) -> int:
    """Tokens embedded and classes scored (tasks.vocab_size)."""
    return 3 if task == "parity" else p + 2


def forward_flops(seq: int, layers: int, d: int, m: int, vocab: int) -> int:
    """Matmul FLOPs of one row's forward pass (see the module doc)."""
    per_token = 2 * (4 * d * d + 3 * d * m)
    attention = 2 * 2 * seq * d                               # per query: q k^T and the weighted sum of v
    full_block = seq * (per_token + attention)
    last_block = seq * 2 * (2 * d * d) + 2 * (2 * d * d + 3 * d * m) + attention   # k, v everywhere; the rest at "="
    return (layers - 1) * full_block + last_block + 2 * d * vocab


def newton_schulz_flops(rows: int, cols: int, steps: int = 5) -> int:
    """Matmul FLOPs of `steps` quintic Newton-Schulz steps on one [rows, cols] matrix."""
    r, c = min(rows, cols), max(rows, cols)
    return steps * (2 * r * r * c + 2 * r ** 3 + 2 * r * r * c)


def muon_step_flops(layers: int, d: int, m: int, steps: int = 5, vocab: int = 0) -> int:
    """Newton-Schulz FLOPs of one Muon step over every hidden matrix of the model; vocab > 0 (split=all):
    the embedding and the head [vocab, d] too."""
    hidden = layers * (4 * newton_schulz_flops(d, d, steps) + 2 * newton_schulz_flops(m, d, steps)
                       + newton_schulz_flops(d, m, steps))
    return hidden + (2 * newton_schulz_flops(vocab, d, steps) if vocab else 0)


def epoch_flops(fwd: int, n_train: int, eval_rows: int, batch: int, ns_per_step: int = 0) -> int:
    """One epoch of one member: training (3x fwd per train row), evaluation (fwd per evaluated row) and
    ns_per_step for each of its ceil(n_train / batch) optimizer steps (0 for AdamW)."""
    steps = math.ceil(n_train / min(batch, n_train))
    return 3 * fwd * n_train + fwd * eval_rows + steps * ns_per_step


def member_flops(task: str, p: int, n_bits: int, train_frac: float, layers: int, d: int, m: int, batch: int,
                 muon_ns_steps: int | None, train_measured: list[bool], split: str = "hidden") -> list[int]:
    """Cumulative FLOPs of one member after each epoch (entry e - 1: epochs 1..e), from the config's
    values and which epochs measured the train split (train_measured, one flag an epoch).
    muon_ns_steps: Newton-Schulz steps per optimizer step, None (or 0) for an optimizer without them;
    split: optimizer.split (all: the embedding and the head are orthogonalised too)."""
    rows, seq = task_rows(task, p, n_bits)
    n_train = math.floor(train_frac * rows)          # tasks.split_indices cuts here
    fwd = forward_flops(seq, layers, d, m, vocab(task, p))
    ns = (muon_step_flops(layers, d, m, muon_ns_steps, vocab(task, p) if split == "all" else 0)
          if muon_ns_steps else 0)
    total, out = 0, []
    for measured in train_measured:
        total += epoch_flops(fwd, n_train, (rows - n_train) + (n_train if measured else 0), batch, ns)
        out.append(total)
    return out

"""NorMuon (Li et al. 2025, arXiv 2510.05491): Muon whose orthogonalised update is then normalised per
neuron, over member-stacked matrices [E, rows, cols] (rows are output neurons: weights are stored
[out, in] like nn.Linear), plus AdamW on the weights it does not train (the same split as Muon).

One step on a matrix, as the authors' code does it (zichongli5/NorMuon, normuon.py, `normuon_update`):
1. Muon's EMA momentum and Nesterov look-ahead, then Newton-Schulz (muon.py's pieces);
2. v <- beta2 v + (1 - beta2) mean_j O_ij^2: an EMA of each row's mean square, one number per neuron,
   no bias correction (the paper's beta2 = 0.95: `optimizer.normuon_beta2`);
3. O <- O / (sqrt(v) + 1e-10): every neuron's row brought to a comparable size;
4. O <- O * ||O_before||_F / (||O||_F + 1e-10): the matrix keeps its Frobenius norm from before step 3,
   so the lr means what it means for Muon;
5. decoupled decay, then the step lr times muon.lr_scale of the block's shape (`optimizer.adjust_lr`:
   the default "original" is the authors' code's sqrt(max(1, rows/cols)), as for Muon).
A parameter with `row_blocks = k` (fused q, k, v) is k matrices: each block is orthogonalised and keeps
its own norm in step 4, as if it were its own layer; step 2 is per row either way. Steps 2-4 run in the
weight's dtype (fp32 here; the authors' code stays in bf16 after Newton-Schulz): only more exact.
tests/test_normuon.py compares every member's slice with a plain one-matrix loop.
"""
from __future__ import annotations

import torch
from torch.optim import Optimizer

from .adamw import adamw
from .muon import BatchedMuon, muon_params, ns_dtype

ORTHOGONALISES = True   # Muon's Newton-Schulz on its matrices (grokmuon/cost.py counts its FLOPs)

EPS = 1e-10  # the authors' code's guard in steps 3 and 4


def neuron_normalise(o: torch.Tensor, v: torch.Tensor, beta2: float, row_blocks: int = 1) -> torch.Tensor:
    """Steps 2-4 on o [E, rows, cols]: update v [E, rows, 1] (each row's mean-square EMA) in place and
    return o with each row divided by sqrt(v), rescaled to each block's Frobenius norm before that."""
    E, rows, cols = o.shape
    before = o.reshape(E * row_blocks, rows // row_blocks, cols).norm(dim=(1, 2), keepdim=True)
    v.lerp_(o.square().mean(dim=-1, keepdim=True), 1 - beta2)
    n = (o / (v.sqrt() + EPS)).reshape(E * row_blocks, rows // row_blocks, cols)
    return (n * (before / (n.norm(dim=(1, 2), keepdim=True) + EPS))).reshape(E, rows, cols)


class BatchedNorMuon(BatchedMuon):
    """NorMuon over parameters [E, rows, cols]: BatchedMuon's momentum and orthogonalisation, then the
    per-neuron normalisation (neuron_normalise) before the step. beta2: the row mean-square EMA's rate."""

    def __init__(self, params, beta2: float = 0.95, **kwargs):
        super().__init__(params, **kwargs)
        self.defaults["beta2"] = beta2
        for group in self.param_groups:
            group.setdefault("beta2", beta2)

    def direction(self, p: torch.Tensor, o: torch.Tensor, group: dict) -> torch.Tensor:
        """Muon's orthogonalised momentum o, normalised per neuron with p's row mean-square EMA."""
        state = self.state[p]
        if "second_momentum_buffer" not in state:
            state["second_momentum_buffer"] = torch.zeros_like(p[..., :1])
        return neuron_normalise(o.to(p.dtype), state["second_momentum_buffer"], group["beta2"],
                                getattr(p, "row_blocks", 1))


def build(model, cfg, lr, weight_decay, horizon: int = 0) -> list[Optimizer]:
    """NorMuon on Muon's split of matrices (optimizer.split) with the run's lr and weight decay (floats or
    [E] tensors), AdamW on the rest with adamw_lr and adamw_weight_decay, as muon.build does."""
    matrices = muon_params(model, cfg.split)
    ids = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if id(p) not in ids]
    normuon = BatchedNorMuon(matrices, beta2=cfg.normuon_beta2, lr=lr, weight_decay=weight_decay,
                             momentum=cfg.momentum, nesterov=cfg.nesterov, ns_steps=cfg.ns_steps,
                             ns_coefficients=cfg.ns_coefficients, adjust_lr=cfg.adjust_lr,
                             ns_dtype=ns_dtype(cfg.ns_dtype, matrices[0].device))
    return [normuon, adamw(rest, cfg, cfg.adamw_lr, cfg.adamw_weight_decay, horizon)]

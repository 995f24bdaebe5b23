"""Per-epoch probes of each member's weights and logits: what the paper's explanations of Muon's edge are
about (spectral-norm control; the numerical trouble of softmax, Prieto et al. 2025), measured beside the
accuracies. Each probe is a small pure function returning one value per member [E]; the trainer calls
`weight_probes` after each epoch and `logit_probes` inside its evaluation (the logits are already there).

  weight_norm            Frobenius norm of all of a member's weights (every parameter)
  norm_embed/_attn/_mlp/_head   the same per group: token embedding; attention q, k, v, o; MLP w1, w3, w2;
                         output head (norm gains are in weight_norm only)
  spectral_max           largest spectral norm ||W||_2 over the hidden matrices, each block as Muon sees it
                         (q, k, v and w1, w3 separately, as if separate layers)
  stable_rank_mean       mean over the same blocks of ||W||_F^2 / ||W||_2^2 (1: rank one; up to min(m, n))
  logit_scale            mean over the training rows of the largest logit
  softmax_collapse       share of training rows whose correct-class softmax probability is exactly 1.0 in
                         float32: the gradient of the cross-entropy there is exactly 0 (floating-point
                         absorption). Measured on softmax of the logits whatever the head.
  lr_factor              the warm-up factor in force at the epoch's last step (1 after warm-up)

`update_spectra` (not yet called by the trainer) gives the mean stable rank of the update an optimizer
step applied and of the gradient it was given, over the same blocks (issue 22, item 3).
"""
from __future__ import annotations

import torch

WEIGHT_PROBES = ("weight_norm", "norm_embed", "norm_attn", "norm_mlp", "norm_head", "spectral_max",
                 "stable_rank_mean")
LOGIT_PROBES = ("logit_scale", "softmax_collapse")
PROBES = (*WEIGHT_PROBES, *LOGIT_PROBES, "lr_factor")
UPDATE_PROBES = ("update_stable_rank", "grad_stable_rank")      # update_spectra's, through UpdateWatch


def _sq(p: torch.Tensor) -> torch.Tensor:
    return p.detach().float().pow(2).flatten(1).sum(1)


def blocks(p: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """A hidden matrix [E, rows, cols] as its k blocks [E, k, rows/k, cols] (fused q, k, v: k = 3);
    k defaults to the parameter's row_blocks."""
    k = getattr(p, "row_blocks", 1) if k is None else k
    return p.detach().float().view(p.shape[0], k, p.shape[1] // k, p.shape[2])


def spectra(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(||B||_2, stable rank ||B||_F^2 / ||B||_2^2) of each matrix of b [..., m, n], batched over the
    leading axes. A matrix with a NaN or inf gives NaN for both (a diverged member: NaN, not an error);
    the zero matrix has stable rank 0."""
    finite = b.isfinite().flatten(-2).all(-1)
    s2 = torch.linalg.matrix_norm(torch.where(finite[..., None, None], b, 0.0), ord=2)
    s2 = torch.where(finite, s2, float("nan"))
    return s2, b.pow(2).sum((-2, -1)) / s2.pow(2).clamp(min=1e-30)


@torch.no_grad()
def weight_probes(model) -> dict[str, torch.Tensor]:
    groups = {"norm_embed": [model.embed], "norm_head": [model.head],
              "norm_attn": [l[k] for l in model.layers for k in ("wqkv", "wo")],
              "norm_mlp": [l[k] for l in model.layers for k in ("w13", "w2")]}
    out = {name: torch.stack([_sq(p) for p in ps]).sum(0).sqrt() for name, ps in groups.items()}
    out["weight_norm"] = torch.stack([_sq(p) for p in model.parameters()]).sum(0).sqrt()
    spectral, stable = [], []
    for p in model.hidden_matrices():
        s2, sr = spectra(blocks(p))                                        # [E, k] each
        spectral.append(s2)
        stable.append(sr)
    out["spectral_max"] = torch.cat(spectral, 1).amax(1)
    out["stable_rank_mean"] = torch.cat(stable, 1).mean(1)
    return out


@torch.no_grad()
def update_spectra(before: list[torch.Tensor], after: list[torch.Tensor], grads: list[torch.Tensor],
                   row_blocks: list[int]) -> dict[str, torch.Tensor]:
    """Per member [E], over the hidden-matrix blocks as Muon sees them (q, k, v and w1, w3 separately;
    row_blocks[i] blocks in matrix i, model.hidden_matrices' row_blocks):
      update_stable_rank  mean stable rank of after - before, the update one optimizer step applied
                          (lr times the optimizer's direction, plus its decoupled weight decay)
      grad_stable_rank    mean stable rank of the gradient that step was given
    Stable rank is scale-free, so the learning rate does not enter. Lists hold [E, rows, cols] tensors."""
    upd = [spectra(blocks(a.float() - b.float(), k))[1] for b, a, k in zip(before, after, row_blocks)]
    grd = [spectra(blocks(g, k))[1] for g, k in zip(grads, row_blocks)]
    return {"update_stable_rank": torch.cat(upd, 1).mean(1), "grad_stable_rank": torch.cat(grd, 1).mean(1)}


class UpdateWatch:
    """update_spectra of one optimizer step of the model's hidden matrices: made before the step (it keeps
    their weights and hooks their gradients; with member groups the last accumulation is the whole
    gradient), read after it (finish). The hooks only copy: the step's numbers do not change."""

    def __init__(self, model):
        self.params = model.hidden_matrices()
        self.before = [p.detach().clone() for p in self.params]
        self.grads: list[torch.Tensor | None] = [None] * len(self.params)
        self.hooks = [p.register_post_accumulate_grad_hook(self._keep(i)) for i, p in enumerate(self.params)]

    def _keep(self, i: int):
        def keep(p):
            self.grads[i] = p.grad.detach().clone()
        return keep

    @torch.no_grad()
    def finish(self) -> dict[str, torch.Tensor]:
        for h in self.hooks:
            h.remove()
        return update_spectra(self.before, [p.detach() for p in self.params], self.grads,
                              [getattr(p, "row_blocks", 1) for p in self.params])


@torch.no_grad()
def logit_sums(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per member and row [E, n]: the largest logit, and whether the correct class's float32 softmax
    probability is exactly 1.0. The trainer sums them over the training rows of each chunk."""
    z = logits.float()
    p_true = torch.softmax(z, dim=-1).gather(-1, labels[..., None])[..., 0]
    return {"logit_scale": z.amax(-1), "softmax_collapse": (p_true == 1.0).float()}

"""AdamW with ⊥Grad (optimizer.orthogonal_grad, arXiv 2501.04697) against a plain reference written here:
per member, per weight, the gradient without its part along the weight, rescaled to its norm, then
torch.optim.AdamW on that member's slice; and the key from the config to the optimizer."""
from __future__ import annotations

import pytest
import torch

from grokmuon.config import ConfigError, validate
from grokmuon.optim import BatchedAdamW, build_optimizers
from grokmuon.train import build_model


def plain_perp(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """One member's ⊥Grad, entry by entry over the flattened weight."""
    w, g = w.flatten().tolist(), g.flatten().tolist()
    dot = sum(a * b for a, b in zip(w, g))
    ww = sum(a * a for a in w)
    perp = [b - dot / ww * a for a, b in zip(w, g)]
    scale = sum(b * b for b in g) ** 0.5 / sum(b * b for b in perp) ** 0.5
    return torch.tensor([x * scale for x in perp])


@pytest.mark.parametrize("shape", [(3, 6, 5), (2, 7)], ids=["matrix", "gain"])
def test_adamw_orthogonal_grad_equals_plain_reference_per_member(shape):
    E = shape[0]
    lr, wd, betas = 1e-2, 0.5, (0.9, 0.98)
    w0 = torch.randn(shape)
    grads = [torch.randn(shape) * 10.0 ** (s - 2) for s in range(4)]
    p = torch.nn.Parameter(w0.clone())
    opt = BatchedAdamW([p], lr=lr, betas=betas, weight_decay=wd, orthogonal_grad=True)
    refs = [torch.nn.Parameter(w0[e].clone()) for e in range(E)]
    ref_opt = torch.optim.AdamW(refs, lr=lr, betas=betas, weight_decay=wd)
    for g in grads:
        for e, q in enumerate(refs):
            q.grad = plain_perp(q.detach(), g[e]).view_as(q)
            assert abs(float((q.grad * q.detach()).sum())) < 1e-4 * float(g[e].norm() * q.detach().norm())
        p.grad = g.clone()
        opt.step()
        ref_opt.step()
    torch.testing.assert_close(p.detach(), torch.stack([q.detach() for q in refs]), rtol=1e-5, atol=1e-6)
    plain = torch.nn.Parameter(w0.clone())                      # ⊥Grad changes the path
    plain_opt = BatchedAdamW([plain], lr=lr, betas=betas, weight_decay=wd)
    for g in grads:
        plain.grad = g.clone()
        plain_opt.step()
    assert not torch.allclose(plain.detach(), p.detach(), atol=1e-4)


def test_orthogonal_grad_reaches_adamw_and_is_adamws_alone(compose_cfg):
    cfg = compose_cfg("optimizer=adamw", "optimizer.orthogonal_grad=true", "task=modadd", "task.p=13")
    validate(cfg)
    (opt,) = build_optimizers(build_model(cfg, [0], torch.device("cpu")), cfg.optimizer)
    assert opt.orthogonal_grad
    cfg = compose_cfg("optimizer=adamw", "task=modadd", "task.p=13")
    (opt,) = build_optimizers(build_model(cfg, [0], torch.device("cpu")), cfg.optimizer)
    assert not opt.orthogonal_grad
    with pytest.raises(ConfigError, match="orthogonal_grad"):
        validate(compose_cfg("optimizer=muon", "optimizer.orthogonal_grad=true", "task=modadd", "task.p=13"))

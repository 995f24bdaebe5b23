"""The update's spectrum (probes.UpdateWatch): the stable rank of the update one optimizer step applied to
the hidden matrices, and of the gradient it was given, blocks as Muon sees them; in a run, on the first step
of every probe_every-th epoch."""
from __future__ import annotations

import pandas as pd
import torch

from grokmuon.job import main as train_main
from grokmuon.model import EnsembleTransformer, ModelShape
from grokmuon.probes import UpdateWatch


def plain_stable_rank(m: torch.Tensor) -> float:
    s = torch.linalg.svdvals(m.double())
    return float((s ** 2).sum() / s[0] ** 2)


def test_an_sgd_step_has_its_gradients_spectrum_by_a_plain_recomputation():
    torch.manual_seed(0)
    shape = ModelShape(vocab=13, seq_len=4, n_layers=1, d_model=16, n_heads=2, d_mlp=32, dropout=0.0, rope_base=1e4)
    model = EnsembleTransformer(shape, [torch.Generator().manual_seed(s) for s in (0, 1)])
    x = torch.randint(0, 13, (8, 4))
    watch = UpdateWatch(model)
    loss = model(x).float().logsumexp(-1).sum()
    loss.backward()
    grads = {id(p): p.grad.clone() for p in model.hidden_matrices()}
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad                                   # plain SGD: the update is -0.1 x the gradient
    out = watch.finish()
    for e in range(2):                                          # q, k, v and w1, w3 are blocks of their own
        ranks = []
        for p in model.hidden_matrices():
            k = getattr(p, "row_blocks", 1)
            ranks += [plain_stable_rank(b) for b in grads[id(p)][e].chunk(k, 0)]
        expected = sum(ranks) / len(ranks)
        assert abs(float(out["grad_stable_rank"][e]) - expected) < 1e-4 * expected
        assert abs(float(out["update_stable_rank"][e]) - expected) < 1e-3 * expected   # scale-free


def test_a_run_writes_the_update_spectrum_on_probe_epochs(tmp_path):
    folder = tmp_path / "run"
    try:
        train_main(["model=tiny", "logger=none", "progress=false", "device=cpu", "task.p=13", "batch_size=32",
                    "task=modadd", "optimizer=muon", "optimizer.weight_decay=0", "max_epochs=5", "probe_every=2",
                    "patience=0", "seeds=[0,1]", f"hydra.run.dir={folder}"])
    except SystemExit as e:
        assert e.code in (0, None)
    m = pd.read_csv(folder / "metrics.csv")
    assert sorted(m.loc[m["update_stable_rank"].notna(), "epoch"].unique()) == [2, 4, 5]    # and the budget
    probed = m[m["update_stable_rank"].notna()]
    # Muon's update is its orthogonalised momentum: a far flatter spectrum than the raw gradient's (seen:
    # 9-12 against 1.1-1.6 on blocks of 32 rows or columns)
    assert (probed["update_stable_rank"] > 3 * probed["grad_stable_rank"]).all()

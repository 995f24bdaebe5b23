"""Probes against plain recomputation from the weights and logits; they reach metrics.csv."""
from __future__ import annotations

import math

import pytest
import torch

from grokmuon import probes
from grokmuon.train import Data, build_model, evaluate, train
from conftest import compose_config

CPU = torch.device("cpu")


# The groups of the README's probe table, by parameter name: attention q, k, v (fused) and o; MLP w1, w3
# (fused) and w2; norm gains only in weight_norm.
GROUPS = {"norm_embed": ["embed"], "norm_head": ["head"], "norm_attn": ["wqkv", "wo"], "norm_mlp": ["w13", "w2"]}


def test_weight_probes_equal_a_plain_recomputation():
    cfg = compose_config("task=modadd", "task.p=13", "model.n_layers=2", "seeds=[0,1,2]")
    model = build_model(cfg, [0, 1, 2], CPU)
    with torch.no_grad():                                   # members must differ, each group on its own
        model.layers[0]["wo"][1].mul_(3.0)
        model.layers[1]["w2"][2].mul_(2.0)
        model.head[0].mul_(0.5)
    got = probes.weight_probes(model)
    named = {n: p.detach() for n, p in model.named_parameters()}
    for e in range(3):
        def norm(names):
            return math.sqrt(sum(float((p[e].double() ** 2).sum()) for n, p in named.items()
                                 if n.rsplit(".", 1)[-1] in names))
        assert got["weight_norm"][e].item() == pytest.approx(norm({n.rsplit(".", 1)[-1] for n in named}), rel=1e-5)
        for probe, names in GROUPS.items():
            assert got[probe][e].item() == pytest.approx(norm(names), rel=1e-5), (probe, e)
        sigmas, ranks = [], []
        for p in model.hidden_matrices():
            k = getattr(p, "row_blocks", 1)
            for block in p[e].detach().double().chunk(k, dim=0):      # q, k, v (w1, w3) separately
                s = torch.linalg.svdvals(block)
                sigmas.append(float(s[0]))
                ranks.append(float((s ** 2).sum() / s[0] ** 2))
        assert got["spectral_max"][e].item() == pytest.approx(max(sigmas), rel=1e-4)
        assert got["stable_rank_mean"][e].item() == pytest.approx(sum(ranks) / len(ranks), rel=1e-4)
    assert got["norm_attn"][1] > got["norm_attn"][0] and got["norm_mlp"][2] > got["norm_mlp"][0]
    assert got["norm_head"][0] < got["norm_head"][1]


def test_softmax_collapse_counts_rows_whose_probability_rounds_to_one():
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 2] = 200.0          # correct class 2, far ahead: p rounds to exactly 1.0 in float32
    logits[0, 1, 1] = 5.0            # ahead but not absorbed
    logits[0, 2, 0] = 200.0          # far ahead but the wrong class: p(correct) = 0
    sums = probes.logit_sums(logits, torch.tensor([[2, 1, 3]]))
    assert sums["softmax_collapse"].tolist() == [[1.0, 0.0, 0.0]]
    assert sums["logit_scale"].tolist() == [[200.0, 5.0, 200.0]]


def test_evaluate_reports_logit_probes_over_training_rows():
    cfg = compose_config("task=modadd", "task.p=13", "seeds=[0,1]")
    data, model = Data(cfg, [0, 1], CPU), build_model(cfg, [0, 1], CPU)
    got = evaluate(model, data, cfg, CPU)
    with torch.no_grad():
        logits = model.eval()(data.inputs)                               # [E, n, V]
    for e in range(2):
        rows = data.is_train[e]
        assert got["logit_scale"][e].item() == pytest.approx(float(logits[e][rows].max(-1).values.mean()), rel=1e-5)
        assert got["softmax_collapse"][e].item() == 0.0                  # an untrained model is far from it


def test_probes_reach_metrics_csv(tmp_path):
    import csv

    from grokmuon.runfolder import RunLog
    from omegaconf import OmegaConf
    cfg = compose_config("task=modadd", "task.p=13", "seeds=[0,1]", "max_epochs=2")
    log = RunLog(tmp_path, OmegaConf.to_container(cfg, resolve=True), "cpu")
    results = train(cfg, on_epoch=log.log_epoch)
    log.finish(results)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert len(rows) == 4
    for name in probes.PROBES:
        assert all(r[name] not in ("", None) and math.isfinite(float(r[name])) for r in rows), name
    # Linear warm-up over warmup_steps steps: after k steps the factor is k / warmup_steps. modadd mod 13
    # at train_frac 0.8 has 135 training rows, one batch (512 rows at most): one step an epoch.
    assert (cfg.optimizer.warmup_steps, cfg.batch_size, cfg.task.train_frac) == (10, 512, 0.8)
    assert [float(r["lr_factor"]) for r in rows] == pytest.approx([0.1, 0.1, 0.2, 0.2])

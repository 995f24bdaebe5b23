"""The benchmark's plain reference model and our fast ensemble path compute the same function, and the
benchmark runs end to end and writes its table."""
import json

import pytest
import torch

from grokmuon.bench import RefModel, main, model_flops_per_epoch
from grokmuon.model import EnsembleTransformer, ModelShape


def _copy_member(src: EnsembleTransformer, e: int, dst: RefModel) -> None:
    """Load member e's weights into the plain nn.Module model (fused blocks split back into Linears)."""
    D = src.shape.d_model
    with torch.no_grad():
        dst.emb.weight.copy_(src.embed[e])
        dst.out.weight.copy_(src.head[e])
        dst.norm.weight.copy_(src.final_norm[e])
        for layer, block in zip(src.layers, dst.blocks):
            q, k, v = layer["wqkv"][e].split(D)
            block.q.weight.copy_(q), block.k.weight.copy_(k), block.v.weight.copy_(v)
            block.o.weight.copy_(layer["wo"][e])
            w1, w3 = layer["w13"][e].chunk(2)
            block.w1.weight.copy_(w1), block.w3.weight.copy_(w3)
            block.w2.weight.copy_(layer["w2"][e])
            block.n1.weight.copy_(layer["attn_norm"][e]), block.n2.weight.copy_(layer["mlp_norm"][e])


def test_fast_path_equals_plain_path():
    shape = ModelShape(vocab=13, seq_len=4, n_layers=2, d_model=32, n_heads=4, d_mlp=64, dropout=0.0)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4, 5)]
    ours = EnsembleTransformer(shape, gens).eval()
    tokens = torch.randint(0, 13, (16, 4), generator=torch.Generator().manual_seed(0))
    fast = ours(tokens)                                     # [3, 16, 13]
    for e in range(3):
        ref = RefModel(13, 4, 2, 32, 4, 64, 0.0).eval()
        _copy_member(ours, e, ref)
        torch.testing.assert_close(fast[e], ref(tokens), rtol=1e-5, atol=1e-5)


def test_last_position_shortcut_saves_flops():
    full = model_flops_per_epoch(4704, 9409, 4, 2, 128, 512, 99, last_only=False)
    short = model_flops_per_epoch(4704, 9409, 4, 2, 128, 512, 99, last_only=True)
    assert 0.5 * full < short < 0.8 * full


def test_bench_runs_and_writes_its_table_and_profile(tmp_path, capsys):
    main(["--task", "parity", "--models", "tiny", "--members", "1,2", "--epochs", "1", "--rounds", "1",
          "--peak-size", "128", "--profile", "--compile", "off", "--out", str(tmp_path)])
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("bench-*.json")]
    names = [r["name"] for r in record["rows"]]
    assert names[0].startswith("(a)") and len(names) == 8 and {r["model"] for r in record["rows"]} == {"tiny"}
    assert {"grokmuon Muon", "delay phase, eval_train=lazy", "grokmuon AdamW, probes off",
            "grokmuon AdamW, checkpoint/epoch"} <= set(names)
    assert all(r["member_epochs_per_s"] > 0 for r in record["rows"])
    # every case counts what it dispatched: a few hundred aten ops a step at least, no CUDA launches here
    by = {(r["name"], r["members"]): r for r in record["rows"]}
    assert all(r["ops_per_member_epoch"] > 100 and r["launches_per_member_epoch"] == 0 for r in record["rows"])
    # two members in one ensemble dispatch the same ops as one: half as many per member-epoch, roughly
    assert by[("(c) grokmuon AdamW", 2)]["ops_per_member_epoch"] < 0.7 * by[("(b) grokmuon AdamW", 1)]["ops_per_member_epoch"]
    assert set(record["matmul_peak_gflops"]) == {"float32", "bfloat16"}
    for prof in record["profiles"]:         # the phases were seen and fit inside the profiled epoch
        assert prof["phases"]["forward"] > 0 and prof["phases"]["backward"] > 0 and prof["phases"]["evaluate"] > 0
        assert sum(prof["phases"].values()) <= prof["s_per_epoch_profiled"] * 1.05
        assert prof["ops"] and all(o["self_s_per_epoch"] >= 0 for o in prof["ops"])
    assert [p["optimizer"] for p in record["profiles"]] == ["adamw", "muon"]
    assert "Newton-Schulz" in capsys.readouterr().out


def test_bench_times_the_model_the_trainer_builds_from_the_same_config(compose_cfg):
    from grokmuon.bench import model_shape
    from grokmuon.train import build_model
    for name in ("default", "small"):
        s = build_model(compose_cfg(f"model={name}"), [0], torch.device("cpu")).shape
        assert model_shape(name) == (s.n_layers, s.d_model, s.n_heads, s.d_mlp, s.dropout)


def test_every_row_times_its_own_model(tmp_path, monkeypatch):
    """Each row of a model's table runs that model (a row built in a loop once ran the last model)."""
    import grokmuon.bench as bench
    calls = []
    monkeypatch.setattr(bench, "ours_epochs", lambda task, frac, model, *a, **kw: calls.append(("ours", model)) or 1.0)
    monkeypatch.setattr(bench, "reference_epochs", lambda task, p, frac, shape, *a: calls.append(("ref", shape)) or 1.0)
    monkeypatch.setattr(bench, "matmul_peak", lambda *a: 1e9)
    monkeypatch.setattr(bench, "count_dispatches", lambda *a: {"ops_per_member_epoch": 1.0,
                                                               "launches_per_member_epoch": 0.0})
    main(["--task", "parity", "--models", "tiny,small", "--members", "1,2", "--rounds", "1", "--out", str(tmp_path)])
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("bench-*.json")]
    per_model = len(record["rows"]) // 2
    ours = [m for kind, m in calls if kind == "ours"]
    assert ours == ["tiny"] * (per_model - 1) + ["small"] * (per_model - 1)
    refs = [shape for kind, shape in calls if kind == "ref"]
    assert refs == [bench.model_shape("tiny"), bench.model_shape("small")]
    assert [r["model"] for r in record["rows"]] == ["tiny"] * per_model + ["small"] * per_model


def test_dispatch_counts_per_member_epoch():
    from grokmuon.bench import dispatch_counts
    events = [("aten::mm", 40), ("aten::add_", 20), ("graph_0_cpp_fused_add_0", 4), ("cudaLaunchKernel", 30),
              ("cudaGraphLaunch", 2), ("grokmuon.forward", 10), ("Optimizer.step", 5)]
    assert dispatch_counts(events, epochs=2, members=4) == {"ops_per_member_epoch": (40 + 20 + 4) / 8,
                                                            "launches_per_member_epoch": (30 + 2) / 8}


def test_the_plan_puts_the_compiled_step_beside_its_eager_twin():
    from grokmuon.bench import plan
    names = [(c.name.strip(), c.members, c.options.get("extra")) for c in plan(["tiny"], [1, 8])]
    assert ("grokmuon AdamW, compile=step", 8, ("compile=step",)) in names
    assert ("grokmuon AdamW, hash masks", 8, ("dropout_masks=hash",)) in names
    assert not any("compile" in n for n, _, _ in [(c.name, 0, 0) for c in plan(["tiny"], [1, 8], compiled=False)])


@pytest.mark.slow
def test_bench_times_and_counts_the_compiled_step(tmp_path, capsys):
    """The compiled step as a bench case (minutes on a CPU: inductor compiles it): timed, counted, and
    its ratio to the eager step printed."""
    main(["--task", "parity", "--models", "tiny", "--members", "2", "--epochs", "1", "--rounds", "1",
          "--peak-size", "64", "--out", str(tmp_path)])
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("bench-*.json")]
    comp = next(r for r in record["rows"] if r["name"] == "grokmuon AdamW, compile=step")
    assert comp["members"] == 2 and comp["member_epochs_per_s"] > 0 and comp["ops_per_member_epoch"] > 0
    assert "compile=step against eager at 2 members" in capsys.readouterr().out


def test_bench_times_and_profiles_any_arms_of_a_plan(tmp_path, capsys, monkeypatch):
    """--arms: the named arms of the plan (conf/tune_arms.yaml), each a row at one member trained with its
    overrides, and each profiled after AdamW; Muon's row and line only when it is among them."""
    import grokmuon.bench as bench
    seen = []
    real = bench.compose_train
    monkeypatch.setattr(bench, "compose_train", lambda overrides: seen.append(list(overrides)) or real(overrides))
    main(["--task", "parity", "--models", "tiny", "--members", "1", "--epochs", "1", "--rounds", "1",
          "--peak-size", "64", "--compile", "off", "--profile", "--arms", "muon_nomomentum,adamw_grokfast",
          "--out", str(tmp_path)])
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("bench-*.json")]
    names = [r["name"] for r in record["rows"]]
    assert {"grokmuon muon_nomomentum", "grokmuon adamw_grokfast"} <= set(names) and "grokmuon Muon" not in names
    assert [p["arm"] for p in record["profiles"]] == ["adamw", "muon_nomomentum", "adamw_grokfast"]
    assert any("optimizer=muon" in o and "optimizer.momentum=0" in o for o in seen)
    assert any("optimizer=adamw" in o and "grokfast=ema" in o for o in seen)
    out = capsys.readouterr().out
    assert "muon_nomomentum: " in out and "Muon's Newton-Schulz" not in out


def test_an_unknown_arm_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--arms", "muon,nosuch", "--models", "tiny"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch" in err[0] and "muon_nomomentum" in err[0]

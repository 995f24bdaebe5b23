"""A run's identity survives new keys: the committed run folders keep their hashes when the schema gains a
key with a default, at any depth, and a re-run of a committed sweep trains nothing."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from omegaconf import OmegaConf

from grokmuon import config as config_module
from grokmuon.config import Config, OptimizerConfig
from grokmuon.runid import HASHED_V1, config_hash, identity, member_hash, schema_defaults, with_defaults

from conftest import REPO, compose_config

COMMITTED = sorted(p.parent for p in (REPO / "multirun").glob("*/*/summary.json"))


def committed():
    assert COMMITTED, "no committed run folders to check"
    for f in COMMITTED:
        yield f, json.loads((f / "config.json").read_text()), json.loads((f / "summary.json").read_text())


def full(values: dict) -> dict:
    """A whole config: the schema's defaults with these values."""
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(Config), values), resolve=True)


def test_with_defaults_fills_only_keys_added_since_version_one():
    old = {"task": {"name": "modadd"}, "optimizer": {"name": "adamw"}, "seeds": [0]}
    filled = with_defaults(old)
    assert filled["stop"] == "patience" and filled["dropout_masks"] == "auto" and filled["race_round"] == 0
    assert filled["grid"] == {"lr": None, "weight_decay": None}
    assert filled["task"] == {"name": "modadd"}                                              # v1: as written
    assert filled["optimizer"] == {"name": "adamw", "split": "hidden",     # nested keys added later: filled
                                   "normuon_beta2": 0.95, "orthogonal_grad": False}


def patched_schema(knob_default=0.5):
    """The schema with one nested key added (optimizer.new_knob) and one new nested group (extra.*), as a
    later change would add them: each with a default."""
    Opt = dataclasses.make_dataclass("Opt", [("new_knob", float, dataclasses.field(default=knob_default))],
                                     bases=(OptimizerConfig,))
    Extra = dataclasses.make_dataclass("Extra", [("alpha", float, dataclasses.field(default=0.98)),
                                                 ("name", str, dataclasses.field(default="none"))])
    return dataclasses.make_dataclass("Patched", [
        ("optimizer", Opt, dataclasses.field(default_factory=Opt)),
        ("extra", Extra, dataclasses.field(default_factory=Extra))], bases=(Config,))


def test_the_frozen_leaves_are_schema_leaves():
    # Version 1's leaves all still exist: a key is never taken out of the hash by renaming it.
    assert HASHED_V1 <= set(config_module.leaves())


def test_committed_runs_recomposed_with_todays_schema_keep_their_hashes():
    # What a re-run of the sweep composes: the stored values, every key the schema has now (at its
    # default where the run predates it). The stored config.json alone would hide a new key.
    for f, cfg, summary in committed():
        today = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(Config), cfg), resolve=True)
        assert config_hash(today) == summary["config_hash"] == f.name.rsplit("-", 1)[1], f
        assert config_hash(with_defaults(cfg)) == summary["config_hash"], f


def test_a_nested_key_added_with_a_default_renames_no_committed_run():
    Patched = patched_schema()
    defaults = schema_defaults(Patched)
    assert defaults["optimizer"]["new_knob"] == 0.5 and defaults["extra"] == {"alpha": 0.98, "name": "none"}
    for f, cfg, summary in committed():
        now = with_defaults(cfg, defaults)
        assert now["optimizer"]["new_knob"] == 0.5 and now["extra"]["alpha"] == 0.98
        assert config_hash(now, defaults) == summary["config_hash"], f
        for m in summary["members"][:1]:
            assert member_hash(now, m["seed"], m.get("lr"), m.get("weight_decay")) != ""
    # ... while a run that sets the new key to another value is another run.
    f, cfg, summary = next(committed())
    now = with_defaults(cfg, defaults)
    other = {**now, "optimizer": {**now["optimizer"], "new_knob": 0.7}}
    assert config_hash(other, defaults) != summary["config_hash"]
    other = {**now, "extra": {**now["extra"], "name": "ema"}}
    assert config_hash(other, defaults) != summary["config_hash"]


def test_identity_keeps_version_one_keys_and_unknown_keys_and_drops_added_ones_at_default():
    defaults = schema_defaults()
    cfg = full({"task": {"name": "modadd"}, "seeds": [0]})
    kept = identity(cfg, defaults)
    assert kept["task"]["p"] == 97 and kept["seeds"] == [0] and kept["optimizer"]["lr"] == 1e-3
    assert "grid" not in kept and "stop" not in kept and "dropout_masks" not in kept      # added, at default
    assert "logger" not in kept and "device" not in kept                                  # not results
    # A node added as a whole is hashed as a whole once any of it differs (as the grid always was).
    grid = identity({**cfg, "grid": {"lr": [0.1], "weight_decay": None}}, defaults)["grid"]
    assert grid == {"lr": [0.1], "weight_decay": None}
    assert identity({**cfg, "member": [0, 0.1, 1.0]}, defaults)["member"] == [0, 0.1, 1.0]
    assert identity({**cfg, "stop": "race"}, defaults)["stop"] == "race"


def test_a_rerun_of_a_committed_sweep_with_a_new_nested_key_trains_nothing(tmp_path, monkeypatch, capsys):
    # The gcd/AdamW cells of experiment=heads_tuned, copied so that nothing tracked is written to, re-run
    # by their own command under a schema that has gained optimizer.new_knob and extra.*.
    cells = sorted((REPO / "multirun" / "heads_tuned").glob("gcd-adamw-*"))
    assert len(cells) == 2
    sweep = tmp_path / "sweep"
    for c in cells:
        shutil.copytree(c, sweep / c.name)
    before = {c.name: (c / "summary.json").read_bytes() for c in cells}
    # their setting, read from them: the edge re-tuning moves such a cell's setting (and the cell) now and then
    settings = {(o["lr"], o["weight_decay"]) for o in (json.loads((c / "config.json").read_text())["optimizer"]
                                                       for c in cells)}
    assert len(settings) == 1
    (lr, wd), = settings
    command = ["experiment=heads_tuned", "task=gcd", "optimizer=adamw", f"optimizer.lr={lr}",
               f"optimizer.weight_decay={wd}"]
    monkeypatch.setattr(config_module, "Config", patched_schema())
    import grokmuon.train

    def no_training(*args, **kwargs):
        raise AssertionError("a committed cell was trained again")
    monkeypatch.setattr(grokmuon.train, "train", no_training)
    from grokmuon.cli import main
    try:
        config_module.register_configs()       # Hydra composes from the patched schema from now on
        composed = compose_config(*command, shrink=False)
        assert composed.optimizer.new_knob == 0.5 and composed.extra.alpha == 0.98
        try:
            main(["train", "-m", *command, f"hydra.sweep.dir={sweep}"])
        except SystemExit as e:
            assert e.code in (0, None)
    finally:
        monkeypatch.undo()
        config_module.register_configs()
    out = capsys.readouterr().out
    assert out.count("skip:") == 2, out
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == sorted(before)
    for name, data in before.items():
        assert (sweep / name / "summary.json").read_bytes() == data
        assert not (sweep / name / "metrics.csv.partial").exists()


@pytest.mark.parametrize("key", ["optimizer.momentum", "task.p", "seeds"])
def test_a_version_one_key_at_its_default_is_still_hashed(key):
    # Version 1 hashed every key: leaving one out at its default would rename the runs that hold it.
    cfg = full({"task": {"name": "modadd"}})
    top, _, rest = key.partition(".")
    assert (rest in identity(cfg)[top]) if rest else (top in identity(cfg))

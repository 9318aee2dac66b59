import pytest

from latentcot.config import Config, ConfigError, all_keys, apply_overrides, describe, load_config, save_config


def test_defaults_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ntrain:\n  lr: 3e-4\n  epochs: 2\nmodel:\n  preset: cpu-small\n")
    cfg = load_config(path, ["train.epochs=7", "model.arch=llama", "data.train=x.json"])
    assert cfg.seed == 3
    assert cfg.train.lr == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as a string; we still get a float
    assert cfg.train.epochs == 7
    assert cfg.model.preset == "cpu-small" and cfg.model.arch == "llama"
    assert cfg.data.train == "x.json"
    assert cfg.train.batch_size == Config().train.batch_size


def test_save_and_reload_is_identity(tmp_path):
    cfg = apply_overrides(Config(), ["train.lr=0.002", "method.name=coconut"])
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize("override,message", [
    ("train.lrr=1", "unknown config key 'train.lrr'; did you mean 'train.lr'?"),
    ("trian.lr=1", "did you mean 'train'?"),
    ("epochs=3", "did you mean 'train.epochs'?"),
    ("train.lr=fast", "config key 'train.lr': expected a number"),
    ("train.epochs=2.5", "config key 'train.epochs': expected an integer"),
    ("model.source=scrach", "did you mean 'scratch'?"),
    ("train=1", "is a section"),
    ("train.lr.x=1", "has no sub-keys"),
    ("train.lr", "key=value"),
])
def test_bad_override_names_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), [override])
    assert message in str(info.value)


def test_bad_yaml_key_and_type_name_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'train.batch_sise'; did you mean 'train.batch_size'"):
        load_config(path)
    path.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: config key 'train.epochs': expected an integer"):
        load_config(path)
    path.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_config(path)
    path.write_text("train: 5\n")
    with pytest.raises(ConfigError, match="section 'train' must be a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_bool_overrides():
    from dataclasses import dataclass

    from latentcot.config import option

    @dataclass
    class Flags:
        on: bool = option(False, "a flag")

    assert apply_overrides(Flags(), ["on=true"]).on is True
    assert apply_overrides(Flags(on=True), ["on=no"]).on is False
    with pytest.raises(ConfigError, match="expected true or false"):
        apply_overrides(Flags(), ["on=maybe"])


def test_every_key_is_documented():
    rows = describe()
    assert [r[0] for r in rows] == all_keys()
    assert all(help_text for *_, help_text in rows)


def test_shipped_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("**/*.yaml"))
    assert configs, "configs/ should ship example configs"
    from latentcot.compare import load_plan

    for path in configs:
        if path.parent.name == "compare":
            plan = load_plan(path)
            for name in (plan.base_config, *(run.config for run in plan.runs)):
                if name:
                    load_config(Path(__file__).resolve().parents[1] / name)
        elif path.parent.name != "vqvae":
            load_config(path)

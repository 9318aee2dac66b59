import dataclasses
import random

import pytest

from conftest import REPO
from helpers import RECORD, tok, write_plan  # noqa: F401  (tok is a fixture)
from latentcot.config import (COMMON_METHOD_KEYS, METHOD_KEYS, Config, ConfigError, MethodConfig, all_keys,
                              apply_overrides, describe, load_config, load_run_config, save_config)


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


# -- keys the chosen method does not read -----------------------------------------------------------

def test_a_key_the_method_does_not_read_is_refused_naming_the_methods_that_read_it(tmp_path, capsys):
    from latentcot.cli import main

    with pytest.raises(ConfigError) as info:
        apply_overrides(Config(), ["method.name=cot", "method.halting=true"])
    assert str(info.value) == ("command line: config key 'method.halting' is a coconut or coconut_wo_curriculum "
                               "key; this run's method is cot")
    path = tmp_path / "c.yaml"
    path.write_text("method:\n  name: pause\n  n_pause: 2\n  latents: 4\n")
    with pytest.raises(ConfigError, match=r"c.yaml: config key 'method.latents' is a codi or pccot key; this run's "
                                          r"method is pause$"):
        load_config(path)
    # one line from the command line, not a traceback
    assert main(["config", "show", "method.name=icot", "method.c_thought=2"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: command line: config key 'method.c_thought' is a coconut, coconut_wo_curriculum, "
                   "coconut_wo_thought, coconut_pause_as_thought or pause key; this run's method is icot\n")
    # at its default, or read by the method, a key is fine
    assert load_config(None, ["method.name=cot", "method.c_thought=1", "method.max_new_tokens=9"]).method.c_thought == 1
    assert load_config(None, ["method.name=pause", "method.c_thought=2"]).method.c_thought == 2


def test_a_config_file_written_for_another_method_keeps_only_what_the_new_method_reads(tmp_path):
    path = tmp_path / "coconut.yaml"
    path.write_text("method:\n  name: coconut\n  c_thought: 2\n  epochs_per_stage: 3\n  max_new_tokens: 20\n")
    pause = load_config(path, ["method.name=pause"])
    assert (pause.method.c_thought, pause.method.epochs_per_stage, pause.method.max_new_tokens) == (2, 5, 20)
    cot = load_config(path, ["method.name=cot"])
    assert (cot.method.c_thought, cot.method.epochs_per_stage) == (1, 5) and cot.method.max_new_tokens == 20
    # what the command line itself sets is checked against the method it chooses
    with pytest.raises(ConfigError, match="'method.epochs_per_stage' is a coconut.* key; this run's method is cot"):
        load_config(path, ["method.name=cot", "method.epochs_per_stage=2"])


def test_a_plan_run_that_sets_a_key_its_method_does_not_read_is_refused_when_the_plan_is_read(tmp_path):
    from latentcot.compare import load_plan

    plan = write_plan(tmp_path, [{"name": "cot", "overrides": ["method.name=cot"]},
                                 {"name": "icot", "overrides": ["method.name=icot", "train.init_from=@cot",
                                                                "method.jacobi_iterations=2"]}])
    with pytest.raises(ConfigError, match=r"plan.yaml: runs\[1\] \(icot\) overrides: config key "
                                          r"'method.jacobi_iterations' is a pccot key; this run's method is icot"):
        load_plan(plan)


def test_the_key_table_covers_every_method_and_every_key():
    from latentcot.methods import METHODS

    assert set(METHOD_KEYS) == set(METHODS)
    keys = {f.name for f in dataclasses.fields(MethodConfig)}
    listed = set(COMMON_METHOD_KEYS).union(*METHOD_KEYS.values())
    assert listed == keys, keys ^ listed


# a value away from the default for every method key, valid on its own
OTHER_VALUE = dict(
    c_thought=2, epochs_per_stage=2, start_stage=1, max_latent_stage=2, pad_latent_to_max=True, uniform_prob=0.5,
    reset_optimizer=False, remove_per_epoch=3, removal_smoothing_lambda=1.0, remove_all_when_remove_beyond=5,
    cot_epochs=1, vqvae="x", latent_chunks=[1], n_pause=2, stage_target="frontier", halting=True, halt_weight=2.0,
    halt_threshold=0.9, inference_thoughts=2, max_thoughts=2, thought_feedback="token_mixture",
    teacher_forcing_epochs=1, thought_targets="chain", thought_target_weight=2.0, thought_norm="embedding", latents=2,
    projection=False, projection_dim=3, jacobi_iterations=1, teacher_weight=2.0, distill_weight=2.0, distill_loss="mse",
    step_decoder=True, step_decoder_weight=2.0)
# refused although the method's code looks at them: CODI trains a fixed number of latents, so it has no use for a
# halting head (its rendering would grow the head's targets)
REFUSED_BUT_LOOKED_AT = {("codi", "halting"), ("pccot", "halting")}


def _everything_a_method_renders(method, tok):
    """Schedule, training examples, collated batches and prompts over 12 epochs of two problems."""
    from latentcot.data.records import Record
    from latentcot.methods import tokenize_record

    short = Record("Every a is a b. Tom is a a. Is Tom a b or e?", ["Tom is a a.", "Every a is a b."], "Tom is a b.")
    records = [tokenize_record(r, tok) for r in (RECORD, short)]
    seen = [method.default_thoughts(), method.thought_cap() if method.continuous else None,
            [(method.prompt(r), method.prompt(r, 2)) for r in records]]
    for epoch in range(12):
        examples = [method.train_example(r, epoch, random.Random(epoch)) for r in records]
        batch = method.collate(examples, tok.pad_token_id)
        mask = batch.get("thought_mask")
        seen += [method.stage_at(epoch), method.reset_optimizer_at(epoch), method.eval_thoughts(epoch), examples,
                 {k: v.tolist() if hasattr(v, "tolist") else v for k, v in batch.items()},
                 method.prompt_calls(mask, batch["input_ids"].shape[1]) if mask is not None else None]
    return seen


@pytest.mark.parametrize("name", [m for m in METHOD_KEYS if m != "assorted"])  # assorted needs a VQ-VAE to render
def test_keys_refused_for_a_method_do_not_change_what_it_renders(tok, name):
    """The table refuses only keys the method's code ignores: set to another value, none of them changes the
    method's schedule, examples, batches or prompts."""
    from latentcot.methods import build_method

    assert set(OTHER_VALUE) == {f.name for f in dataclasses.fields(MethodConfig)} - set(COMMON_METHOD_KEYS)
    reference = _everything_a_method_renders(build_method(MethodConfig(name=name), tok), tok)
    changed = []
    for key, value in OTHER_VALUE.items():
        if key in METHOD_KEYS[name] or (name, key) in REFUSED_BUT_LOOKED_AT:
            continue
        method = build_method(dataclasses.replace(MethodConfig(name=name), **{key: value}), tok)
        if _everything_a_method_renders(method, tok) != reference:
            changed.append(key)
    assert not changed, f"{name} reads {changed}: add them to its METHOD_KEYS"


# -- ranges -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("override,message", [
    ("method.halt_threshold=5", "config key 'method.halt_threshold': expected a probability in [0, 1], got 5.0"),
    ("method.max_thoughts=-2", "config key 'method.max_thoughts': expected a count, or -1 for"),
    ("method.uniform_prob=1.5", "config key 'method.uniform_prob': expected a probability in [0, 1], got 1.5"),
    ("method.max_new_tokens=0", "config key 'method.max_new_tokens': expected at least 1, got 0"),
    ("method.step_decoder_weight=-1", "config key 'method.step_decoder_weight': expected at least 0, got -1.0"),
    ("method.name=cocnut", "config key 'method.name': unknown method 'cocnut'; did you mean 'coconut'?"),
])
def test_config_show_refuses_a_value_out_of_range_naming_the_key(capsys, override, message):
    from latentcot.cli import main

    assert main(["config", "show", "method.name=coconut", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: command line: {message}") and err.count("\n") == 1, err


def test_a_file_value_out_of_range_names_the_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method:\n  name: codi\n  latents: 0\n")
    with pytest.raises(ConfigError, match=r"c.yaml: config key 'method.latents': expected at least 1 \(-1 = the "
                                          r"paper's\), got 0$"):
        load_config(path)


# -- shipped configs and models ------------------------------------------------------------------------

def test_every_shipped_config_loads(monkeypatch):
    """Every YAML under configs/ as its command reads it: a run config by ``train``, a comparison plan by
    ``compare`` (with every run's config built as it would be trained), a VQ-VAE config by ``vqvae train``."""
    from pathlib import Path

    from latentcot.compare import load_plan, run_config
    from latentcot.vqvae.config import load_vqvae_config

    monkeypatch.chdir(REPO)  # a plan names its base_config relative to the repository, where it is run
    configs = sorted((REPO / "configs").glob("**/*.yaml"))
    assert len(configs) > 50, "configs/ should ship example configs"
    for path in configs:
        kind = path.relative_to(REPO / "configs").parts[0]
        if kind == "compare":
            plan = load_plan(path)
            finished = {run.name: Path("runs") / run.name for run in plan.runs}
            for run in plan.runs:
                if not run.checkpoint:
                    run_config(plan, run, finished)
        elif kind == "vqvae":
            load_vqvae_config(path)
        else:
            load_config(path)


def test_every_shipped_model_loads_with_the_config_it_saved():
    """A model's config.yaml is read back as the run wrote it: some were trained from a plan's shared base and
    carry keys their method does not read, which a new run's config would refuse."""
    from latentcot.inference import load_run
    from latentcot.methods.assorted import _vqvae_dir

    models = sorted(p.parent for p in (REPO / "models").glob("*/config.yaml"))
    assert models
    refused_as_new = []
    for directory in models:
        saved = load_run_config(directory / "config.yaml")
        cfg, _, _, method = load_run(directory)
        assert cfg == saved and method.name == saved.method.name
        if saved.method.name == "assorted":
            # the export's VQ-VAE is named relative to the model and found there; the config keeps its name
            assert cfg.method.vqvae == "vqvae" and _vqvae_dir(cfg.method, method.run_dir) == directory / "vqvae"
        try:
            load_config(directory / "config.yaml")
        except ConfigError:
            refused_as_new.append(directory.name)
    assert "prosqa-cot" in refused_as_new  # cot with Coconut's uniform_prob: the reason saved configs are exempt


def test_exporting_a_model_whose_config_holds_keys_its_method_ignores(tmp_path):
    import yaml

    from latentcot.training.export import export_model

    source = REPO / "models" / "prosqa-cot"
    out = export_model(source, tmp_path / "again")
    assert yaml.safe_load((out / "config.yaml").read_text()) == yaml.safe_load((source / "config.yaml").read_text())


# -- loaded configs stay as they were read ------------------------------------------------------------

def test_a_loaded_config_cannot_be_changed_in_place(tmp_path):
    cfg = load_config(None, ["method.name=coconut"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.method.halt_threshold = 0.9
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train = None
    assert apply_overrides(cfg, ["method.halt_threshold=0.9"]).method.halt_threshold == 0.9
    assert cfg.method.halt_threshold == 0.5

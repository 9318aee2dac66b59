"""Resuming a run whose checkpoints are damaged: only a damaged file sends a checkpoint aside, nothing set
aside is ever deleted, and a run whose checkpoints all fail stops instead of starting again from step 0."""

from __future__ import annotations

import hashlib
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from helpers import tiny_prosqa, weights
from latentcot.cli import main
from latentcot.config import Config, apply_overrides
from latentcot.data.io import save_records
from latentcot.runs import CheckpointError
from latentcot.training import Trainer, train


def overrides(root: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"output_dir={run_dir}", f"data.train={root / 'train.json'}", "model.preset=tiny",
            "model.n_positions=256", "model.dropout=0.1", "train.batch_size=8", "train.lr=3e-3",
            "train.progress=false", "train.eval_every=0", "seed=0", "method.name=cot", "train.epochs=3", *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A three-epoch run (checkpoints epoch_001 to epoch_003) and its final weights."""
    root = tmp_path_factory.mktemp("quarantine")
    save_records(tiny_prosqa(16, seed=3), root / "train.json")
    trainer = train(apply_overrides(Config(), overrides(root, root / "run")))
    return root, weights(trainer.model)


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run to damage; returns (config, its checkpoints directory)."""
    root, _ = finished
    shutil.copytree(root / "run", tmp_path / "run")
    cfg = apply_overrides(Config(), overrides(root, tmp_path / "run"))
    return cfg, tmp_path / "run" / "checkpoints"


def contents(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    """Flip bytes inside the archive's largest record (a tensor): the file still parses as a zip, and
    torch.load reads it without complaint."""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26:record.header_offset + 30])
    start = record.header_offset + 30 + name_length + extra_length + record.file_size // 2
    data[start:start + 16] = bytes(b ^ 0xFF for b in data[start:start + 16])
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=False)


@pytest.mark.parametrize("name, damage", [
    ("model.safetensors", truncate), ("optimizer.pt", truncate), ("rng.pt", truncate), ("state.json", truncate),
    ("tokenizer.json", truncate), ("optimizer.pt", garble)])
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_run_resumes_exactly(finished, run, capfd, name, damage):
    _, expected = finished
    cfg, checkpoints = run
    damage(checkpoints / "epoch_003" / name)
    before = contents(checkpoints / "epoch_003")
    resumed = Trainer(cfg)
    assert resumed.state.epoch == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == ["corrupt_epoch_003", "epoch_001", "epoch_002"]
    assert contents(checkpoints / "corrupt_epoch_003") == before
    err = capfd.readouterr().err
    assert f"skipping checkpoint epoch_003: {checkpoints / 'epoch_003' / name}" in err
    resumed.fit()
    got = weights(resumed.model)
    assert all(torch.equal(expected[key], got[key]) for key in expected)


@pytest.mark.parametrize("error", [MemoryError(), ModuleNotFoundError("No module named 'torch.optim.adamw_v1'")],
                         ids=["out-of-memory", "unpickling-after-an-upgrade"])
@pytest.mark.parametrize("newest", ["intact", "truncated"])
def test_an_error_that_is_not_damage_moves_nothing_and_stops_the_run(run, monkeypatch, error, newest):
    cfg, checkpoints = run
    if newest == "truncated":
        truncate(checkpoints / "epoch_003" / "model.safetensors")
    before = contents(checkpoints)

    def load(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "load", load)
    with pytest.raises(type(error)) as raised:
        Trainer(cfg)
    assert raised.value is error  # the error itself, with its traceback, not a summary of it
    assert contents(checkpoints) == before


def test_two_damaged_checkpoints_of_one_name_are_both_kept(run):
    cfg, checkpoints = run
    for n in range(3):
        if n:  # a later epoch_003, written anew and damaged again
            shutil.copytree(checkpoints / "epoch_002", checkpoints / "epoch_003")
        (checkpoints / "epoch_003" / "which").write_text(str(n))
        truncate(checkpoints / "epoch_003" / "optimizer.pt")
        assert Trainer(cfg).state.epoch == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "corrupt_epoch_003", "corrupt_epoch_003.1", "corrupt_epoch_003.2", "epoch_001", "epoch_002"]
    assert [(checkpoints / name / "which").read_text()
            for name in ("corrupt_epoch_003", "corrupt_epoch_003.1", "corrupt_epoch_003.2")] == ["0", "1", "2"]


def test_a_run_none_of_whose_checkpoints_loads_stops_with_one_line_naming_them(finished, run, capfd):
    root, _ = finished
    cfg, checkpoints = run
    truncate(checkpoints / "epoch_003" / "model.safetensors")
    truncate(checkpoints / "epoch_002" / "optimizer.pt")
    (checkpoints / "epoch_001" / "state.json").unlink()  # a copy cut short before its last file
    before = contents(checkpoints.parent)
    capfd.readouterr()
    assert main(["train", *overrides(root, checkpoints.parent)]) == 2
    out, err = capfd.readouterr()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    for name in ("epoch_003/model.safetensors", "epoch_002/optimizer.pt", "epoch_001/state.json",
                 "train.resume=false"):
        assert name in err, name
    assert contents(checkpoints.parent) == before  # nothing moved, nothing trained

    # the way out the message names
    assert Trainer(apply_overrides(Config(), overrides(root, checkpoints.parent, "train.resume=false"))).state.step == 0


def test_a_checkpoint_without_state_file_is_not_overlooked(run):
    cfg, checkpoints = run
    for name in ("epoch_001", "epoch_002"):
        shutil.rmtree(checkpoints / name)
    (checkpoints / "epoch_003" / "state.json").unlink()
    with pytest.raises(CheckpointError, match="epoch_003/state.json"):
        Trainer(cfg)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_003"]


def test_each_file_of_the_checkpoint_resumed_from_is_loaded_once(run, monkeypatch):
    cfg, checkpoints = run
    truncate(checkpoints / "epoch_003" / "rng.pt")  # a damaged one on the way costs no load either
    loads: list[str] = []
    real = torch.load

    def counting(f, *args, **kwargs):
        loads.append(str(Path(f).relative_to(checkpoints)))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    assert Trainer(cfg).state.epoch == 2
    assert sorted(loads) == ["epoch_002/optimizer.pt", "epoch_002/rng.pt"]

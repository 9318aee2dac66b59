"""Precision: what ``auto`` resolves to, bf16 autocast in training (weights, optimizer state and loss stay
fp32) and in eval/generate, and the warning for bf16 on a CPU that would emulate it."""

import json

import pytest
import torch

from helpers import tiny_prosqa
from latentcot import runtime
from latentcot.runtime import native_bf16, uses_bf16

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_is_bf16_only_on_a_gpu_that_has_it(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(runtime, "native_bf16", lambda device, native=native: native)
        assert uses_bf16("auto", CUDA) is native
        assert uses_bf16("auto", CPU) is False  # a native-bf16 CPU too, until bf16's accuracy is checked there
        assert uses_bf16("fp32", CUDA) is False and uses_bf16("fp32", CPU) is False
    with pytest.raises(ValueError, match="train.precision: expected auto, fp32 or bf16, got 'fp16'"):
        uses_bf16("fp16", CPU)


def test_bf16_on_a_cpu_that_emulates_it_is_done_with_a_warning(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    assert uses_bf16("bf16", CPU, "--precision") is True
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--precision=bf16 on a CPU without native bf16" in err
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    assert uses_bf16("bf16", CPU) is True and capsys.readouterr().err == ""


def test_native_bf16_reads_the_cpus_features():
    expected = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16(CPU) is bool(expected)


def test_bf16_training_keeps_fp32_weights_and_optimizer_state_and_feeds_thoughts_back(tmp_path):
    from test_training import tiny_config

    from latentcot.training import train

    cfg = tiny_config(tmp_path, "train.epochs=3", "train.precision=bf16", "method.max_latent_stage=2")
    trainer = train(cfg, train_records=tiny_prosqa(16, seed=3))
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    states = [v for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]
    assert states and all(v.dtype == torch.float32 for v in states)
    losses = [h["train_loss"] for h in trainer.state.history]
    assert all(loss == loss and loss < 10 for loss in losses)  # finite, through stages 0, 1 and 2


def test_eval_in_bf16_gives_rows_like_fp32(tmp_path, capsys):
    from test_training import tiny_config

    from latentcot.cli import main
    from latentcot.data.io import save_records
    from latentcot.training import train

    cfg = tiny_config(tmp_path, "train.epochs=2", "method.max_new_tokens=12")
    train(cfg, train_records=tiny_prosqa(16, seed=1))
    save_records(tiny_prosqa(4, seed=8), tmp_path / "valid.json")
    capsys.readouterr()
    summaries = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.jsonl"
        assert main(["eval", str(cfg.output_dir), "--data", str(tmp_path / "valid.json"), "--precision", precision,
                     "--out", str(out), "--device", "cpu"]) == 0
        summaries[precision] = json.loads(capsys.readouterr().out)
        assert len(out.read_text().splitlines()) == 4
    assert summaries["bf16"]["n_problems"] == summaries["fp32"]["n_problems"] == 4
    assert summaries["bf16"]["n_thoughts"] == summaries["fp32"]["n_thoughts"]

"""A clean stop: SIGTERM or Ctrl-C stops training at a safe point with a checkpoint, one line on stderr and
no traceback, and the same command then resumes to the weights an uninterrupted run reaches."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import tiny_config, tiny_prosqa, weights
from latentcot.data.io import save_records
from latentcot.models import load_checkpoint_model
from latentcot.runs import TrainingStopped, latest_checkpoint, list_checkpoints, load_state
from latentcot.training import train

SRC = Path(__file__).resolve().parents[1] / "src"


def test_sigterm_between_epochs_stops_after_the_epoch_checkpoint_and_resumes(tmp_path):
    records = tiny_prosqa(16, seed=1)
    full = train(tiny_config(tmp_path, "train.epochs=3", name="full"), train_records=records)
    cfg = tiny_config(tmp_path, "train.epochs=3", name="stopped")

    def terminate_after_first(trainer, epoch):
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingStopped) as stop:
        train(cfg, train_records=records, on_epoch_end=terminate_after_first)
    assert stop.value.exit_code == 128 + signal.SIGTERM
    assert [p.name for p in list_checkpoints(cfg.output_dir)] == ["epoch_001"]
    assert "run the same command again to resume" in str(stop.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are the caller's again
    resumed = train(cfg, train_records=records)
    for key, value in weights(full.model).items():
        assert torch.equal(value, weights(resumed.model)[key]), key


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_mid_epoch_leaves_a_checkpoint_and_the_same_command_resumes(tmp_path):
    save_records(tiny_prosqa(300, seed=4), tmp_path / "train.json")
    overrides = [f"output_dir={tmp_path / 'run'}", f"data.train={tmp_path / 'train.json'}", "model.preset=tiny",
                 "model.n_positions=256", "method.name=cot", "train.epochs=1", "train.batch_size=1",
                 "train.log_every=1", "train.eval_every=0", "train.lr=1e-3", "seed=0",
                 "model.dtype=float64"]  # the resumed and the whole run are compared; see test_training
    command = [sys.executable, "-m", "latentcot", "train", *overrides]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("stopped on SIGINT; last checkpoint ")
    (checkpoint,) = list_checkpoints(tmp_path / "run")
    assert checkpoint.name.startswith("epoch_000_step_")  # inside the first epoch
    assert 3 <= load_state(checkpoint)["batch"] < 300
    load_checkpoint_model(checkpoint)  # whole and loadable

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["epoch_001"]
    from latentcot.config import apply_overrides, Config

    uninterrupted = train(apply_overrides(Config(), [*overrides, f"output_dir={tmp_path / 'whole'}",
                                                     "train.progress=false"]))
    resumed, _ = load_checkpoint_model(latest_checkpoint(tmp_path / "run"), "float64")
    for key, value in weights(uninterrupted.model).items():
        assert value.dtype == torch.float64
        assert torch.allclose(value, weights(resumed)[key], rtol=0, atol=1e-9), key

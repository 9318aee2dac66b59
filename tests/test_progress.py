"""Progress: bars on a terminal, occasional plain lines in a log file."""

import io

from helpers import tiny_prosqa
from latentcot.data.io import save_records
from latentcot.progress import ProgressLines, progress_bar


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_come_at_most_every_interval_and_once_at_the_end():
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressLines(range(100), desc="epoch 1/1", stream=out, interval=30, clock=clock, unit="batch")
    seen = []
    for item in bar:
        seen.append(item)
        clock.now += 1.0  # one second a batch
        bar.set_postfix(loss=f"{item:.1f}")
    assert seen == list(range(100))
    lines = out.getvalue().splitlines()
    # after batches 30, 60, 90 (the clock reads 30 s, 60 s, 90 s when update() runs), and at the end
    assert [line.split(" ")[2] for line in lines] == ["30/100", "60/100", "90/100", "100/100"]
    assert lines[-1] == "epoch 1/1: 100/100 batch [100s, 1.00 batch/s] loss=99.0"
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_a_bar_a_file_gets_lines_and_disabled_gets_nothing():
    from tqdm.auto import tqdm

    assert isinstance(progress_bar(range(3), stream=FakeTerminal()), tqdm)
    assert type(progress_bar(range(3), stream=io.StringIO())) is ProgressLines
    quiet = io.StringIO()
    bar = progress_bar(range(3), stream=quiet, enabled=False)
    assert list(bar) == [0, 1, 2] and quiet.getvalue() == ""


def test_resumed_bar_counts_from_where_it_was():
    out, clock = io.StringIO(), FakeClock()
    bar = ProgressLines(desc="epoch", total=10, initial=6, stream=out, interval=1, clock=clock)
    clock.now = 2.0
    bar.update()
    bar.close()
    assert out.getvalue().splitlines()[0].startswith("epoch: 7/10 it [2s, 0.50 it/s]")


def test_training_to_a_log_file_writes_no_redraws(tmp_path, capfd):
    from latentcot.cli import main

    save_records(tiny_prosqa(12), tmp_path / "train.json")
    save_records(tiny_prosqa(4, seed=3), tmp_path / "valid.json")
    assert main(["train", f"output_dir={tmp_path / 'run'}", f"data.train={tmp_path / 'train.json'}",
                 f"data.valid={tmp_path / 'valid.json'}", "model.preset=tiny", "model.n_positions=256",
                 "method.name=cot", "train.epochs=2", "train.batch_size=4", "train.eval_batch_size=4",
                 "method.max_new_tokens=8"]) == 0
    err = capfd.readouterr().err
    assert "\r" not in err
    # one closing line per epoch and per evaluation, nothing per batch or per saved shard
    progress_lines = [line for line in err.splitlines() if line.startswith(("epoch ", "generate"))]
    assert len(progress_lines) == 4, err
    assert "Writing model shards" not in err and "Loading weights" not in err

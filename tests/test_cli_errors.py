"""The CLI's error contract: a wrong input of the user's is one line and exit 2, running out of memory is
one line naming the batch sizes to lower and exit 3, and anything else (a bug) keeps its traceback."""

from __future__ import annotations

import errno

import pytest
import torch

import latentcot.cli
from latentcot.cli import EXIT_OUT_OF_MEMORY, EXIT_USER_ERROR, main
from latentcot.config import ConfigError
from latentcot.data.records import DataError
from latentcot.errors import (CheckpointError, MissingFileError, PackageError, UsageError, UserError,
                              is_out_of_memory)
from latentcot.runs import CheckpointError as CheckpointErrorFromRuns


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def failing_command(monkeypatch, err: BaseException) -> None:
    """Make ``config show`` raise ``err``: the error then reaches main() as one from any command would."""
    def command(args):
        raise err

    monkeypatch.setattr(latentcot.cli, "cmd_config_show", command)


# --------------------------------------------------------------------------- the classes


def test_project_errors_are_user_errors_and_stay_value_errors():
    for cls in (DataError, ConfigError, CheckpointError, UsageError, MissingFileError, PackageError):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError)
    assert CheckpointErrorFromRuns is CheckpointError  # the old import places still work
    # what callers caught before these classes existed
    assert issubclass(MissingFileError, FileNotFoundError) and issubclass(PackageError, RuntimeError)
    assert str(DataError("a.json", "record 3", "missing", "answer")) == "a.json: record 3: field 'answer': missing"
    assert ConfigError("bad", "train.lr").key == "train.lr"


@pytest.mark.parametrize("err", [
    MemoryError(),
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 123456789 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA error: out of memory"),
])
def test_out_of_memory_is_recognised(err):
    assert is_out_of_memory(err)


@pytest.mark.parametrize("err", [RuntimeError("boom"), ValueError("out of memory"), OSError(errno.ENOSPC, "full"),
                                 ZeroDivisionError()])
def test_other_errors_are_not_out_of_memory(err):
    assert not is_out_of_memory(err)


# --------------------------------------------------------------------------- main()


@pytest.mark.parametrize("err", [
    UsageError("--n must be at least 1, got 0"),
    DataError("x.json", "record 0", "is empty", "question"),
    ConfigError("config key 'train.lr': expected a number, got 'fast'", "train.lr"),
    CheckpointError("run/model.safetensors: corrupt or partial checkpoint file"),
    MissingFileError("run: neither a checkpoint (no config.json) nor a run with checkpoints"),
    PackageError("the VQ-VAE needs the 'vector-quantize-pytorch' package"),
])
def test_a_user_error_is_one_line_and_exit_2(monkeypatch, capsys, err):
    failing_command(monkeypatch, err)
    assert main(["config", "show"]) == EXIT_USER_ERROR == 2
    assert one_error_line(capsys) == f"error: {err}"


def test_debug_shows_the_traceback_of_a_user_error(monkeypatch):
    failing_command(monkeypatch, UsageError("refused"))
    monkeypatch.setenv("LATENTCOT_DEBUG", "1")
    with pytest.raises(UsageError, match="refused"):
        main(["config", "show"])


@pytest.mark.parametrize("err", [
    RuntimeError("boom"),
    ZeroDivisionError("division by zero"),
    ValueError("a plain ValueError is a bug of ours, not a user's input"),
    OSError(errno.ENOSPC, "No space left on device"),
    FileNotFoundError(errno.ENOENT, "No such file or directory", "/somewhere/internal.bin"),
    KeyError("missing"),
])
def test_a_bug_propagates_with_its_traceback(monkeypatch, capsys, err):
    failing_command(monkeypatch, err)
    with pytest.raises(type(err)) as raised:
        main(["config", "show"])
    assert raised.value is err
    assert "error:" not in capsys.readouterr().err


@pytest.mark.parametrize("err", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB"),
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    MemoryError(),
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123456789 bytes."),
])
def test_out_of_memory_is_one_line_naming_the_batch_sizes_and_exit_3(monkeypatch, capsys, err):
    failing_command(monkeypatch, err)
    assert main(["config", "show"]) == EXIT_OUT_OF_MEMORY == 3
    line = one_error_line(capsys)
    assert line.startswith("error: out of memory")
    for name in ("train.micro_batch_size", "eval_batch_size", "--batch-size"):
        assert name in line, line


def test_a_long_cuda_message_is_cut_to_one_short_line(monkeypatch, capsys):
    detail = "Of the allocated memory 70.00 GiB is allocated by PyTorch. " * 20
    failing_command(monkeypatch, torch.OutOfMemoryError(f"CUDA out of memory. {detail}\nsecond line"))
    assert main(["config", "show"]) == 3
    line = one_error_line(capsys)
    assert "second line" not in line and len(line) < 400


def test_debug_shows_the_traceback_of_out_of_memory(monkeypatch):
    failing_command(monkeypatch, MemoryError())
    monkeypatch.setenv("LATENTCOT_DEBUG", "1")
    with pytest.raises(MemoryError):
        main(["config", "show"])


# --------------------------------------------------------------------------- real commands, bad input


def test_real_bad_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    cases = [
        (["data", "stats", tmp_path / "missing.json"], ["missing.json", "does not exist"]),
        (["data", "stats", tmp_path / "folder.json"], ["folder.json", "cannot be read"]),
        (["tokenizer", "train", "--data", tmp_path / "missing.json", "--out", tmp_path / "tok"], ["missing.json"]),
        (["tokenizer", "train", "--data", tmp_path / "empty.json", "--out", tmp_path / "tok"],
         ["empty.json", "no problems"]),
        (["config", "show", "method.name=coconut", "method.halt_threshold=5"], ["method.halt_threshold", "5"]),
        (["config", "show", "--config", tmp_path / "missing.yaml"], ["missing.yaml", "does not exist"]),
        (["config", "show", "--config", tmp_path / "broken.yaml"], ["broken.yaml", "invalid YAML"]),
        (["config", "show", "--config", tmp_path / "a_file" / "c.yaml"], ["c.yaml"]),
        (["train", "--config", tmp_path / "missing.yaml"], ["missing.yaml"]),
        (["data", "generate", "prosqa", "--n", "0", "--out", tmp_path / "g.json"], ["--n"]),
        (["data", "generate", "mult", "--n", "2", "--k", "99", "--out", tmp_path / "m.txt"], ["k"]),
        (["data", "generate", "mult", "--n", "500", "--k", "1", "--out", tmp_path / "m.txt"], ["distinct"]),
        (["data", "generate", "prosqa", "--n", "2", "--out", tmp_path / "a_file" / "g.json"], ["--out", "a_file"]),
        (["data", "convert", tmp_path / "missing.json", tmp_path / "x.jsonl"], ["missing.json"]),
        (["report", str(tmp_path / "nowhere"), "--out", tmp_path / "report"], ["nowhere", "metrics.jsonl"]),
        (["compare", "--runs", f"a={tmp_path}"], ["--data"]),
        (["vqvae", "eval", tmp_path / "nowhere", "--data", tmp_path / "missing.json"], ["missing.json"]),
    ]
    for argv, words in cases:
        assert main([str(a) for a in argv]) == 2, argv
        line = one_error_line(capsys)
        for word in words:
            assert word in line, (argv, line)


# --------------------------------------------------------------------------- loading a checkpoint


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from latentcot.config import ModelConfig, TokenizerConfig
    from latentcot.data.records import Record
    from latentcot.models import build_model_and_tokenizer, save_model

    records = [Record("Every wumpus is a yumpus. Tom is a wumpus. Is Tom a yumpus or rempus?",
                      ["Tom is a wumpus.", "Every wumpus is a yumpus."], "Tom is a yumpus.")]
    model, tokenizer = build_model_and_tokenizer(ModelConfig(preset="tiny", n_positions=64), TokenizerConfig(),
                                                 records)
    directory = tmp_path_factory.mktemp("saved") / "ckpt"
    save_model(model, tokenizer, directory)
    return directory


def test_a_damaged_checkpoint_is_a_checkpoint_error_naming_it(saved_model, tmp_path):
    import shutil

    from latentcot.models import load_checkpoint_model

    damaged = tmp_path / "damaged"
    shutil.copytree(saved_model, damaged)
    (damaged / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="damaged: the model does not load"):
        load_checkpoint_model(damaged)
    shutil.copytree(saved_model, tmp_path / "bad_tokenizer")
    (tmp_path / "bad_tokenizer" / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="bad_tokenizer: the tokenizer does not load"):
        load_checkpoint_model(tmp_path / "bad_tokenizer")


@pytest.mark.parametrize("err", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                 MemoryError(), AttributeError("a bug in a library")])
def test_out_of_memory_or_a_bug_while_loading_is_not_blamed_on_the_checkpoint(saved_model, monkeypatch, err):
    from latentcot.models import factory, load_checkpoint_model

    def from_pretrained(*args, **kwargs):
        raise err

    monkeypatch.setattr(factory.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    with pytest.raises(type(err)) as raised:
        load_checkpoint_model(saved_model)
    assert raised.value is err

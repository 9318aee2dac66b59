"""Notes go through logging: on stderr as the CLI writes them, silenced by LATENTCOT_LOG=warning or --quiet,
written by rank 0 only under torchrun; a command's result stays on stdout."""

import json
import logging

import pytest

from helpers import tiny_prosqa
from latentcot.cli import main


@pytest.fixture
def data_file(tmp_path):
    from latentcot.data.io import save_records

    path = tmp_path / "p.json"
    save_records(tiny_prosqa(4), str(path))
    return path


def test_notes_on_stderr_and_the_result_on_stdout(data_file, tmp_path, capsys):
    assert main(["data", "convert", str(data_file), str(tmp_path / "q.jsonl")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == f"wrote 4 problems to {tmp_path / 'q.jsonl'}\n"
    assert main(["data", "stats", str(data_file)]) == 0
    out, err = capsys.readouterr()
    assert isinstance(json.loads(out), dict)
    assert err == ""


@pytest.mark.parametrize("how", ["env", "flag"])
def test_warning_level_silences_the_notes_but_not_errors(data_file, tmp_path, capsys, monkeypatch, how):
    argv = ["data", "convert", str(data_file), str(tmp_path / "q.jsonl")]
    if how == "env":
        monkeypatch.setenv("LATENTCOT_LOG", "warning")
    else:
        argv = ["--quiet", *argv]
    assert main(argv) == 0
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "q.jsonl").exists()
    logging.getLogger("latentcot.test").warning("warning: kept")
    assert capsys.readouterr().err == "warning: kept\n"
    assert main([*argv[:-2], str(tmp_path / "missing.json"), str(tmp_path / "r.jsonl")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_bad_level_is_one_error(data_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LATENTCOT_LOG", "loud")
    assert main(["data", "convert", str(data_file), str(tmp_path / "q.jsonl")]) == 2
    assert capsys.readouterr().err == "error: LATENTCOT_LOG='loud': expected one of debug, info, warning, error\n"


def test_only_rank_zero_writes_notes_and_warnings(capsys, monkeypatch):
    from latentcot.logs import configure

    configure()
    log = logging.getLogger("latentcot.test")
    monkeypatch.setenv("RANK", "1")
    log.info("note from rank 1")
    log.warning("warning from rank 1")
    log.error("error from rank 1")
    monkeypatch.setenv("RANK", "0")
    log.info("note from rank 0")
    assert capsys.readouterr().err == "error from rank 1\nnote from rank 0\n"


def test_the_library_configures_no_handler():
    """Importing and using latentcot leaves logging to the program: only the CLI's configure adds a handler."""
    import subprocess
    import sys

    code = ("import logging, latentcot.training, latentcot.evaluation, latentcot.analysis.cli; "
            "print(len(logging.getLogger('latentcot').handlers), len(logging.getLogger().handlers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "0"]

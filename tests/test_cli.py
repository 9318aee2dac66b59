import json

import pytest

from conftest import BROKEN
from latentcot.cli import main
from latentcot.data.io import load_records


def test_generate_writes_a_loadable_file_and_is_deterministic(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["data", "generate", "prosqa", "--n", "20", "--seed", "3", "--out", str(a)]) == 0
    assert main(["data", "generate", "prosqa", "--n", "20", "--seed", "3", "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    records = load_records(a)
    assert len(records) == 20 and all("edges" in r.extra for r in records)
    assert "wrote 20 prosqa problems" in capsys.readouterr().err  # a note: stderr (latentcot.logs)


def test_generator_options_become_flags(tmp_path):
    out = tmp_path / "m.txt"
    assert main(["data", "generate", "mult", "--n", "5", "--k", "6", "--out", str(out)]) == 0
    assert all(len(r.question.split("*")[0].split()) == 6 for r in load_records(out))
    out = tmp_path / "p.jsonl"
    assert main(["data", "generate", "prontoqa", "--n", "4", "--hops", "3", "--out", str(out)]) == 0
    assert all(len(r.steps) == 3 + 1 for r in load_records(out))  # 3 hops and the conclusion


def test_bad_generator_option_is_one_line_error(capsys):
    assert main(["data", "generate", "mult", "--n", "3", "--k", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "k" in err


def test_stats_on_real_file(shared_data, capsys):
    assert main(["data", "stats", str(shared_data / "prosqa_valid.json")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["problems"] == 300
    assert stats["steps_histogram"] == {"3": 124, "4": 133, "5": 36, "6": 7}
    assert 14 <= stats["graph"]["nodes"]["min"] and stats["graph"]["nodes"]["max"] <= 28
    assert stats["unk_share"] == 0.0


def test_broken_file_is_one_line_error_not_a_traceback(capsys):
    path = BROKEN / "missing_answer.json"
    assert main(["data", "stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}: record 1: field 'answer': missing\n"


def test_convert_round_trip(shared_data, tmp_path):
    src = shared_data / "mult_4x4_valid.txt"
    assert main(["data", "convert", str(src), str(tmp_path / "m.jsonl")]) == 0
    assert main(["data", "convert", str(tmp_path / "m.jsonl"), str(tmp_path / "m.txt")]) == 0
    assert (tmp_path / "m.txt").read_text() == src.read_text()


def test_config_show_applies_overrides_and_rejects_typos(capsys):
    assert main(["config", "show", "train.lr=3e-4", "model.preset=cpu-small"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.0003" in out and "preset: cpu-small" in out
    assert main(["config", "show", "train.lrr=1"]) == 2
    assert "did you mean 'train.lr'" in capsys.readouterr().err


def test_tokenizer_train_and_model_info(tmp_path, capsys):
    data = tmp_path / "d.json"
    assert main(["data", "generate", "prosqa", "--n", "10", "--out", str(data)]) == 0
    assert main(["tokenizer", "train", "--data", str(data), "--out", str(tmp_path / "tok")]) == 0
    assert (tmp_path / "tok" / "tokenizer.json").exists()
    assert main(["model", "info", f"data.train={data}", "model.preset=tiny", "model.n_positions=256"]) == 0
    assert "GPT2LMHeadModel" in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for word in ("data", "tokenizer", "model", "config", "demo"):
        assert word in out

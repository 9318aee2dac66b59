"""Batched cached generation against a plain recomputation, the cost counts, scoring, and the CLI."""

import argparse
import json

import pytest

from helpers import MAX_NEW, bias_eos_to_stop_half, reference_generate, sensitive_model, tiny_prosqa
from latentcot.config import Config, MethodConfig, save_config
from latentcot.data.io import save_records
from latentcot.data.records import Record
from latentcot.evaluation import evaluate, extract_answer, is_correct
from latentcot.inference import generate, generate_naive
from latentcot.evaluation.cli import add_generate_parser
from latentcot.methods import build_method, tokenize_record
from latentcot.models import load_checkpoint_model, save_model

COT = MethodConfig(name="cot")
COCONUT = MethodConfig(name="coconut", max_latent_stage=3, c_thought=1, inference_thoughts=3)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("cfg", [COT, COCONUT], ids=["cot", "coconut"])
def test_batched_cached_generation_matches_uncached_reference(arch, cfg):
    records = tiny_prosqa(6, seed=3)
    model, tokenizer, method = sensitive_model(records, cfg, arch)
    bias_eos_to_stop_half(model, tokenizer, method, records)
    expected = [reference_generate(model, tokenizer, method, r, MAX_NEW)[0] for r in records]

    # the comparison is worth something: prompts of different lengths (padding), rows that stop at EOS
    # at different steps while others run to the limit, varied tokens
    eos = tokenizer.eos_token_id
    assert len({len(method.prompt(tokenize_record(r, tokenizer)).input_ids) for r in records}) > 1
    stopped = [len(ids) for ids in expected if ids[-1] == eos]
    assert stopped and any(len(ids) == MAX_NEW and eos not in ids for ids in expected)
    assert len({t for ids in expected for t in ids}) > 10

    for batch_size in (6, 4):
        got = generate(model, tokenizer, method, records, batch_size=batch_size, max_new_tokens=MAX_NEW)
        assert [g.token_ids for g in got] == expected, batch_size
    naive = generate_naive(model, tokenizer, method, records, max_new_tokens=MAX_NEW)
    assert [g.token_ids for g in naive] == expected


def count_model_calls(model, monkeypatch):
    calls = []
    base = model.base_model
    forward = base.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(base, "forward", counted)
    return calls


@pytest.mark.parametrize("cfg,n_thoughts", [(COT, None), (COCONUT, None), (COCONUT, 0), (COCONUT, 5)])
def test_counts_follow_the_documented_rules(cfg, n_thoughts, monkeypatch):
    records = tiny_prosqa(4, seed=3)
    model, tokenizer, method = sensitive_model(records, cfg, "gpt2")
    bias_eos_to_stop_half(model, tokenizer, method, records, n_thoughts)
    eos = tokenizer.eos_token_id
    thoughts = 0 if not method.continuous else (3 if n_thoughts is None else n_thoughts)
    prompt_calls = 1 if thoughts == 0 else thoughts + 2  # question+<bot>, each thought, <eot>

    batched = generate(model, tokenizer, method, records, batch_size=4, n_thoughts=n_thoughts, max_new_tokens=MAX_NEW)
    assert any(g.token_ids[-1] == eos for g in batched) and any(eos not in g.token_ids for g in batched)
    for g in batched:
        assert g.n_thoughts == thoughts
        assert g.generated_tokens == thoughts + len(g.token_ids)  # EOS counted, markers not
        assert g.forward_passes == prompt_calls + len(g.token_ids) - 1
        assert eos not in g.token_ids[:-1]
        assert g.text == tokenizer.decode([t for t in g.token_ids if t != eos])
        assert "<eos>" not in g.text and g.seconds > 0

    # the documented count is the number of model calls the problem makes when it runs alone
    calls = count_model_calls(model, monkeypatch)
    for record, g in zip(records, batched):
        calls.clear()
        (alone,) = generate(model, tokenizer, method, [record], batch_size=1, n_thoughts=n_thoughts,
                            max_new_tokens=MAX_NEW)
        assert alone.token_ids == g.token_ids and len(calls) == alone.forward_passes
        calls.clear()
        (naive,) = generate_naive(model, tokenizer, method, [record], n_thoughts=n_thoughts, max_new_tokens=MAX_NEW)
        assert naive.token_ids == g.token_ids and naive.generated_tokens == g.generated_tokens
        assert len(calls) == naive.forward_passes == thoughts + len(g.token_ids)


def test_defaults_come_from_the_method_config_and_training_mode_is_restored():
    records = tiny_prosqa(3, seed=5)
    cfg = MethodConfig(name="coconut", max_latent_stage=2, c_thought=2, inference_thoughts=-1, max_new_tokens=5)
    model, tokenizer, method = sensitive_model(records, cfg, "gpt2")
    expected = generate(model, tokenizer, method, records, n_thoughts=4, max_new_tokens=5)
    model.train()  # dropout on: generation must switch it off, then give training mode back
    got = generate(model, tokenizer, method, records)
    assert model.training
    assert [g.token_ids for g in got] == [g.token_ids for g in expected]
    assert all(g.n_thoughts == 4 and len(g.token_ids) <= 5 for g in got)
    with pytest.raises(ValueError, match="batch_size"):
        generate(model, tokenizer, method, records, batch_size=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, tokenizer, method, records, max_new_tokens=0)
    assert generate(model, tokenizer, method, []) == []


@pytest.mark.parametrize("text,answer", [
    ("### 1,250", "1250"),
    ("12 * 3 = 36\n#### 1,000,000\n", "1000000"),
    ("a # b ## c ### 42 ", "42"),
    ("#3#4", "4"),
    ("no hash here, at all ", "no hash here at all"),
    ("Tom is a wumpus.\nEvery wumpus is a lempus.\n### Tom is a lempus.", "Tom is a lempus."),
    ("###", ""),
    ("", ""),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_is_correct():
    prosqa = Record("Is Tom a lempus or a zumpus?", [], "Tom is a lempus.")
    assert is_correct("Tom is a wumpus.\n### Tom is a lempus.", prosqa)
    assert is_correct("###  Tom is a lempus.  ", prosqa)
    assert not is_correct("### Tom is a zumpus.", prosqa)
    assert not is_correct("### Tom is a lempus", prosqa)  # exact match: the full stop matters
    number = Record("q", [], "1,250")
    assert is_correct("### 1250", number) and is_correct("#### 1,250", number)
    assert not is_correct("### 125", number)


def test_evaluate_numbers_and_jsonl(tmp_path):
    records = tiny_prosqa(5, seed=4)
    model, tokenizer, method = sensitive_model(records, COCONUT, "gpt2")
    generations = generate(model, tokenizer, method, records, max_new_tokens=6)
    # the answer is not part of the prompt: give two problems what the model will write
    records[1].answer = extract_answer(generations[1].text)
    records[3].answer = "  " + extract_answer(generations[3].text) + " "  # compared stripped
    result = evaluate(model, tokenizer, method, records, batch_size=2, max_new_tokens=6)
    assert result.n_problems == 5 and result.n_thoughts == 3
    expected_correct = [i in (1, 3) or is_correct(g.text, r) for i, (g, r) in enumerate(zip(generations, records))]
    assert [row["correct"] for row in result.rows] == expected_correct
    assert result.accuracy == pytest.approx(sum(expected_correct) / 5)
    assert result.mean_generated_tokens == pytest.approx(sum(g.generated_tokens for g in generations) / 5)
    assert result.mean_forward_passes == pytest.approx(sum(g.forward_passes for g in generations) / 5)
    assert result.seconds_per_problem == pytest.approx(sum(row["seconds"] for row in result.rows) / 5)

    path = tmp_path / "out" / "eval.jsonl"
    result.write_jsonl(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5
    rows = [json.loads(line) for line in lines]
    assert rows == result.rows
    assert [row["question"] for row in rows] == [r.question for r in records]
    assert {"question", "answer", "generated", "predicted", "correct", "generated_tokens",
            "forward_passes"} <= set(rows[0])
    assert [p.name for p in path.parent.iterdir()] == ["eval.jsonl"]  # no temporary file left behind
    assert "rows" not in result.summary() and result.summary()["accuracy"] == result.accuracy


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="latentcot")
    add_generate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_generate_cli_on_a_saved_run(tmp_path, capsys):
    records = tiny_prosqa(4, seed=6)
    model, tokenizer, method = sensitive_model(records, COCONUT, "llama")
    run = tmp_path / "run"
    save_model(model, tokenizer, run)
    save_config(Config(method=COCONUT), run / "config.yaml")
    data = tmp_path / "problems.jsonl"
    save_records(records, data)
    loaded, loaded_tok = load_checkpoint_model(run)
    expected = generate(loaded, loaded_tok, build_method(COCONUT, loaded_tok), records, n_thoughts=2,
                        max_new_tokens=7)

    out = tmp_path / "gen.jsonl"
    assert run_cli(["generate", str(run), "--data", str(data), "--n-thoughts", "2", "--batch-size", "3",
                    "--max-new-tokens", "7", "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_problems"] == 4 and summary["n_thoughts"] == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["generated"] for row in rows] == [g.text for g in expected]
    assert [row["generated_tokens"] for row in rows] == [g.generated_tokens for g in expected]

    assert run_cli(["generate", str(run), "--question", records[2].question, "--n-thoughts", "2",
                    "--max-new-tokens", "7"]) == 0
    captured = capsys.readouterr()
    assert captured.out == expected[2].text + "\n"
    assert "2 thoughts" in captured.err

    with pytest.raises(SystemExit):  # --question and --data are exclusive, and one is required
        run_cli(["generate", str(run)])
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        run_cli(["generate", str(tmp_path), "--question", "Is Tom a wumpus?"])
    (tmp_path / "bare").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "bare" / name).write_bytes((run / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        run_cli(["generate", str(tmp_path / "bare"), "--question", "Is Tom a wumpus?"])

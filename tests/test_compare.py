"""``latentcot compare``: a plan trains what is missing, evaluates every run on the same problems and
writes one table; finished runs are not retrained; bad plans fail with the key named."""

import json

import pytest
import yaml

from helpers import write_plan
from latentcot.cli import main
from latentcot.config import ConfigError
from latentcot.compare import load_plan, markdown_table
from latentcot.runs import list_checkpoints

RUNS = [
    {"name": "cot", "overrides": ["method.name=cot"]},
    {"name": "icot", "overrides": ["method.name=icot", "train.init_from=@cot", "method.remove_per_epoch=4"]},
    {"name": "pause", "overrides": ["method.name=pause", "method.n_pause=2"], "n_thoughts": 1},
]


def test_plan_trains_evaluates_and_tabulates(tmp_path, capsys):
    plan = write_plan(tmp_path, RUNS)
    assert main(["compare", str(plan)]) == 0
    out = tmp_path / "cmp"
    table = json.loads((out / "comparison.json").read_text())
    assert [r["method"] for r in table["rows"]] == ["cot", "icot", "pause"]
    assert table["n_problems"] == 3 and table["batch_size"] == 2
    for row in table["rows"]:
        lines = (out / "eval" / f"{row['method']}.jsonl").read_text().splitlines()
        assert len(lines) == 3
        assert row["accuracy"] == sum(json.loads(line)["correct"] for line in lines) / 3
    # icot started from the cot run's final checkpoint
    icot_cfg = yaml.safe_load((out / "icot" / "config.yaml").read_text())
    assert icot_cfg["train"]["init_from"] == str(list_checkpoints(out / "cot")[-1])
    md = (out / "comparison.md").read_text()
    assert "| method | accuracy | generated tokens | forward passes | time per problem (ms) |" in md
    assert md.count("\n| ") == 4  # header and three rows

    # run again: nothing is retrained (the checkpoints stay the same files)
    before = {p: p.stat().st_mtime_ns for p in (out / "cot" / "checkpoints").rglob("*.safetensors")}
    capsys.readouterr()
    assert main(["compare", str(plan), "--eval-only"]) == 0
    assert "finished run found" in capsys.readouterr().err  # a note: stderr (latentcot.logs)
    assert before == {p: p.stat().st_mtime_ns for p in (out / "cot" / "checkpoints").rglob("*.safetensors")}

    # saved runs only, no plan
    assert main(["compare", "--runs", f"a={out / 'cot'}", str(out / "pause"), "--data", str(tmp_path / "valid.json"),
                 "--out", str(tmp_path / "loaded"), "--batch-size", "3"]) == 0
    rows = json.loads((tmp_path / "loaded" / "comparison.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["a", "pause"]
    assert rows[0]["accuracy"] == table["rows"][0]["accuracy"]


def test_eval_only_refuses_to_train(tmp_path, capsys):
    plan = write_plan(tmp_path, RUNS[:1])
    assert main(["compare", str(plan), "--eval-only"]) == 2
    assert "has not finished training" in capsys.readouterr().err


@pytest.mark.parametrize("runs,message", [
    ([{"name": "icot", "overrides": ["train.init_from=@cot"]}], r"runs\[0\].overrides.*'cot', which is not an earlier run"),
    ([{"name": "a"}, {"name": "a"}], r"runs\[1\].name.*appears twice"),
    ([{"name": "a", "overides": []}], r"unknown config key 'runs\[0\].overides'; did you mean 'runs\[0\].overrides'"),
    ([{"name": "a", "n_thoughts": "many"}], r"runs\[0\].n_thoughts': expected an integer or 'auto'"),
    ([{"name": "a", "overrides": ["method.name=coconut"], "n_thoughts": "auto"}],
     r"runs\[0\].n_thoughts': auto needs a halting head; add method.halting=true"),
    ([], r"'runs' must list at least one run"),
])
def test_bad_plans_name_the_key(tmp_path, runs, message):
    plan = write_plan(tmp_path, runs)
    with pytest.raises(ConfigError, match=message):
        load_plan(plan)


def test_markdown_table_layout():
    rows = [{"method": "cot", "accuracy": 0.69, "mean_generated_tokens": 20.25, "mean_forward_passes": 20.25,
             "seconds_per_problem": 0.00181}]
    assert markdown_table(rows).splitlines()[2] == "| cot | 69.0% | 20.2 | 20.2 | 1.81 |"


def test_only_trains_the_named_runs_and_leaves_unfinished_ones_out(tmp_path, capsys):
    plan = write_plan(tmp_path, RUNS)
    assert main(["compare", str(plan), "--only", "pause"]) == 0
    out, notes = capsys.readouterr()
    assert "cot: not finished and not in --only" in notes and "icot: its base run has not finished" in notes
    assert "| pause |" in out and "not finished" not in out
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["pause"]
    assert not (tmp_path / "cmp" / "cot").exists()
    # a named run whose base run is missing is an error that says so
    assert main(["compare", str(plan), "--only", "icot"]) == 2
    assert "continues from run 'cot', which has not finished" in capsys.readouterr().err

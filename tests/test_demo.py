"""The README's main command end to end, shrunk to seconds: data, three trainings, evaluation, table."""

import json

from latentcot.demo import DemoSettings, run_demo


def test_demo_pipeline_runs_and_writes_the_table(tmp_path):
    settings = DemoSettings(n_train=40, n_valid=6, preset="tiny", batch_size=8, cot_epochs=1, no_cot_epochs=1,
                            coconut_stages=2, epochs_per_stage=1, final_epochs=1)
    summary = run_demo(tmp_path, seed=0, settings=settings)
    assert [r["method"] for r in summary["results"]] == ["no_cot", "cot", "coconut"]
    coconut = summary["results"][2]
    assert coconut["n_thoughts"] == 2  # c_thought * max_latent_stage
    table = (tmp_path / "results.md").read_text()
    assert table.count("\n") == 5 and "| coconut |" in table
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["n_train"] == 40
    # coconut continued from the cot checkpoint
    config = (tmp_path / "coconut" / "config.yaml").read_text()
    assert "init_from: " + str(tmp_path / "cot") in config
    for name in ("no_cot", "cot", "coconut"):
        rows = (tmp_path / name / "eval_valid.jsonl").read_text().splitlines()
        assert len(rows) == 6

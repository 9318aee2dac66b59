"""scripts/prosqa_budget_curve.py: the end-of-curriculum points and the per-width log-linear extrapolation."""
import importlib.util
import json
import math

import pytest
import yaml

from conftest import REPO


@pytest.fixture(scope="module")
def budget():
    spec = importlib.util.spec_from_file_location("prosqa_budget_curve", REPO / "scripts" / "prosqa_budget_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_recovers_a_known_line_and_the_passes_where_it_meets_the_goal(budget):
    # accuracy = 40 + 20 * log10(passes / 1000): 97% is met at 1000 * 10 ** 2.85
    points = [{"passes_per_stage": p, "accuracy": 40 + 20 * math.log10(p / 1000)} for p in (2e4, 5e4, 3e5)]
    fit = budget.log_linear_fit(points, goal=97.0)
    assert fit["points_per_decade"] == pytest.approx(20.0)
    assert fit["passes_per_stage_to_goal"] == pytest.approx(1000 * 10 ** 2.85, rel=1e-6)


def test_a_falling_or_unreadable_slope_reaches_no_goal(budget):
    falling = [{"passes_per_stage": 2e4, "accuracy": 66.0}, {"passes_per_stage": 1e5, "accuracy": 60.0}]
    assert budget.log_linear_fit(falling)["passes_per_stage_to_goal"] is None
    close = [{"passes_per_stage": 2.8e4, "accuracy": 60.0}, {"passes_per_stage": 2.9e4, "accuracy": 75.0}]
    assert budget.log_linear_fit(close)["points_per_decade"] is None


def _write_run(path, batch, evals, init_from=""):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"train": {"batch_size": batch, "init_from": init_from}}))
    lines = []
    for epoch, (step, stage, accuracy) in enumerate(evals):
        lines.append({"type": "epoch", "epoch": epoch, "step": step, "stage": stage})
        lines.append({"type": "eval", "epoch": epoch, "step": step, "stage": stage, "accuracy": accuracy})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_run_directories_count_passes_from_steps_and_follow_init_from(budget, tmp_path):
    cot, coconut = tmp_path / "cot", tmp_path / "coconut"
    _write_run(cot, 10, [(100, 0, 0.3), (200, 0, 0.5)])
    # steps restart at 0 in the continued run; stages 1..7, the best all-latent epoch is stage 7's
    _write_run(coconut, 20, [(50 * (k + 1), k + 1, 0.5 + 0.01 * k) for k in range(7)], init_from=str(cot / "checkpoints" / "epoch_002"))
    series = budget.from_run(coconut)
    assert [p["passes"] for p in series["cot"]] == [1000, 2000]
    assert series["coconut"][0]["passes"] == 2000 + 1000 and series["coconut"][-1]["passes"] == 2000 + 7000
    end = budget.end_point(series)
    assert end == {"passes_per_stage": 1000, "accuracy": pytest.approx(56.0)}
    assert budget.width_of("d256_l4 GPU sweep") == "4x256" and budget.width_of("2x128 CPU") == "2x128"

"""Analysis commands: path classes per k and latent-search probing on a tiny Coconut run."""

import json

import pytest
import torch

from helpers import tiny_config, tiny_model, tiny_prosqa
from latentcot.analysis.paths import PATH_CLASSES
from latentcot.analysis.search import frontier_values, node_heights, thought_probabilities, top_tokens
from latentcot.analysis.paths import Graph
from latentcot.config import MethodConfig
from latentcot.methods import build_method, tokenize_record
from latentcot.tokenization import METHOD_TOKENS


def test_thought_probabilities_match_a_plain_recomputation():
    records = tiny_prosqa(5)
    model, tok = tiny_model(records, METHOD_TOKENS, arch="llama")
    model.eval()
    method = build_method(MethodConfig(name="coconut"), tok)
    probs = thought_probabilities(model, tok, method, records, n_thoughts=3, batch_size=2)
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    for record, got in zip(records, probs):
        ids = method.prompt(tokenize_record(record, tok), 3).input_ids
        first = ids.index(method.thought_id)
        embeds = embed(torch.tensor([ids[:first]]))
        expected = []
        with torch.no_grad():
            for _ in range(3):  # one full pass per thought, no cache, no padding
                state = model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1][:, -1:]
                expected.append(torch.softmax(head(state)[0, 0], -1))
                embeds = torch.cat([embeds, state], dim=1)
        assert torch.allclose(got, torch.stack(expected).to(got.dtype), atol=1e-6)  # got: float32 by design
        assert torch.allclose(got.sum(-1), torch.ones(3), atol=1e-4)


def test_frontier_rows_and_heights(shared_data):
    from latentcot.data.io import load_records

    record = load_records(shared_data / "prosqa_valid.json")[0]
    graph = Graph.of(record)
    heights = node_heights(graph)
    assert heights[graph.target] == 0 and heights[graph.root] > 0
    from latentcot.tokenization import train_word_tokenizer, record_text

    tok = train_word_tokenizer([record_text(record)])
    probs = torch.full((2, len(tok)), 1.0 / len(tok))
    rows = frontier_values(record, probs, tok)
    depth = graph.distances_from(graph.root)
    frontier_1 = [r["node"] for r in rows if r["thought"] == 1 and r["frontier"]]
    assert sorted(frontier_1) == sorted(graph.names[n] for n, d in depth.items() if d == 1)
    assert any(r["leads_to_target"] for r in rows if r["thought"] == 1 and r["frontier"])
    # every node appears once per thought, with its depth from the person (None: never reached)
    assert sorted((r["node"], r["depth"] if r["depth"] is not None else -1) for r in rows if r["thought"] == 2) == sorted(
        (graph.names[n], depth.get(n, -1)) for n in range(len(graph.names)))
    assert any(r["depth"] is None for r in rows) and [r["depth"] for r in rows if r["node"] == graph.names[graph.root]] == [0, 0]
    assert all(abs(r["value"] - 1.0 / len(tok)) < 1e-9 for r in rows)
    from latentcot.analysis.search import summarize

    summary = summarize(rows)
    for d, mass in summary[1]["mass_by_depth"].items():
        assert mass == pytest.approx(sum(1 for n, dd in depth.items() if dd == d) / len(tok))
    unreached = len(graph.names) - len(depth)
    within = sum(1 for dd in depth.values() if dd <= 1)
    assert summary[1]["mass_within_hops"] == pytest.approx(within / len(tok))
    assert summary[1]["mass_beyond_hops"] == pytest.approx((len(depth) - within) / len(tok))
    assert summary[1]["mass_unreachable"] == pytest.approx(unreached / len(tok))
    assert [p for _, p in top_tokens(probs, tok, 3)[0]] == [round(1.0 / len(tok), 4)] * 3


@pytest.fixture(scope="module")
def coconut_run(tmp_path_factory):
    from latentcot.data.io import save_records
    from latentcot.training import train

    tmp = tmp_path_factory.mktemp("analysis")
    cfg = tiny_config(tmp, "train.epochs=2", "method.max_latent_stage=2", "method.max_new_tokens=40", name="coconut")
    train(cfg, train_records=tiny_prosqa(16))
    save_records(tiny_prosqa(6, seed=3), tmp / "valid.json")
    return tmp


def test_analyze_paths_cli(coconut_run, capsys):
    from latentcot.cli import main

    out = coconut_run / "paths"
    assert main(["analyze", "paths", str(coconut_run / "coconut"), "--data", str(coconut_run / "valid.json"),
                 "--k", "0..2", "--out", str(out), "--batch-size", "4"]) == 0
    table = json.loads((out / "paths.json").read_text())["by_k"]
    assert sorted(table) == ["0", "1", "2"]
    for k, row in table.items():
        assert sum(row[c] for c in PATH_CLASSES) == 6
        lines = [json.loads(x) for x in (out / f"paths_k{k}.jsonl").read_text().splitlines()]
        assert [x["n_thoughts"] for x in lines] == [int(k)] * 6
        assert all(x["path_class"] in PATH_CLASSES for x in lines)
    assert (out / "paths.png").read_bytes()[:4] == b"\x89PNG"


def test_analyze_search_cli(coconut_run, capsys):
    from latentcot.cli import main

    out = coconut_run / "search"
    assert main(["analyze", "search", str(coconut_run / "coconut"), "--data", str(coconut_run / "valid.json"),
                 "--n-thoughts", "2", "--out", str(out)]) == 0
    report = json.loads((out / "search.json").read_text())
    assert set(report["frontier"]) == {"1", "2"}
    tokens = [json.loads(x) for x in (out / "thought_tokens.jsonl").read_text().splitlines()]
    assert len(tokens) == 6 and len(tokens[0]["thoughts"]) == 2 and len(tokens[0]["thoughts"][0]) == 5
    assert (out / "frontier_values.png").read_bytes()[:4] == b"\x89PNG"


def test_analyses_of_thoughts_refuse_a_method_without_them(tmp_path, capsys):
    from latentcot.cli import main
    from latentcot.data.io import save_records
    from latentcot.training import train

    cfg = tiny_config(tmp_path, "method.name=cot", "train.epochs=1", name="cot")
    train(cfg, train_records=tiny_prosqa(8))
    data = str(tmp_path / "valid.json")
    save_records(tiny_prosqa(3, seed=3), data)
    capsys.readouterr()
    assert main(["analyze", "search", cfg.output_dir, "--data", data, "--out", str(tmp_path / "search")]) == 2
    assert capsys.readouterr().err == ("error: probing thoughts needs a continuous-thought method (coconut, "
                                       "coconut_wo_curriculum, codi, pccot); 'cot' has no continuous thoughts\n")
    assert main(["analyze", "thoughts", cfg.output_dir, "--data", data, "--k", "1",
                 "--out", str(tmp_path / "thoughts")]) == 2
    assert capsys.readouterr().err == ("error: analyze thoughts needs a continuous-thought method (coconut, "
                                       "coconut_wo_curriculum, codi, pccot); 'cot' has no continuous thoughts\n")
    assert main(["analyze", "interventions", cfg.output_dir, "--data", data, "--out", str(tmp_path / "iv")]) == 2
    assert capsys.readouterr().err == ("error: interventions on the latents needs a continuous-thought method "
                                       "(coconut, coconut_wo_curriculum, codi, pccot); 'cot' has no continuous "
                                       "thoughts\n")
    assert main(["eval", cfg.output_dir, "--data", data, "--samples", "2", "--latent-noise", "0.1"]) == 2
    assert capsys.readouterr().err.startswith("error: sampling latent trajectories")
    assert not (tmp_path / "search").exists() and not (tmp_path / "thoughts").exists()
    assert not (tmp_path / "iv").exists()


def test_report_gathers_curves_table_and_plots(coconut_run, tmp_path):
    import re

    from latentcot.cli import main

    run, data = str(coconut_run / "coconut"), str(coconut_run / "valid.json")
    assert main(["analyze", "paths", run, "--data", data, "--k", "0,1", "--out", str(tmp_path / "paths")]) == 0
    assert main(["analyze", "search", run, "--data", data, "--out", str(tmp_path / "search")]) == 0
    assert main(["compare", "--runs", f"coconut={run}", "--data", data, "--out", str(tmp_path / "cmp")]) == 0
    assert main(["report", run, "--compare", str(tmp_path / "cmp"), "--analysis", str(tmp_path / "paths"),
                 str(tmp_path / "search"), "--out", str(tmp_path / "report"), "--title", "tiny"]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    # self-contained: every image is embedded, nothing is loaded from elsewhere
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 3 and all(src.startswith("data:image/png;base64,") for src in images)
    accuracy = json.loads((tmp_path / "cmp" / "comparison.json").read_text())["rows"][0]["accuracy"]
    assert f"<td>{100 * accuracy:.1f}%</td>" in page
    md = (tmp_path / "report" / "report.md").read_text()
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (tmp_path / "report" / png).exists()
    assert "## Reasoning paths" in md and "## Latent search" in md and "## Training" in md
    # a directory that is not a run fails with its name
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r2")]) == 2


def test_stage_curves_cli(coconut_run, tmp_path, capsys):
    from latentcot.cli import main

    run = coconut_run / "coconut"
    out = tmp_path / "curves.png"
    assert main(["analyze", "curves", f"coconut={run}", str(run), "--chain", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert main(["analyze", "curves", str(tmp_path), "--out", str(out)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_curves_by_problems_seen(coconut_run, tmp_path, monkeypatch):
    """--x problems puts each run's logged steps at step x its train.batch_size, read from its config."""
    import matplotlib.figure

    from latentcot.cli import main
    from latentcot.config import load_config
    from latentcot.training.metrics import read_metrics

    run = coconut_run / "coconut"
    saved = []
    real_savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: (saved.append(fig), real_savefig(fig, *a, **k))[1])
    assert main(["analyze", "curves", str(run), "--x", "problems", "--out", str(tmp_path / "c.png")]) == 0
    batch = load_config(run / "config.yaml").train.batch_size
    logged = [r for r in read_metrics(run / "metrics.jsonl") if r.get("type") == "train"]
    loss_axis = saved[0].axes[0]
    assert batch > 1 and logged
    assert list(loss_axis.lines[0].get_xdata()) == [r["step"] * batch for r in logged]
    assert loss_axis.get_xlabel() == "training problems seen"
    # RUN+RUN: a run and its continuation, one line, the second's problems counted after the first's
    saved.clear()
    assert main(["analyze", "curves", f"both={run}+{run}", "--x", "problems", "--out", str(tmp_path / "c.png")]) == 0
    once = [r["step"] * batch for r in logged]
    assert list(saved[0].axes[0].lines[0].get_xdata()) == once + [once[-1] + x for x in once]


def test_step_comparison_by_hand():
    from latentcot.analysis.steps import compare_steps, summarize, written_lines
    from latentcot.data.records import Record

    record = Record("q", ["a b.", "b c.", "c d."], "yes")
    assert written_lines("<bot><thought><eot> b c.\n\nc d.\n### yes") == ["b c.", "c d."]
    full = compare_steps(record, "a b.\nb c.\nc d.\n### yes", True)
    wrong_second = compare_steps(record, "a b.\nb x.\nc d.\n### yes", True)
    short = compare_steps(record, "a b.\n### no", False)
    after_thoughts = compare_steps(record, "c d.\n### no", False, offset=2)
    assert (full["chain_right"], full["first_error"], full["step_right"]) == (True, None, [True, True, True])
    assert (wrong_second["first_error"], wrong_second["step_right"]) == (1, [True, False, True])
    assert (short["first_error"], short["n_written"]) == (1, 1)  # stopped early: the missing step is the error
    assert (after_thoughts["chain_right"], after_thoughts["n_gold"]) == (True, 1)
    summary = summarize([full, wrong_second, short, after_thoughts])
    # index 0 is reached by all four and right in each; indexes 1 and 2 by the three with three gold steps
    assert summary["step_right_by_index"] == [1.0, 1 / 3, 2 / 3]
    assert summary["first_error_by_index"] == {"1": 0.5}
    assert summary["chain_right"] == 0.5 and summary["accuracy"] == 0.5
    assert summary["wrong_chain_right_answer"] == 0.25 and summary["right_chain_wrong_answer"] == 0.25


def test_analyze_steps_cli(coconut_run, capsys):
    from latentcot.cli import main

    out = coconut_run / "steps"
    assert main(["analyze", "steps", str(coconut_run / "coconut"), "--data", str(coconut_run / "valid.json"),
                 "--n-thoughts", "1", "--out", str(out), "--batch-size", "4"]) == 0
    rows = [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["offset"] == 1 for r in rows)  # one thought stands for the first step
    summary = json.loads((out / "steps.json").read_text())
    assert summary["accuracy"] == sum(r["correct"] for r in rows) / 6
    assert summary["chain_right"] == sum(r["chain_right"] for r in rows) / 6
    assert (out / "steps.png").read_bytes()[:4] == b"\x89PNG"


def test_analyze_interventions_cli(coconut_run, capsys):
    from latentcot.cli import main

    out = coconut_run / "interventions"
    run, data = str(coconut_run / "coconut"), str(coconut_run / "valid.json")
    assert main(["analyze", "interventions", run, "--data", data, "--n-thoughts", "2", "--kinds", "zero,truncate",
                 "--out", str(out)]) == 0
    report = json.loads((out / "interventions.json").read_text())
    assert report["n_thoughts"] == 2 and list(report["by_position"]) == ["0", "1"]
    assert list(report["by_position"]["0"]) == ["zero", "truncate"]
    table = capsys.readouterr().out
    assert table == (out / "interventions.md").read_text() and "| 2 |" in table
    assert (out / "interventions.png").read_bytes()[:4] == b"\x89PNG"
    for bad, message in ((["--kinds", "zero,melt"], "--kinds: unknown ['melt']"),
                         (["--n-thoughts", "auto"], "--n-thoughts: interventions need a fixed thought count")):
        assert main(["analyze", "interventions", run, "--data", data, "--out", str(out / "bad"), *bad]) == 2
        assert message in capsys.readouterr().err


def test_analyze_scaling_cli(coconut_run, capsys):
    from latentcot.cli import main

    out = coconut_run / "scaling"
    run, data = str(coconut_run / "coconut"), str(coconut_run / "valid.json")
    assert main(["analyze", "scaling", run, "--data", data, "--samples", "3", "--latent-noise", "0.5",
                 "--latent-dropout", "0.2", "--n-thoughts", "2", "--out", str(out)]) == 0
    report = json.loads((out / "scaling.json").read_text())
    assert [(c["latent_noise"], c["latent_dropout"]) for c in report["curves"]] == [(0.5, 0.0), (0.0, 0.2)]
    assert [r["samples"] for r in report["curves"][0]["by_samples"]] == [1, 2, 3]
    assert capsys.readouterr().out == (out / "scaling.md").read_text()
    assert (out / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    for bad, message in ((["--samples", "0", "--latent-noise", "0.5"], "error: --samples must be at least 1, got 0"),
                         ([], "error: give --latent-noise and/or --latent-dropout"),
                         (["--latent-noise", "x"], "error: --latent-noise: expected numbers")):
        assert main(["analyze", "scaling", run, "--data", data, "--out", str(out / "bad"), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1
    # an index past the model's latents (trained with 2 stages of one thought each)
    assert main(["analyze", "interventions", run, "--data", data, "--n-thoughts", "3", "--out", str(out / "b")]) == 2
    assert capsys.readouterr().err == ("error: --n-thoughts 3: coconut was trained with at most 2 latents; probe 1 "
                                       "to 2 (a latent past them is one the model never learned to use)\n")


def test_eval_and_generate_take_samples(coconut_run, capsys):
    from latentcot.cli import main

    run, data = str(coconut_run / "coconut"), str(coconut_run / "valid.json")
    assert main(["eval", run, "--data", data, "--samples", "4", "--latent-noise", "0.3", "--seed", "2",
                 "--batch-size", "8"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [r["samples"] for r in summary["sampling"]["by_samples"]] == [1, 2, 4]
    assert summary["sampling"]["latent_noise"] == 0.3 and summary["sampling"]["seed"] == 2
    rows = [json.loads(line) for line in (coconut_run / "coconut" / "eval" / "valid_n4_noise0.3_seed2.jsonl").read_text().splitlines()]
    assert all(len(r["samples"]) == 4 for r in rows)
    assert main(["generate", run, "--question", tiny_prosqa(16)[0].question, "--samples", "2",
                 "--latent-dropout", "0.1"]) == 0
    assert "majority of 2 samples" in capsys.readouterr().err
    assert main(["eval", run, "--data", data, "--samples", "0", "--latent-noise", "0.3"]) == 2
    assert capsys.readouterr().err == "error: --samples must be at least 1, got 0\n"


def test_analyze_interventions_on_token_assorted_probes_its_codes(tmp_path, capsys):
    """The shipped ProntoQA Token Assorted model: the CLI takes its written codes as the latents."""
    from conftest import REPO
    from latentcot.cli import main
    from latentcot.data.generators import generate as generate_data
    from latentcot.data.io import save_records

    data = tmp_path / "prontoqa.json"
    save_records(generate_data("prontoqa", 3, 5), data)
    run, out = str(REPO / "models" / "prontoqa-assorted"), tmp_path / "codes"
    assert main(["analyze", "interventions", run, "--data", str(data), "--kinds", "random,truncate",
                 "--n-thoughts", "2", "--out", str(out)]) == 0
    report = json.loads((out / "interventions.json").read_text())
    assert report["latents"] == "codes" and report["method"] == "assorted"
    assert list(report["by_position"]["1"]) == ["random", "truncate"]
    assert set(report["all_replaced"]) >= {"accuracy", "flip_rate"}
    assert "every code replaced by a random one" in capsys.readouterr().out
    assert main(["analyze", "interventions", run, "--data", str(data), "--kinds", "zero", "--out", str(out)]) == 2
    assert "--kinds: unknown ['zero'] for assorted; choose from random, swap, pause, truncate" in capsys.readouterr().err

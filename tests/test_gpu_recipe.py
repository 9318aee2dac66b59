"""scripts/gpu_prosqa_recipe.py, the one-GPU-call recipe run, at a tiny size on the CPU: what comes back fits
the device's limits (at most 8 files of at most 16 MiB) and unpacks into a model that evaluates."""

import importlib.util
import json

from latentcot.data.generators import generate

from conftest import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_prosqa_recipe", REPO / "scripts" / "gpu_prosqa_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_call_brings_back_a_selected_model_within_the_limits(tmp_path, capsys):
    from safetensors import safe_open

    from latentcot.data.encodings import build_encoding
    from latentcot.evaluation import evaluate
    from latentcot.inference import load_run

    script = load_script()
    out = tmp_path / "out"
    summary = script.main(["--out", str(out), "--tiny", "--minutes", "0.3", "--valid", str(tmp_path / "none.json")])
    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size < 16 * 2 ** 20 for f in files), files
    assert json.loads((out / "summary.json").read_text())["selected_epoch"] == summary["selected_epoch"]
    epochs = summary["epochs"]
    assert [r["stage"] for r in epochs] == list(range(len(epochs))) and len(epochs) == 7 + 3  # stages 0..6, 3 more
    assert summary["selected_accuracy"] == max(r["accuracy"] for r in epochs)
    assert summary["config"]["method"]["stage_target"] == "frontier" and summary["config"]["data"]["relabel_nodes"]
    for shard in summary["shards"]:
        with safe_open(str(out / shard), framework="pt") as handle:
            assert all(handle.get_slice(k).get_dtype() == "BF16" for k in handle.keys())
    model_dir = script.unpack(out, tmp_path / "model")
    cfg, model, tokenizer, method = load_run(model_dir)
    valid = generate("prosqa", 6, 99, min_nodes=8, max_nodes=10)
    result = evaluate(model, tokenizer, method, valid, batch_size=3, encoding=build_encoding(cfg.data.encoding))
    assert result.n_problems == 6 and result.n_thoughts == 6

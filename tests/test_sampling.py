"""Inference-time scaling (issue 34): N perturbed latent trajectories per problem sharing the question's cache,
scored by majority vote. Checked against greedy decoding, a plain per-sample run and counts by hand."""

import math

import pytest
import torch

from helpers import sensitive_model, tiny_prosqa
from latentcot.config import MethodConfig
from latentcot.data.records import Record
from latentcot.errors import UsageError, UserError
from latentcot.evaluation import evaluate
from latentcot.evaluation.voting import majority, sample_counts, vote_curve
from latentcot.inference import generate
import importlib
generate_module = importlib.import_module("latentcot.inference.generate")
from latentcot.inference import sampling as sampling_module
from latentcot.inference.sampling import LatentSampling, generate_samples
from latentcot.methods import build_method, tokenize_records

# the PCCoT case's exactness is that of its split pass (question, then placeholders), not bit for bit
METHODS = [("coconut", {}), ("codi", {"latents": 3}), ("pccot", {"latents": 3, "jacobi_iterations": 3})]


def _setup(name="coconut", n=5, **cfg):
    """A tiny random Llama whose output depends on everything before it (so perturbed latents are felt)."""
    records = tiny_prosqa(n)
    model, tok, method = sensitive_model(records, MethodConfig(name=name, **cfg), "llama")
    return records, model, tok, method


def _last_hidden_states(monkeypatch):
    """Records the hidden state greedy decoding starts from, in both the plain and the shared-prompt path."""
    seen = []
    original = generate_module._decode_greedy

    def spy(model, last_hidden, *args):
        seen.append(last_hidden.clone())
        return original(model, last_hidden, *args)

    monkeypatch.setattr(generate_module, "_decode_greedy", spy)
    monkeypatch.setattr(sampling_module, "_decode_greedy", spy)
    return seen


@pytest.mark.parametrize("name,cfg", METHODS)
def test_one_sample_without_noise_is_greedy_decoding(monkeypatch, name, cfg):
    records, model, tok, method = _setup(name, **cfg)
    seen = _last_hidden_states(monkeypatch)
    greedy = generate(model, tok, method, records, batch_size=8, n_thoughts=3, max_new_tokens=8)
    sampled = generate_samples(model, tok, method, records, LatentSampling(1), batch_size=8, n_thoughts=3,
                               max_new_tokens=8)
    assert [g.token_ids for g in greedy] == [s[0].token_ids for s in sampled]
    # PCCoT's split pass runs the placeholders in a call of their own: one more than greedy
    extra = 1 if name == "pccot" else 0
    assert [g.forward_passes + extra for g in greedy] == [s[0].forward_passes for s in sampled]
    before, after = seen
    if name == "pccot":
        assert torch.allclose(before, after, atol=1e-10)
    else:
        assert torch.equal(before, after)


@pytest.mark.parametrize("name,cfg", METHODS)
def test_each_sample_equals_its_own_unshared_run(name, cfg):
    """The shared question cache changes nothing: sample s of problem p is what plain greedy generation gives
    with p's latents perturbed as sample s perturbs them (a run of its own, no sharing)."""
    records, model, tok, method = _setup(name, **cfg)
    sampling = LatentSampling(samples=3, noise=2.0, dropout=0.1, seed=7)
    sampled = generate_samples(model, tok, method, records, sampling, batch_size=6, n_thoughts=3, max_new_tokens=8)
    texts = set()
    for s in range(3):
        def as_sample_s(rows, j, latent, s=s):
            return torch.stack([sampling.perturbation(p, s, j, latent[r, 0]) for r, p in enumerate(rows)])[:, None]

        alone = generate(model, tok, method, records, batch_size=2, n_thoughts=3, max_new_tokens=8,
                         latent_edit=as_sample_s)
        assert [g.token_ids for g in alone] == [x[s].token_ids for x in sampled]
        texts |= {g.text for g in alone}
    assert len(texts) > 1  # the noise is felt, so the comparison has teeth


def test_the_question_runs_once_per_problem():
    records, model, tok, method = _setup()
    widths = []
    hook = model.base_model.register_forward_pre_hook(lambda m, a, k: widths.append(
        tuple((k.get("inputs_embeds") if k.get("inputs_embeds") is not None else k["input_ids"]).shape[:2])),
        with_kwargs=True)
    try:
        gens = generate_samples(model, tok, method, records, LatentSampling(4, noise=0.5), batch_size=20,
                                n_thoughts=3, max_new_tokens=4)
    finally:
        hook.remove()
    prompt_width = max(len(method.prompt(r, 3).input_ids) for r in tokenize_records(records, tok))
    # one batch of 5 problems: the question (the columns before the first thought) once, 5 rows wide, then
    # every call 20 rows (5 problems x 4 samples), one column per thought
    assert widths[0] == (5, prompt_width - 4)
    assert all(rows == 20 for rows, _ in widths[1:])
    assert [w for _, w in widths[1:4]] == [1, 1, 1]
    per_problem = [sum(g.forward_passes for g in s) for s in gens]
    assert per_problem == [1 + sum(3 + 1 + len(g.token_ids) - 1 for g in s) for s in gens]


def test_perturbations_are_seeded_per_problem_sample_and_thought():
    sampling = LatentSampling(2, noise=0.3, seed=1)
    latent = torch.randn(4, 1, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    both = sampling.edit([5, 9])(1, latent)  # rows: problem 5 samples 0, 1; problem 9 samples 0, 1
    alone = sampling.edit([9])(1, latent[2:])
    assert torch.equal(both[2:], alone)  # independent of what else is in the batch
    assert torch.equal(both, sampling.edit([5, 9])(1, latent))
    assert not torch.equal(both, LatentSampling(2, noise=0.3, seed=2).edit([5, 9])(1, latent))
    assert not torch.equal(both, sampling.edit([5, 9])(2, latent))
    assert not torch.equal(both[0], both[1])
    # seeds that Python's hash maps alike (hash(-1) == hash(-2)) still draw apart
    assert not torch.equal(LatentSampling(2, noise=0.3, seed=-1).edit([5])(1, latent[:2]),
                           LatentSampling(2, noise=0.3, seed=-2).edit([5])(1, latent[:2]))


def test_noise_and_dropout_have_the_scale_they_name():
    latent = torch.randn(40_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    noisy = LatentSampling(noise=0.25).perturbation(0, 0, 0, latent)
    assert math.isclose(float((noisy - latent).norm() / latent.norm()), 0.25, rel_tol=0.02)
    dropped = LatentSampling(dropout=0.3).perturbation(0, 0, 0, latent)
    zeroed = dropped == 0
    assert math.isclose(float(zeroed.double().mean()), 0.3, abs_tol=0.01)
    assert torch.allclose(dropped[~zeroed], latent[~zeroed] / 0.7)


def test_sampling_is_reproducible_from_the_seed():
    records, model, tok, method = _setup()
    runs = [generate_samples(model, tok, method, records, LatentSampling(3, noise=2.0, seed=seed), batch_size=4,
                             n_thoughts=3, max_new_tokens=8) for seed in (3, 3, 4)]
    ids = [[[g.token_ids for g in s] for s in run] for run in runs]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]


def test_majority_vote_and_pass_at_k_by_hand():
    records = [Record("q1", [], "a"), Record("q2", [], "b"), Record("q3", [], "c")]
    texts = [["### a", "### x", "### x", "### a"],
             ["### y", "### b", "### b", "### y"],
             ["### z", "### z", "### c", "### c"]]
    passes = [[5, 3, 3, 3], [6, 4, 4, 4], [5, 3, 3, 3]]
    curve = {row["samples"]: row for row in vote_curve(texts, passes, records)}
    assert sorted(curve) == [1, 2, 4] == sample_counts(4)
    # k=1: only problem 1 right. k=2: ties go to the first answer given: a, y, z -> 1 right; pass@2 = 2 of 3.
    # k=4: 2-2 ties everywhere -> a, y, z again; pass@4 = 3 of 3.
    assert curve[1]["majority_accuracy"] == pytest.approx(1 / 3) and curve[1]["pass_at_k"] == pytest.approx(1 / 3)
    assert curve[2]["majority_accuracy"] == pytest.approx(1 / 3) and curve[2]["pass_at_k"] == pytest.approx(2 / 3)
    assert curve[4]["majority_accuracy"] == pytest.approx(1 / 3) and curve[4]["pass_at_k"] == 1
    assert curve[4]["agreement"] == 0.5 and curve[1]["agreement"] == 1
    assert curve[2]["forward_passes"] == pytest.approx((8 + 10 + 8) / 3)
    assert majority(["### a", "### b", "### b"]) == "### b"
    assert sample_counts(6) == [1, 2, 4, 6] and sample_counts(1) == [1]


def test_evaluate_with_samples_votes_and_counts_every_sample():
    records, model, tok, method = _setup()
    sampling = LatentSampling(3, noise=2.0, seed=0)
    result = evaluate(model, tok, method, records, batch_size=6, n_thoughts=3, max_new_tokens=8, sampling=sampling)
    samples = generate_samples(model, tok, method, records, sampling, batch_size=6, n_thoughts=3, max_new_tokens=8)
    for row, s in zip(result.rows, samples):
        assert row["samples"] == [g.text for g in s]
        assert row["generated"] == majority(row["samples"])
        assert row["forward_passes"] == sum(g.forward_passes for g in s)
    by_n = result.summary()["sampling"]["by_samples"]
    assert [r["samples"] for r in by_n] == [1, 2, 3]
    assert by_n[-1]["majority_accuracy"] == result.accuracy


@pytest.mark.parametrize("kwargs,message", [
    ({"samples": 0}, "--samples must be at least 1, got 0"),
    ({"samples": 4}, "--samples 4 needs --latent-noise or --latent-dropout"),
    ({"samples": 2, "dropout": 1.0}, "--latent-dropout must be in [0, 1), got 1.0"),
    ({"samples": 2, "noise": -1.0}, "--latent-noise must be a finite number >= 0, got -1.0"),
])
def test_bad_sampling_settings_are_refused(kwargs, message):
    with pytest.raises(UsageError) as error:
        LatentSampling(**kwargs)
    assert message in str(error.value)


def test_sampling_needs_latents():
    records, model, tok, _ = _setup()
    cot = build_method(MethodConfig(name="cot"), tok)
    with pytest.raises(UserError, match="'cot' has no continuous thoughts"):
        generate_samples(model, tok, cot, records, LatentSampling(2, noise=0.1))
    coconut = build_method(MethodConfig(name="coconut"), tok)
    with pytest.raises(UsageError, match="runs 0 thoughts"):
        generate_samples(model, tok, coconut, records, LatentSampling(2, noise=0.1), n_thoughts=0)


def test_a_pass_that_feeds_no_latent_back_is_refused():
    """PCCoT with no Jacobi iteration runs its placeholders as they are: noise would silently do nothing."""
    records, model, tok, method = _setup("pccot", latents=3, jacobi_iterations=0)
    with pytest.raises(UsageError, match="feeds no latent back"):
        generate_samples(model, tok, method, records, LatentSampling(2, noise=0.5), n_thoughts=3, max_new_tokens=4)

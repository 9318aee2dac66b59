"""The hook interventions on the latents run through (issue 34's first step): ``generate(latent_edit=...)`` changes
what a thought is fed inside the batched, cached pass. Checked against a plain no-cache recomputation."""

import pytest
import torch
from transformers import DynamicCache

from helpers import tiny_model, tiny_prosqa
from latentcot.config import MethodConfig
from latentcot.inference import generate
from latentcot.methods import build_method, tokenize_record
from latentcot.models.projection import feedback
from latentcot.tokenization import METHOD_TOKENS


def _setup(name="coconut", **cfg):
    records = tiny_prosqa(5)
    model, tok = tiny_model(records, METHOD_TOKENS, arch="llama")
    model.eval()
    return records, model, tok, build_method(MethodConfig(name=name, **cfg), tok)


def _by_hand(model, method, tok, record, n, edit):
    """One problem, no cache: each thought is fed the previous final hidden state, ``edit`` applied; returns the
    logits after ``<eot>`` (what the first answer token is read from)."""
    ids = method.prompt(tokenize_record(record, tok), n).input_ids
    first = ids.index(method.thought_id)
    embed = model.get_input_embeddings()
    embeds = embed(torch.tensor([ids[:first]]))
    with torch.no_grad():
        for j in range(n):
            state = model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1][:, -1:]
            embeds = torch.cat([embeds, edit(j, feedback(model)(state))], dim=1)
        embeds = torch.cat([embeds, embed(torch.tensor([ids[first + n:]]))], dim=1)
        return model(inputs_embeds=embeds).logits[0, -1]


def _batched(model, method, tok, records, n, edit):
    """The logits after ``<eot>`` of every problem, from the method's cached, batched pass with ``edit``."""
    batch = method.collate([method.prompt(tokenize_record(r, tok), n) for r in records], tok.pad_token_id,
                           align="end")
    with torch.no_grad():
        hidden = method.forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch["thought_mask"],
                                       DynamicCache(config=model.config), edit=edit).hidden
        return model.get_output_embeddings()(hidden[:, -1])


def test_an_identity_edit_is_the_untouched_run_bit_for_bit():
    records, model, tok, method = _setup()
    plain = generate(model, tok, method, records, batch_size=2, n_thoughts=3, max_new_tokens=6)
    seen = []

    def identity(rows, j, latent):
        seen.append((tuple(rows), j))
        return latent

    edited = generate(model, tok, method, records, batch_size=2, n_thoughts=3, max_new_tokens=6, latent_edit=identity)
    assert [g.token_ids for g in edited] == [g.token_ids for g in plain]
    assert sorted(r for rows, j in seen if j == 0 for r in rows) == list(range(len(records)))
    assert {j for _, j in seen} == {0, 1, 2}


@pytest.mark.parametrize("name,cfg", [("coconut", {}), ("pccot", {"latents": 3, "jacobi_iterations": 3})])
@pytest.mark.parametrize("where", [0, 2])
def test_an_edit_at_one_thought_matches_a_plain_recomputation(name, cfg, where):
    """PCCoT applies the edit in every Jacobi iteration: with as many iterations as latents it equals the
    sequential pass, edited or not."""
    records, model, tok, method = _setup(name, **cfg)
    torch.manual_seed(1)
    noise = torch.randn(model.get_input_embeddings().embedding_dim, dtype=torch.float64)

    def at_where(j, latent):
        return latent + 5 * noise if j == where else latent

    got = _batched(model, method, tok, records, 3, at_where)
    untouched = _batched(model, method, tok, records, 3, None)
    for row, record in enumerate(records):
        expected = _by_hand(model, method, tok, record, 3, at_where)
        assert torch.allclose(got[row], expected, atol=1e-9)
        assert (got[row] - untouched[row]).abs().max() > 1e-3  # the edit is felt, so the check has teeth


def test_a_latent_edit_refuses_adaptive_thinking():
    records, model, tok, method = _setup(halting=True)
    with pytest.raises(ValueError, match="fixed thought count"):
        generate(model, tok, method, records, n_thoughts="auto", latent_edit=lambda rows, j, latent: latent)


def test_captured_latents_are_what_a_no_cache_pass_feeds():
    from latentcot.analysis.interventions import capture_latents

    records, model, tok, method = _setup()
    got = capture_latents(model, tok, method, records, 3, batch_size=2)
    embed = model.get_input_embeddings()
    for k, record in enumerate(records):
        ids = method.prompt(tokenize_record(record, tok), 3).input_ids
        columns = [c for c, t in enumerate(ids) if t == method.thought_id]
        with torch.no_grad():
            filled, _ = method.fill_thoughts_naive(model, embed(torch.tensor([ids])), columns)
        assert torch.allclose(got[k], filled[0, columns], atol=1e-10)


def test_each_intervention_feeds_what_it_names():
    from latentcot.analysis.interventions import intervention_edit
    from latentcot.tokenization import PAUSE

    records, model, tok, _ = _setup()
    latents = torch.randn(4, 3, 8, dtype=torch.float64)
    fed = latents[[1, 3], 2][:, None]  # problems 1 and 3 at thought 2
    edit = lambda kind, seed=0: intervention_edit(kind, 2, latents, model, tok, seed)  # noqa: E731
    assert torch.equal(edit("zero")([1, 3], 1, fed), fed)  # other positions untouched
    assert torch.equal(edit("zero")([1, 3], 2, fed), torch.zeros_like(fed))
    assert torch.allclose(edit("mean")([1, 3], 2, fed), latents[:, 2].mean(0).expand(2, 1, 8))
    assert torch.equal(edit("swap")([1, 3], 2, fed), latents[[2, 0], 2][:, None])
    noise = edit("noise", seed=5)([1, 3], 2, fed)
    assert torch.allclose(noise.norm(dim=-1), fed.norm(dim=-1)) and not torch.allclose(noise, fed)
    assert torch.equal(noise, edit("noise", seed=5)([1, 3], 2, fed))
    small = torch.zeros(2, 1, model.get_input_embeddings().embedding_dim, dtype=torch.float64)
    pause = model.get_input_embeddings().weight[tok.convert_tokens_to_ids(PAUSE)]  # every vocabulary has <pause>
    assert torch.equal(edit("pause")([1, 3], 2, small), pause.expand(2, 1, -1))


def test_run_interventions_reports_every_position_and_refuses_a_method_without_latents():
    from latentcot.analysis.interventions import INTERVENTIONS, run_interventions

    records, model, tok, method = _setup()
    report = run_interventions(model, tok, method, records, n_thoughts=2, batch_size=3)
    assert list(report["by_position"]) == ["0", "1"]
    for row in report["by_position"].values():
        assert list(row) == list(INTERVENTIONS)
        assert all(0 <= v["accuracy"] <= 1 and 0 <= v["flip_rate"] <= 1 for v in row.values())
        assert all(isinstance(v["gold_logprob_change"], float) for v in row.values())
    cot = build_method(MethodConfig(name="cot"), tok)
    with pytest.raises(ValueError, match="interventions on the latents needs a continuous-thought method"):
        run_interventions(model, tok, cot, records)


def test_gold_log_probs_match_a_plain_recomputation_with_and_without_an_edit():
    from latentcot.analysis.interventions import gold_log_probs

    records, model, tok, method = _setup()
    zero_at_1 = lambda rows, j, latent: torch.zeros_like(latent) if j == 1 else latent  # noqa: E731
    for edit in (None, zero_at_1):
        got = gold_log_probs(model, tok, method, records, 3, edit, batch_size=2)
        embed = model.get_input_embeddings()
        for k, record in enumerate(records):
            t = tokenize_record(record, tok)
            ids = method.prompt(t, 3).input_ids
            first = ids.index(method.thought_id)
            embeds = embed(torch.tensor([ids[:first]]))
            with torch.no_grad():
                for j in range(3):
                    state = model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1][:, -1:]
                    fed = feedback(model)(state)
                    embeds = torch.cat([embeds, fed if edit is None else edit([k], j, fed)], dim=1)
                rest = ids[first + 3:] + list(t.answer)
                embeds = torch.cat([embeds, embed(torch.tensor([rest]))], dim=1)
                logp = torch.log_softmax(model(inputs_embeds=embeds).logits[0].double(), -1)
            start = embeds.shape[1] - len(t.answer)  # position of the first answer token
            expected = sum(float(logp[start - 1 + m, tok_id]) for m, tok_id in enumerate(t.answer))
            assert got[k] == pytest.approx(expected, abs=1e-8)
    assert gold_log_probs(model, tok, method, records, 3, zero_at_1) != gold_log_probs(model, tok, method, records, 3)


def test_the_every_latent_mean_summary_is_generation_with_that_edit():
    """The summary figure (every latent at once replaced by its position's mean) against generation with that
    edit built here from the captured latents, on a model whose output feels the change."""
    from helpers import sensitive_model
    from latentcot.analysis.interventions import capture_latents, run_interventions
    from latentcot.evaluation import extract_answer, is_correct

    records = tiny_prosqa(8)
    model, tok, method = sensitive_model(records, MethodConfig(name="coconut"), "llama")
    report = run_interventions(model, tok, method, records, 3, ["zero"], batch_size=3)
    means = capture_latents(model, tok, method, records, 3).mean(0)
    common = dict(n_thoughts=3, max_new_tokens=method.cfg.max_new_tokens, batch_size=5)
    edited = generate(model, tok, method, records, **common,
                      latent_edit=lambda rows, j, latent: means[j].to(latent).expand_as(latent))
    plain = generate(model, tok, method, records, **common)
    flips = sum(extract_answer(e.text) != extract_answer(p.text) for e, p in zip(edited, plain)) / len(records)
    assert flips > 0  # the edit is felt, so the comparison has teeth
    assert report["all_mean"]["flip_rate"] == flips
    assert report["all_mean"]["accuracy"] == sum(is_correct(e.text, r) for e, r in zip(edited, records)) / len(records)
    assert report["all_mean"]["accuracy_carried"] == report["accuracy"] - report["all_mean"]["accuracy"]

"""Each method's rendering and loss mask, checked on a hand-made problem."""

import pytest

from helpers import ANSWER, RECORD, STEPS, render, supervised, text, tok, unsupervised  # noqa: F401  (tok is a fixture)
from latentcot.config import MethodConfig
from latentcot.methods import IGNORE_INDEX, METHODS, build_method, tokenize_record
from latentcot.tokenization import BOT, EOT, PAUSE, THOUGHT, train_word_tokenizer


def test_cot_renders_everything_loss_on_steps_and_answer(tok):
    _, ex = render(tok, name="cot")
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + STEPS + ANSWER
    assert supervised(tok, ex) == STEPS + ANSWER
    assert unsupervised(tok, ex) == RECORD.question + "\n"
    assert ex.labels == [t if l != IGNORE_INDEX else l for t, l in zip(ex.input_ids, ex.labels)]


def test_no_cot_drops_steps(tok):
    _, ex = render(tok, name="no_cot")
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + ANSWER
    assert supervised(tok, ex) == ANSWER


@pytest.mark.parametrize("epoch,thoughts,kept_steps", [(0, 0, 4), (1, 1, 3), (2, 2, 2), (3, 3, 1), (4, 3, 0), (9, 3, 0)])
def test_coconut_curriculum_stages(tok, epoch, thoughts, kept_steps):
    method, ex = render(tok, epoch=epoch, name="coconut", epochs_per_stage=1, max_latent_stage=3)
    lines = STEPS.splitlines(keepends=True)
    kept = "".join(lines[len(lines) - kept_steps:]) if kept_steps else ""
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + BOT + THOUGHT * thoughts + EOT + kept + ANSWER
    # no loss on the question, the markers or the thoughts
    assert supervised(tok, ex) == kept + ANSWER
    assert ex.n_thoughts == thoughts
    if thoughts:
        assert ex.input_ids[ex.thought_start] == method.thought_id
        assert ex.input_ids[ex.thought_start - 1] == tok.convert_tokens_to_ids(BOT)


def test_coconut_c_thought_and_padding_to_max(tok):
    _, ex = render(tok, epoch=2, name="coconut", epochs_per_stage=1, max_latent_stage=6, c_thought=2)
    assert ex.n_thoughts == 4
    # stage 6 on a 4-step problem: 4 thoughts (one per step), or 6 with pad_latent_to_max
    _, ex = render(tok, epoch=6, name="coconut", epochs_per_stage=1, max_latent_stage=6)
    assert ex.n_thoughts == 4
    _, ex = render(tok, epoch=6, name="coconut", epochs_per_stage=1, max_latent_stage=6, pad_latent_to_max=True)
    assert ex.n_thoughts == 6


def test_coconut_stage_schedule_and_optimizer_resets(tok):
    method = build_method(MethodConfig(name="coconut", epochs_per_stage=5), tok)
    assert [method.stage_at(e) for e in (0, 4, 5, 9, 10)] == [0, 0, 1, 1, 2]
    assert [e for e in range(16) if method.reset_optimizer_at(e)] == [5, 10, 15]
    method = build_method(MethodConfig(name="coconut", epochs_per_stage=2, start_stage=1), tok)
    assert [method.stage_at(e) for e in range(5)] == [1, 1, 2, 2, 3]
    method = build_method(MethodConfig(name="coconut", epochs_per_stage=5, reset_optimizer=False), tok)
    assert not any(method.reset_optimizer_at(e) for e in range(16))


def test_uniform_prob_mixes_stages(tok):
    counts = {render(tok, epoch=0, rng_seed=s, name="coconut", uniform_prob=1.0, max_latent_stage=3)[1].n_thoughts
              for s in range(60)}
    assert counts == {0, 1, 2, 3}
    assert {render(tok, epoch=0, rng_seed=s, name="coconut", uniform_prob=0.0)[1].n_thoughts for s in range(20)} == {0}


def test_variants(tok):
    _, ex = render(tok, epoch=0, name="coconut_wo_curriculum", max_latent_stage=3)
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + BOT + THOUGHT * 3 + EOT + ANSWER
    _, ex = render(tok, epoch=2, name="coconut_wo_thought", epochs_per_stage=1, max_latent_stage=3)
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + BOT + EOT + "Every b is a c.\nEvery c is a d.\n" + ANSWER
    assert ex.n_thoughts == 0
    method, ex = render(tok, epoch=2, name="coconut_pause_as_thought", epochs_per_stage=1, max_latent_stage=3)
    assert not method.continuous
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + BOT + PAUSE * 2 + EOT + "Every b is a c.\nEvery c is a d.\n" + ANSWER
    assert supervised(tok, ex) == "Every b is a c.\nEvery c is a d.\n" + ANSWER


@pytest.mark.parametrize("name,expected", [
    ("cot", ""), ("no_cot", ""), ("coconut", BOT + THOUGHT * 6 + EOT), ("coconut_wo_thought", BOT + EOT),
    ("coconut_pause_as_thought", BOT + PAUSE * 6 + EOT)])
def test_inference_prompts(tok, name, expected):
    method = build_method(MethodConfig(name=name), tok)
    prompt = method.prompt(tokenize_record(RECORD, tok))
    assert text(tok, prompt.input_ids) == RECORD.question + "\n" + expected


def test_prompt_thought_count_override(tok):
    method = build_method(MethodConfig(name="coconut", inference_thoughts=2), tok)
    assert method.prompt(tokenize_record(RECORD, tok)).n_thoughts == 2
    assert method.prompt(tokenize_record(RECORD, tok), n_thoughts=0).n_thoughts == 0


def test_unknown_method_and_missing_tokens(tok):
    with pytest.raises(ValueError, match="unknown method 'cocnut'; did you mean 'coconut'"):
        build_method(MethodConfig(name="cocnut"), tok)
    bare = train_word_tokenizer(["a b c"])
    with pytest.raises(ValueError, match="needs special tokens"):
        build_method(MethodConfig(name="coconut"), bare)
    assert set(METHODS) >= {"cot", "no_cot", "coconut", "coconut_wo_curriculum", "coconut_wo_thought",
                            "coconut_pause_as_thought"}


def test_batched_tokenization_matches_one_call_per_piece():
    from helpers import tiny_model, tiny_prosqa

    from latentcot.methods import tokenize_records
    from latentcot.tokenization import ANSWER_PREFIX, METHOD_TOKENS

    records = tiny_prosqa(7, seed=11)
    _, tok = tiny_model(records, METHOD_TOKENS)

    def one(text):
        return tuple(tok(text, add_special_tokens=False)["input_ids"])

    got = tokenize_records(records, tok, chunk=3)  # chunks that cut the list unevenly
    assert len(got) == 7
    for record, t in zip(records, got):
        assert t.question == one(record.question + "\n")
        assert t.steps == tuple(one(s + "\n") for s in record.steps)
        assert t.answer == one(ANSWER_PREFIX + record.answer) + (tok.eos_token_id,)


def test_show_latent_refused_for_a_method_without_codes(tok):
    """--show-latent asks the method interface: a method that writes no codes gets one clear refusal."""
    from latentcot.evaluation.cli import _add_latent_text

    method = build_method(MethodConfig(name="cot"), tok)
    assert method.latent_text("x", "q") is None
    with pytest.raises(ValueError, match="writes no latent codes"):
        _add_latent_text(method, [{"generated": "x", "question": "q"}])

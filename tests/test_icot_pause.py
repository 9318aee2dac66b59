"""iCoT's removal schedule and smoothing, and the pause-token baseline."""

import math
import random
from collections import Counter

import pytest

from helpers import ANSWER, RECORD, STEPS, render, supervised, text, tok  # noqa: F401  (tok is a fixture)
from latentcot.config import MethodConfig
from latentcot.methods import IGNORE_INDEX, build_method, tokenize_record
from latentcot.methods.icot import icot_stage, removal_offset, tokens_removed
from latentcot.tokenization import PAUSE


# -- the schedule, as pure functions --------------------------------------------------------------

def test_schedule_counts_per_epoch():
    # 8 tokens per epoch from the first epoch (init_from a cot run), never remove-all
    removed = [tokens_removed(icot_stage(e, 0, 8, -1), 8, -1) for e in range(5)]
    assert removed == [8, 16, 24, 32, 40]
    # two cot epochs first
    removed = [tokens_removed(icot_stage(e, 2, 8, -1), 8, -1) for e in range(5)]
    assert removed == [0, 0, 8, 16, 24]
    # remove everything once the scheduled count reaches 20: 8, 16, then all
    stages = [icot_stage(e, 0, 8, 20) for e in range(6)]
    assert stages == [1, 2, 3, 3, 3, 3]
    assert [tokens_removed(s, 8, 20) for s in stages] == [8, 16, None, None, None, None]
    # a threshold that is an exact multiple: 16 reached at stage 2
    assert [tokens_removed(icot_stage(e, 1, 8, 16), 8, 16) for e in range(4)] == [0, 8, None, None]


def test_optimizer_resets_when_the_removal_changes(tok):
    method = build_method(MethodConfig(name="icot", remove_per_epoch=8, cot_epochs=2,
                                       remove_all_when_remove_beyond=20), tok)
    # removal 0,0,8,16,all,all,all: resets at 2, 3, 4 and not after everything is gone
    assert [e for e in range(8) if method.reset_optimizer_at(e)] == [2, 3, 4]
    method = build_method(MethodConfig(name="icot", cot_epochs=2, reset_optimizer=False), tok)
    assert not any(method.reset_optimizer_at(e) for e in range(8))


def test_smoothing_offset_distribution():
    lam = 4.0
    rng = random.Random(1234)
    n = 200_000
    counts = Counter(removal_offset(rng, lam) for _ in range(n))
    q = math.exp(-lam)
    expected = {o: n * (1 - q) * q ** o for o in range(3)}
    # Pearson chi-square over bins 0, 1, >=2 (2 degrees of freedom; 13.8 is the 0.1% critical value)
    observed = [counts[0], counts[1], n - counts[0] - counts[1]]
    wanted = [expected[0], expected[1], n - expected[0] - expected[1]]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, wanted))
    assert chi2 < 13.8, (observed, wanted)
    # a weaker lambda spreads further: the mean of a geometric law is q / (1 - q)
    rng = random.Random(99)
    q1 = math.exp(-1.0)
    mean = sum(removal_offset(rng, 1.0) for _ in range(50_000)) / 50_000
    assert abs(mean - q1 / (1 - q1)) < 0.02
    assert {removal_offset(random.Random(s), 0.0) for s in range(50)} == {0}


# -- rendering -------------------------------------------------------------------------------------

def steps_ids(tok):
    return [t for step in tokenize_record(RECORD, tok).steps for t in step]


@pytest.mark.parametrize("epoch,removed", [(0, 0), (1, 0), (2, 3), (3, 6), (4, 9)])
def test_icot_removes_tokens_from_the_start(tok, epoch, removed):
    _, ex = render(tok, epoch=epoch, name="icot", remove_per_epoch=3, cot_epochs=2, removal_smoothing_lambda=0)
    kept = text(tok, steps_ids(tok)[removed:])
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + kept + ANSWER
    assert supervised(tok, ex) == kept + ANSWER


def test_icot_remove_all_answers_directly(tok):
    _, ex = render(tok, epoch=5, name="icot", remove_per_epoch=3, remove_all_when_remove_beyond=10)
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + ANSWER
    # removing more tokens than the steps have also leaves question and answer
    _, ex = render(tok, epoch=30, name="icot", remove_per_epoch=8, removal_smoothing_lambda=0)
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + ANSWER


def test_icot_smoothing_adds_offsets_per_problem(tok):
    n_steps = len(steps_ids(tok))
    kept = Counter()
    for seed in range(400):
        _, ex = render(tok, epoch=0, rng_seed=seed, name="icot", remove_per_epoch=2, removal_smoothing_lambda=1.0)
        kept[len(ex.input_ids)] += 1
    base = len(tokenize_record(RECORD, tok).question) + n_steps - 2 + len(tokenize_record(RECORD, tok).answer)
    # mostly the scheduled 2 tokens removed, sometimes 3 or more, never fewer
    assert max(kept) == base and kept[base] > kept[base - 1] > 0
    # in the cot epochs there is no offset at all
    assert {len(render(tok, epoch=0, rng_seed=s, name="icot", cot_epochs=1, removal_smoothing_lambda=1.0)[1].input_ids)
            for s in range(50)} == {base + 2}


def test_icot_prompt_is_the_question(tok):
    method = build_method(MethodConfig(name="icot"), tok)
    assert text(tok, method.prompt(tokenize_record(RECORD, tok)).input_ids) == RECORD.question + "\n"
    with pytest.raises(ValueError, match="method.remove_per_epoch"):
        build_method(MethodConfig(name="icot", remove_per_epoch=0), tok)


def test_pause_tokens_between_question_and_answer(tok):
    method, ex = render(tok, name="pause", n_pause=4)
    assert text(tok, ex.input_ids) == RECORD.question + "\n" + PAUSE * 4 + ANSWER
    assert supervised(tok, ex) == ANSWER  # no loss on the pauses
    assert not method.continuous and ex.n_thoughts == 0
    prompt = method.prompt(tokenize_record(RECORD, tok))
    assert text(tok, prompt.input_ids) == RECORD.question + "\n" + PAUSE * 4
    assert text(tok, method.prompt(tokenize_record(RECORD, tok), n_thoughts=1).input_ids) == RECORD.question + "\n" + PAUSE
    # default: as many pauses as Coconut has thoughts
    method = build_method(MethodConfig(name="pause", c_thought=2, max_latent_stage=3), tok)
    assert method.default_thoughts() == 6
    assert all(label == IGNORE_INDEX for label in method.train_example(
        tokenize_record(RECORD, tok), 0, random.Random(0)).labels[:-len(tokenize_record(RECORD, tok).answer)])


# -- through the trainer ---------------------------------------------------------------------------

def test_icot_and_pause_train_and_evaluate(tmp_path):
    from dataclasses import replace

    from helpers import tiny_config, tiny_prosqa

    from latentcot.evaluation import extract_answer
    from latentcot.inference import generate
    from latentcot.training import train
    from latentcot.training.metrics import read_metrics

    icot = ("method.name=icot", "method.cot_epochs=1", "method.remove_per_epoch=4", "train.epochs=3",
            "train.eval_batch_size=4", "method.max_new_tokens=40")
    valid = tiny_prosqa(4, seed=5)
    # A tiny model answers nothing right, and an accuracy of 0 would not show which model or problems were
    # scored: two problems take as gold what the same training (same seed, same process) ends up writing.
    rehearsal = train(tiny_config(tmp_path, *icot, name="rehearsal"), train_records=tiny_prosqa(8))
    written = generate(rehearsal.model, rehearsal.tokenizer, rehearsal.method, valid, batch_size=4)
    valid = [replace(r, answer=extract_answer(g.text)) for r, g in zip(valid[:2], written)] + valid[2:]

    optimizers = []
    cfg = tiny_config(tmp_path, *icot, "train.eval_every=3", name="icot")
    trainer = train(cfg, train_records=tiny_prosqa(8), valid_records=valid,
                    on_epoch_end=lambda t, e: optimizers.append(t.optimizer))
    epochs = [row for row in read_metrics(cfg.output_dir + "/metrics.jsonl") if row["type"] == "epoch"]
    assert [row["stage"] for row in epochs] == [0, 1, 2]
    # the objects are kept alive in the list, so no two can share an id() (a freed optimizer's id may be reused)
    assert len({id(opt) for opt in optimizers}) == 3  # a fresh optimizer whenever the removal count changed
    assert trainer.state.history[-1]["accuracy"] == 0.5
    assert trainer.state.history[-1]["n_problems"] == 4

    cfg = tiny_config(tmp_path, "method.name=pause", "method.n_pause=3", "train.epochs=1", "train.eval_every=1",
                      "train.eval_batch_size=4", "method.max_new_tokens=40", name="pause")
    trainer = train(cfg, train_records=tiny_prosqa(8), valid_records=tiny_prosqa(4, seed=5))
    assert trainer.state.history[-1]["n_thoughts"] == 0  # pauses are prompt tokens, not thoughts

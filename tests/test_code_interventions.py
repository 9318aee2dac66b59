"""Interventions on Token Assorted's written codes (latentcot.analysis.code_interventions), on a tiny assorted LM
trained here for a few steps until it writes ``<bol> codes <eol>``, text and ``### answer`` by itself."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from helpers import tiny_model, tiny_prosqa
from latentcot.analysis.code_interventions import (CODE_INTERVENTIONS, all_codes_replaced, answer_log_probs,
                                                   answer_marker, code_positions, continue_answers, forced_prefixes,
                                                   random_code, reasoning_before_answer, replacement_rule,
                                                   run_code_interventions)
from latentcot.config import MethodConfig
from latentcot.errors import UsageError
from latentcot.evaluation.metrics import extract_answer, is_correct
from latentcot.inference import generate
from latentcot.methods import build_method, tokenize_records
from latentcot.tokenization import (BEGIN_LATENT, END_LATENT, METHOD_TOKENS, PAUSE, add_method_tokens,
                                    latent_code_token, record_text, train_word_tokenizer)

K = 6  # codebook size
CODES = tuple(latent_code_token(i) for i in range(K))


@pytest.fixture(scope="module")
def run():
    """Eight problems, each rendered with its own codes (2 or 4 of them) and trained on until memorized enough to
    write a latent block; greedy answers decoded in batches of 4."""
    records = tiny_prosqa(8)
    model, tok = tiny_model(records, METHOD_TOKENS + CODES, arch="gpt2", dtype="float32")
    method = build_method(MethodConfig(name="assorted", max_new_tokens=40), tok)
    method.chunk_len, method.codes_per_chunk = 6, 2  # what prepare() takes from a VQ-VAE
    examples = []
    for k, t in enumerate(tokenize_records(records, tok)):
        t = dataclasses.replace(t, latent=tuple((k + 2 * j) % K for j in range(2 * method.n_chunks(t))))
        examples.append(method.render(t, 1 + k % 2))
    batch = method.collate(examples, tok.pad_token_id, align="right")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(35):
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.double().eval()  # float64 from here: batched and one-row computations agree far below any margin
    written = [g.token_ids for g in generate(model, tok, method, records, batch_size=4)]
    positions = [code_positions(method, w) for w in written]
    assert sum(len(p) >= 2 for p in positions) >= 3, "the tiny LM must write latent blocks for these tests to bite"
    prompts = [method.prompt(t, 0).input_ids for t in tokenize_records(records, tok)]
    return SimpleNamespace(records=records, model=model, tok=tok, method=method, written=written,
                           positions=positions, prompts=prompts)


@torch.no_grad()
def greedy_without_cache(model, ids, limit, eos):
    """Greedy tokens after ``ids``, every step re-running the whole sequence (EOS dropped from the result)."""
    written = []
    while len(written) < limit:
        token = int(model(torch.tensor([ids + written])).logits[0, -1].argmax())
        if token == eos:
            break
        written.append(token)
    return written


@torch.no_grad()
def plain_gold(model, context, answer):
    """log p(answer | context) from one pass of the model over the whole sequence."""
    logp = torch.log_softmax(model(torch.tensor([context + answer])).logits[0].double(), -1)
    return sum(float(logp[len(context) - 1 + m, t]) for m, t in enumerate(answer))


def test_code_positions_are_the_codes_of_the_first_block(run):
    method, tok = run.method, run.tok
    bol, eol, pause = (tok.convert_tokens_to_ids(t) for t in (BEGIN_LATENT, END_LATENT, PAUSE))
    c = method.latent_ids
    assert code_positions(method, [7, bol, c[1], pause, c[2], eol, c[3], bol, c[4]]) == [2, 4]
    assert code_positions(method, [c[1], 7]) == []  # no block
    assert code_positions(method, [bol, c[0], c[5]]) == [1, 2]  # never closed
    for w, p in zip(run.written, run.positions):
        assert [w[j] for j in p] == [t for t in w[:w.index(eol) if eol in w else None] if t in method.code_of]


def test_forcing_the_original_codes_writes_the_untouched_answers(run):
    """The identity intervention: prompt + the untouched answer up to code i, continued greedily (in other batches
    than generate used), is the untouched answer again, token for token."""
    original = lambda k, i: run.written[k][run.positions[k][i]]  # noqa: E731
    for i in range(max(map(len, run.positions))):
        forced = forced_prefixes(run.written, run.positions, i, original)
        rows = [k for k, f in enumerate(forced) if f is not None]
        assert rows == [k for k, p in enumerate(run.positions) if len(p) > i]
        got = continue_answers(run.model, run.tok, run.method, [run.prompts[k] for k in rows],
                               [forced[k] for k in rows], 40, batch_size=3)
        assert got == [run.written[k] for k in rows]
        assert all(len(run.written[k]) > len(forced[k]) + 2 for k in rows)  # the model wrote on after the prefix
        # a tighter limit counts the forced tokens too: the untouched answer cut at the limit
        limit = max(len(forced[k]) for k in rows) + 2
        short = continue_answers(run.model, run.tok, run.method, [run.prompts[k] for k in rows],
                                 [forced[k] for k in rows], limit, batch_size=3)
        assert short == [run.written[k][:limit] for k in rows]


def test_each_intervention_forces_what_it_names(run):
    w, p, method, tok = run.written, run.positions, run.method, run.tok
    eol, pause = tok.convert_tokens_to_ids(END_LATENT), tok.convert_tokens_to_ids(PAUSE)
    for i in (0, 1, 3):
        having = [k for k in range(len(w)) if len(p[k]) > i]
        forced = {kind: forced_prefixes(w, p, i, replacement_rule(kind, method, tok, w, p, seed=0))
                  for kind in CODE_INTERVENTIONS}
        for kind, prefixes in forced.items():
            assert [k for k, f in enumerate(prefixes) if f is not None] == having, kind
            assert all(prefixes[k][:-1] == w[k][:p[k][i]] for k in having), kind  # the untouched tokens before code i
        for pos, k in enumerate(having):
            fed = {kind: prefixes[k][-1] for kind, prefixes in forced.items()}
            assert fed["random"] in method.latent_ids and fed["random"] != w[k][p[k][i]]
            other = having[(pos + 1) % len(having)]  # the next problem with a code i, wrapping around
            assert fed["swap"] == w[other][p[other][i]]
            assert fed["pause"] == pause
            assert fed["truncate"] == eol
            if i:
                assert forced["truncate"][k][-2] == w[k][p[k][i - 1]]  # the block ends right after code i - 1
    everything = all_codes_replaced(method, w, p, seed=0)
    for k in range(len(w)):
        if not p[k]:
            assert everything[k] is None
            continue
        assert len(everything[k]) == p[k][-1] + 1
        for j, token in enumerate(everything[k]):
            if j in p[k]:
                assert token == random_code(method, w[k][j], 0, k, p[k].index(j)) != w[k][j]
            else:
                assert token == w[k][j]


def test_random_codes_follow_the_seed(run):
    w, p, method, tok = run.written, run.positions, run.method, run.tok
    draws = lambda seed: [replacement_rule("random", method, tok, w, p, seed)(k, i)  # noqa: E731
                          for k in range(len(w)) for i in range(len(p[k]))]
    assert draws(0) == draws(0)
    assert draws(0) != draws(1)
    # every other code is drawn, the original never
    original = method.latent_ids[2]
    seen = {random_code(method, original, seed, 0, 0) for seed in range(200)}
    assert seen == set(method.latent_ids) - {original}


def test_gold_log_prob_matches_a_plain_pass_over_the_whole_sequence(run):
    tok, eos = run.tok, run.tok.eos_token_id
    answers = [list(t.answer) for t in tokenize_records(run.records, tok)]
    marker = tok.convert_tokens_to_ids("###")
    assert answer_marker(answers[0], tok) == [marker]
    contexts = [[*q, *reasoning_before_answer(w, answer_marker(a, tok), eos)]
                for q, w, a in zip(run.prompts, run.written, answers)]
    got = answer_log_probs(run.model, run.method, tok.pad_token_id, contexts, answers, batch_size=3)
    for k in (0, 1):
        assert marker in run.written[k]
        expected = plain_gold(run.model, run.prompts[k] + run.written[k][:run.written[k].index(marker)], answers[k])
        assert got[k] == pytest.approx(expected, abs=1e-9)
    # no marker written: the gold answer is scored after everything, less the end-of-sequence token
    assert reasoning_before_answer([5, 6, eos], [marker], eos) == [5, 6]
    assert reasoning_before_answer([5, marker, 6, marker], [marker], eos) == [5]


def test_report_has_the_latent_interventions_schema(run):
    from latentcot.analysis.interventions import markdown_table

    n = max(map(len, run.positions))
    report = run_code_interventions(run.model, run.tok, run.method, run.records, n_codes=n + 1, batch_size=3)
    assert report["latents"] == "codes" and report["n_thoughts"] == n + 1 and report["n_problems"] == 8
    assert list(report["by_position"]) == [str(i) for i in range(n + 1)]
    assert report["n_with_code"] == {str(i): sum(len(p) > i for p in run.positions) for i in range(n + 1)}
    # swaps that hand over the problem's own code, counted by hand: the next problem (wrapping) with a code i
    codes = [[w[j] for j in p] for w, p in zip(run.written, run.positions)]
    same = {}
    for i in range(n + 1):
        have = [k for k in range(8) if len(codes[k]) > i]
        same[str(i)] = sum(codes[k][i] == codes[have[(have.index(k) + 1) % len(have)]][i] for k in have)
    assert report["swap_same_code"] == same and any(same.values())  # some swaps do hand over the same code
    for i, row in report["by_position"].items():
        with_code = report["n_with_code"][i]
        expected = {k: c["flip_rate"] * 8 / with_code for k, c in row.items()} if with_code else {}
        assert report["flip_rate_with_code"][i] == pytest.approx(expected)
    for row in report["by_position"].values():
        assert list(row) == list(CODE_INTERVENTIONS)
        for cell in row.values():
            assert set(cell) == {"accuracy", "flip_rate", "gold_logprob_change"}
            assert 0 <= cell["accuracy"] <= 1 and 0 <= cell["flip_rate"] <= 1
    # past every problem's codes nothing is touched
    assert all(cell == {"accuracy": report["accuracy"], "flip_rate": 0.0, "gold_logprob_change": 0.0}
               for cell in report["by_position"][str(n)].values())
    assert report["all_replaced"]["kind"] == "random" and set(report["all_replaced"]) == {"kind", "accuracy",
                                                                                          "flip_rate"}
    assert "| 1 |" in markdown_table(report)
    # one cell recomputed without the module: truncation before code 1, then greedy decoding without a cache
    eol, marker = (run.tok.convert_tokens_to_ids(t) for t in (END_LATENT, "###"))
    eos = run.tok.eos_token_id
    answers = [list(t.answer) for t in tokenize_records(run.records, run.tok)]
    texts = [run.tok.decode(w[:-1] if w[-1] == eos else w) for w in run.written]
    change = 0.0
    for k, (w, p) in enumerate(zip(run.written, run.positions)):
        if len(p) > 1:
            forced = w[:p[1]] + [eol]
            wrote = forced + greedy_without_cache(run.model, run.prompts[k] + forced, 40 - len(forced), eos)
            texts[k] = run.tok.decode(wrote)
            before = lambda ids: ids[:ids.index(marker)] if marker in ids else ids  # noqa: E731
            change += (plain_gold(run.model, run.prompts[k] + before(wrote), answers[k])
                       - plain_gold(run.model, run.prompts[k] + before(w), answers[k])) / 8
    base = [extract_answer(run.tok.decode(w[:-1] if w[-1] == eos else w)) for w in run.written]
    flips = sum(extract_answer(t) != b for t, b in zip(texts, base)) / 8
    assert flips > 0  # the tiny LM reads its codes, so the check has teeth
    assert report["by_position"]["1"]["truncate"]["flip_rate"] == flips
    assert report["by_position"]["1"]["truncate"]["accuracy"] == sum(map(is_correct, texts, run.records)) / 8
    assert report["by_position"]["1"]["truncate"]["gold_logprob_change"] == pytest.approx(change, abs=1e-9)
    assert change < -1  # the tiny LM reads its codes, so the check has teeth
    # the same numbers whatever the batch size (random draws are per problem and position)
    again = run_code_interventions(run.model, run.tok, run.method, run.records, n_codes=2,
                                   kinds=("random", "truncate"), batch_size=8)
    for i in ("0", "1"):
        for kind in ("random", "truncate"):
            assert again["by_position"][i][kind] == pytest.approx(report["by_position"][i][kind], abs=1e-9)
    assert again["all_replaced"] == report["all_replaced"]


def test_refusals(run):
    args = (run.model, run.tok)
    cot = build_method(MethodConfig(name="cot"), run.tok)
    with pytest.raises(UsageError, match="code interventions need a Token Assorted run; method 'cot'"):
        run_code_interventions(*args, cot, run.records)
    with pytest.raises(UsageError, match=r"--n-thoughts \(the code positions probed\) must be >= 1, got 0"):
        run_code_interventions(*args, run.method, run.records, n_codes=0)
    with pytest.raises(UsageError, match=r"unknown code interventions \['melt'\]"):
        run_code_interventions(*args, run.method, run.records, kinds=("random", "melt"))
    no_pause = train_word_tokenizer([record_text(r) for r in run.records])
    add_method_tokens(no_pause, tuple(t for t in METHOD_TOKENS if t != PAUSE) + CODES)
    method = build_method(MethodConfig(name="assorted"), no_pause)
    with pytest.raises(UsageError, match="'pause' intervention needs the <pause> token"):
        run_code_interventions(run.model, no_pause, method, run.records, kinds=("truncate", "pause"))


def test_a_model_that_writes_no_code_is_refused(run, monkeypatch):
    """Answers with no latent block leave nothing to probe: one clear error, not an empty table to plot."""
    import latentcot.analysis.code_interventions as module
    from latentcot.inference.generate import Generation

    eos = run.tok.eos_token_id
    monkeypatch.setattr(module, "generate", lambda *a, **k: [Generation("", [eos], 0, 1, 1, 0.0) for _ in run.records])
    with pytest.raises(UsageError, match="no answer wrote a latent code"):
        run_code_interventions(run.model, run.tok, run.method, run.records)

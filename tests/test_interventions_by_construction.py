"""Interventions on a hand-built model whose answer depends only on latent J: the real ``run_interventions`` ->
``generate`` -> ``forward_hidden`` path must then see flips at J and nowhere else (issue requirement). No trained
weights: the stub below computes its outputs by rule, reading earlier positions back from the KV cache."""

import pytest
import torch
from torch import nn
from transformers import DynamicCache, LlamaConfig
from transformers.modeling_outputs import BaseModelOutputWithPast

from latentcot.analysis.interventions import gold_log_probs, run_interventions
from latentcot.config import MethodConfig
from latentcot.data.records import Record
from latentcot.inference import generate
from latentcot.methods import build_method
from latentcot.tokenization import BOT, EOT, METHOD_TOKENS, add_method_tokens, train_word_tokenizer

J, N = 1, 3  # the one latent the answer reads: neither the first nor the last of N
# Different lengths, so batches are left-padded; answers alternate, so every swap hands over the other answer.
QUESTIONS = ["Ann likes apple", "Big Bob likes pear", "Cy likes apple", "Ann and Bob like pear",
             "Dee likes apple", "Old Cy likes pear"]
RECORDS = [Record(q, ["step"], q.split()[-1]) for q in QUESTIONS]


class _Base(nn.Module):
    """Stands in for the transformer: output at each position is a rule of the inputs so far (masked)."""

    def __init__(self, owner):
        super().__init__()
        self.owner = [owner]  # a list, so the owner is not registered as a submodule (no cycle)

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None, use_cache=None,
                output_hidden_states=False, cache=None, **_):
        x = self.owner[0].embed(input_ids) if inputs_embeds is None else inputs_embeds
        # The cache holds every input seen, as attention's keys would: later calls read earlier positions there.
        full = x if cache is None else cache.update(x[:, None], x[:, None], 0)[0][:, 0]
        past = full.shape[1] - x.shape[1]
        out = torch.stack([torch.stack([self.owner[0].rule(full[b, :t + 1], attention_mask[b, :t + 1])
                                        for t in range(past, full.shape[1])]) for b in range(x.shape[0])])
        return BaseModelOutputWithPast(last_hidden_state=out, cache=cache,
                                       hidden_states=(x, out) if output_hidden_states else None)


class StubLM(nn.Module):
    """One-hot token embeddings (d > vocabulary: dimension v is the thought slot) and an identity LM head, so the greedy token
    is the one whose direction the rule outputs.

    Thinking (at ``<bot>`` and each thought): the latent for thought k is 2 * (last question word) + the mean of
    the question's embeddings + 0.1 * (k + 1) in the slot dimension. It reads the question only, never the
    latent just fed, so an edit at thought i cannot reach latent J through the chain.

    Answering (from ``<eot>``): ``###``, then the option (apple/pear) whose coordinate of latent J exceeds half
    the latent's norm, else ``unsure``; then EOS. Latent J never fed (truncated) counts as zero."""

    def __init__(self, tok):
        super().__init__()
        self.v = len(tok)
        d = 2 * ((self.v + 2) // 2)  # room for the slot; even, as the config's RoPE check wants
        self.embed = nn.Embedding(self.v, d, dtype=torch.float64)
        self.head = nn.Linear(d, self.v, bias=False, dtype=torch.float64)
        with torch.no_grad():
            self.embed.weight.copy_(torch.eye(self.v, d))
            self.head.weight.copy_(10 * torch.eye(self.v, d))  # sharp, so gold log-probs move
        ids = tok.convert_tokens_to_ids
        self.bot, self.eot = self.embed.weight[ids(BOT)].detach(), self.embed.weight[ids(EOT)].detach()
        self.options = [ids("Ġapple"), ids("Ġpear")]
        self.hashes, self.unsure, self.eos = ids("###"), ids("Ġunsure"), tok.eos_token_id
        self.base_model = _Base(self)
        self.config = LlamaConfig(vocab_size=self.v, hidden_size=d, num_hidden_layers=1,
                                  num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=512)

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.head

    def one_hot(self, token):
        return self.embed.weight[token].detach()

    def rule(self, seen, mask):
        real = mask.bool()
        # Exact matches: no edit (zero, noise, a swapped latent, <pause>) can pass for <bot> or <eot>.
        bot = [t for t in range(len(seen)) if real[t] and torch.equal(seen[t], self.bot)]
        if not bot:
            return torch.zeros_like(seen[-1])
        b, t = bot[0], len(seen) - 1
        eot = [s for s in range(b + 1, t + 1) if torch.equal(seen[s], self.eot)]
        if not eot:
            latent = 2 * seen[b - 2] + seen[:b][real[:b]].mean(0)  # b - 1 is the question's newline
            latent[self.v] += 0.1 * (t - b + 1)
            return latent
        e = eot[0]
        if t == e:
            return self.one_hot(self.hashes)
        if t > e + 1:
            return self.one_hot(self.eos)
        latent = seen[b + 1 + J] if b + 1 + J < e else torch.zeros_like(seen[e])
        scores = latent[self.options]
        if scores.max() > 0.5 * latent.norm():
            return self.one_hot(self.options[int(scores.argmax())])
        return self.one_hot(self.unsure)


def _setup():
    tok = train_word_tokenizer([q + "\n### " + q.split()[-1] for q in QUESTIONS] + ["### unsure"])
    add_method_tokens(tok, METHOD_TOKENS)
    method = build_method(MethodConfig(name="coconut", inference_thoughts=N), tok)
    return StubLM(tok).eval(), tok, method


def test_an_answer_built_on_one_latent_flips_only_under_interventions_there():
    model, tok, method = _setup()
    report = run_interventions(model, tok, method, RECORDS, n_thoughts=N, batch_size=4)
    assert report["accuracy"] == 1.0
    rows = report["by_position"]
    assert list(rows) == [str(i) for i in range(N)]
    # At J: zero leaves no option dominant -> "unsure" everywhere; swap hands over
    # the neighbour's latent J, whose answer is the other option (they alternate); noise of the same norm
    # almost never puts half its length on one option's axis; <pause>'s one-hot has no option coordinate at all.
    # So each flips every answer.
    for kind in ("zero", "noise", "swap", "pause"):
        assert rows[str(J)][kind]["flip_rate"] == 1.0, kind
        assert rows[str(J)][kind]["accuracy"] == 0.0, kind
        assert rows[str(J)][kind]["gold_logprob_change"] < -1, kind
    # Truncating at i <= J runs only i thoughts: latent J is never fed, counts as zero -> "unsure".
    for i in range(J + 1):
        assert rows[str(i)]["truncate"]["flip_rate"] == 1.0, i
    # mean at J averages apple and pear (3 each): which wins rests on a near tie, so it is not asserted.
    # Elsewhere nothing may move; truncating after J still feeds latent J, so it must not move either.
    for i in (i for i in range(N) if i != J):
        for kind in ("zero", "mean", "noise", "swap", "pause") + (("truncate",) if i > J else ()):
            cell = rows[str(i)][kind]
            assert cell["flip_rate"] == 0.0 and cell["accuracy"] == 1.0, (i, kind)
            assert cell["gold_logprob_change"] == pytest.approx(0.0, abs=1e-9), (i, kind)


def test_truncating_at_the_full_count_is_the_untouched_run():
    """run_interventions probes truncation at i < N only; at i = N no thought is dropped, and no edit is
    involved, so it must write what the untouched and identity-edited runs write, token for token."""
    model, tok, method = _setup()
    truncated = generate(model, tok, method, RECORDS, batch_size=4, n_thoughts=N)
    untouched = generate(model, tok, method, RECORDS, batch_size=4)  # the method's default count, N
    identity = generate(model, tok, method, RECORDS, batch_size=4, n_thoughts=N,
                        latent_edit=lambda rows, j, latent: latent)
    expected = [[model.hashes, tok.convert_tokens_to_ids("Ġ" + r.answer), tok.eos_token_id] for r in RECORDS]
    assert [g.token_ids for g in truncated] == [g.token_ids for g in untouched] == expected
    assert [g.token_ids for g in identity] == expected
    plain = gold_log_probs(model, tok, method, RECORDS, N, batch_size=4)
    assert plain == gold_log_probs(model, tok, method, RECORDS, N, lambda rows, j, latent: latent, batch_size=4)
    assert max(abs(g) for g in plain) < 1e-2  # sure of the gold answer: 3 tokens, each 10 logits ahead

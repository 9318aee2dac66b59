"""The cached continuous-thought pass against a plain recomputation (one full pass per thought)."""

import random

import pytest
import torch
import torch.nn.functional as F

from helpers import tiny_model, tiny_prosqa
from latentcot.config import MethodConfig
from latentcot.methods import IGNORE_INDEX, build_method, tokenize_records
from latentcot.models import continuous
from latentcot.models.continuous import batch_loss, collate, forward_hidden, position_ids, thought_columns


def reference_loss(model, batch):
    """Independent computation: no cache; every thought re-runs the whole sequence from scratch."""
    input_ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    thought_mask = batch["thought_mask"]
    embeds = model.get_input_embeddings()(input_ids)
    positions = position_ids(mask)
    for col in range(input_ids.shape[1]):
        rows = thought_mask[:, col]
        if not rows.any():
            continue
        out = model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, output_hidden_states=True)
        fed = out.hidden_states[-1][:, col - 1]
        embeds = embeds.clone()
        embeds[rows, col] = fed[rows]
    logits = model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")


def coconut_batch(arch, stage_epoch, pad_latent_to_max=False, c_thought=1):
    records = tiny_prosqa(6, seed=3)
    cfg = MethodConfig(name="coconut", epochs_per_stage=1, max_latent_stage=3, c_thought=c_thought,
                       pad_latent_to_max=pad_latent_to_max)
    method_cls = build_method.__globals__["method_class"](cfg.name)
    model, tok = tiny_model(records, method_cls.special_tokens, arch=arch)
    model.eval()  # no dropout: both computations must see the same function
    method = build_method(cfg, tok)
    examples = [method.train_example(r, stage_epoch, random.Random(0)) for r in tokenize_records(records, tok)]
    batch = collate(examples, tok.pad_token_id, method.thought_id, align="thoughts")
    return model, batch, examples


# In float64 (tests/helpers.tiny_model, RMSNorm included). Measured: losses and gradients (up to 28 in size)
# agree to about 1e-14 for both architectures, under 1, 2 and 4 threads.
GRAD_ATOL = 1e-10


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("stage,pad_max,c", [(3, False, 1), (3, True, 2), (4, False, 2)])
def test_cached_pass_matches_plain_recomputation(arch, stage, pad_max, c):
    model, batch, examples = coconut_batch(arch, stage, pad_max, c)
    # the batch really exercises padding, different question lengths and different thought counts
    assert (batch["attention_mask"] == 0).any()
    assert len({e.thought_start for e in examples}) > 1
    if not pad_max:
        assert len({e.n_thoughts for e in examples}) > 1
    assert batch["thought_mask"].sum() == sum(e.n_thoughts for e in examples) > 0

    loss, n_tokens, _ = batch_loss(model, batch)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected = reference_loss(model, batch)
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))

    assert n_tokens == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert torch.allclose(loss, expected, rtol=1e-10, atol=1e-10), (loss.item(), expected.item())
    for (name, _), g, e in zip(model.named_parameters(), grads, expected_grads):
        assert torch.allclose(g, e, rtol=0, atol=GRAD_ATOL), name
    # the thoughts matter: replacing them by token embeddings changes the loss
    plain = forward_hidden(model, batch["input_ids"], batch["attention_mask"], None).hidden
    from latentcot.models.continuous import lm_loss_sum

    assert not torch.allclose(lm_loss_sum(model, plain, batch["labels"])[0], loss)


def test_gradient_flows_into_first_thought_from_the_answer(monkeypatch):
    """Thought 1's input (the question's last hidden state) gets gradient from the answer through the thoughts
    fed back, not only through attention to the <bot> column."""
    model, batch, _ = coconut_batch("gpt2", 3, True, 1)
    start, end = thought_columns(batch["thought_mask"])
    supervised = (batch["labels"] != IGNORE_INDEX).nonzero()[:, 1]
    assert int(supervised.min()) >= end  # the loss is the answer's alone

    def gradient_at_bot():
        embedded = []
        hook = model.get_input_embeddings().register_forward_hook(lambda m, a, out: embedded.append(out))
        try:
            loss = batch_loss(model, batch).lm_sum
        finally:
            hook.remove()
        return torch.autograd.grad(loss, embedded[0])[0][:, start - 1]

    through_both = gradient_at_bot()
    # Later columns attend to <bot> directly, so its gradient alone cannot show that thoughts carry any:
    # a pass whose fed-back thoughts are cut from the graph keeps only that part.
    real_feedback = continuous.feedback
    monkeypatch.setattr(continuous, "feedback", lambda m: (lambda hidden, f=real_feedback(m): f(hidden).detach()))
    through_attention = gradient_at_bot()
    through_thoughts = through_both - through_attention
    assert (through_attention.norm(dim=-1) > 0).all()
    # Measured: the thoughts carry 73-77% of each row's gradient norm (float64, so any thread count).
    assert (through_thoughts.norm(dim=-1) > 0.1 * through_both.norm(dim=-1)).all(), through_thoughts.norm(dim=-1)


def test_collate_aligns_first_thought_column_and_keeps_tokens():
    _, batch, examples = coconut_batch("gpt2", 2)
    first = {int(row.nonzero()[0]) for row in batch["thought_mask"]}
    assert len(first) == 1
    for ids, mask, labels, example in zip(batch["input_ids"], batch["attention_mask"], batch["labels"], examples):
        real = mask.bool()
        assert ids[real].tolist() == example.input_ids
        assert labels[real].tolist() == example.labels
        assert (labels[~real] == IGNORE_INDEX).all()

"""Tiny models, data, configs and reference computations that tests build themselves (no network, seconds
on CPU). Test modules share them through this one module, never by importing one another."""

from __future__ import annotations

import random

import pytest
import torch
import yaml

from latentcot.config import Config, MethodConfig, ModelConfig, TokenizerConfig, apply_overrides
from latentcot.data.generators import generate
from latentcot.data.io import save_records
from latentcot.data.records import Record
from latentcot.methods import IGNORE_INDEX, build_method, method_class, tokenize_record
from latentcot.models import build_model_and_tokenizer
from latentcot.tokenization import METHOD_TOKENS, add_method_tokens, train_word_tokenizer

SMALL_PROSQA = {"min_nodes": 8, "max_nodes": 10}


def tiny_prosqa(n: int = 16, seed: int = 0):
    return generate("prosqa", n, seed, **SMALL_PROSQA)


def tiny_model(records, method_tokens, arch: str = "gpt2", seed: int = 0, dtype: str = "float64"):
    """A tiny random model, float64 by default: the tests compare two computations of the same thing
    (cached against recomputed, batched against one row), and float32 rounding, which depends on the
    machine's thread count and vector width, can flip a near-tie argmax or move a gradient past a
    tolerance. In float64 the difference is about 1e-16, far below any margin a test relies on."""
    torch.manual_seed(seed)
    model, tokenizer = build_model_and_tokenizer(ModelConfig(arch=arch, preset="tiny", n_positions=512, dtype=dtype),
                                                 TokenizerConfig(kind="word"), records, method_tokens)
    if dtype == "float64":
        keep_rms_norms_in_float64(model)
    return model, tokenizer


def keep_rms_norms_in_float64(model) -> None:
    """transformers' RMSNorm (Llama) computes in float32 whatever the input's dtype, which would put
    float32 rounding (1e-7) back into a float64 comparison: compute it in the input's dtype instead."""
    import types

    def forward(self, hidden):
        variance = hidden.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden * torch.rsqrt(variance + self.variance_epsilon))

    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(forward, module)


# -- training runs ---------------------------------------------------------------------------------

def tiny_config(tmp_path, *overrides, name="run"):
    """A tiny Coconut run; ``overrides`` that choose another method drop the Coconut keys it does not read,
    as a config file's are dropped when the command line changes its method.name."""
    base = apply_overrides(Config(), ["method.name=coconut", "method.epochs_per_stage=1",
                                      "method.max_latent_stage=2"])
    return apply_overrides(base, [
        f"output_dir={tmp_path / name}", "model.preset=tiny", "model.n_positions=256", "train.batch_size=8",
        "train.lr=3e-3", "train.progress=false", "train.eval_every=0", "train.log_every=1", "seed=0", *overrides])


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- generation references -------------------------------------------------------------------------

MAX_NEW = 12


@torch.no_grad()
def reference_generate(model, tokenizer, method, record, max_new_tokens, n_thoughts=None):
    """Independent computation, one problem, no cache: every thought re-runs the whole prompt and takes
    the final hidden state before it; every answer token re-runs the whole sequence.

    Returns the token ids (EOS included when written) and each step's logits.
    """
    example = method.prompt(tokenize_record(record, tokenizer), n_thoughts)
    ids = torch.tensor([example.input_ids])
    embeds = model.get_input_embeddings()(ids)
    if method.continuous:
        for col in range(ids.shape[1]):
            if ids[0, col] == method.thought_id:
                hidden = model(inputs_embeds=embeds, output_hidden_states=True, use_cache=False).hidden_states[-1]
                embeds = embeds.clone()
                embeds[0, col] = hidden[0, col - 1]
    written, step_logits = [], []
    for _ in range(max_new_tokens):
        logits = model(inputs_embeds=embeds, use_cache=False).logits[0, -1]
        step_logits.append(logits)
        written.append(int(logits.argmax()))
        if written[-1] == tokenizer.eos_token_id:
            break
        embeds = torch.cat([embeds, model.get_input_embeddings()(torch.tensor([written[-1:]]))], dim=1)
    return written, torch.stack(step_logits)


def sensitive_model(records, cfg, arch):
    """A tiny random model whose greedy output depends on the whole context.

    At the usual init scale a tied head mostly echoes the last input token, so wrong positions or masks
    could go unnoticed; larger weights and an untied random head with a bias make every token depend
    on everything before it. The head's bias also lets a test move the EOS logit.
    """
    model, tokenizer = tiny_model(records, method_class(cfg.name).special_tokens, arch=arch)
    gen = torch.Generator().manual_seed(1)
    head = model.get_output_embeddings()
    new_head = torch.nn.Linear(head.in_features, head.out_features, bias=True, dtype=head.weight.dtype)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        new_head.weight.copy_(torch.randn(new_head.weight.shape, generator=gen))
        new_head.bias.zero_()
    model.set_output_embeddings(new_head)
    model.eval()
    return model, tokenizer, build_method(cfg, tokenizer)


def bias_eos_to_stop_half(model, tokenizer, method, records, n_thoughts=None):
    """Set the EOS bias so about half the problems stop early, at different steps.

    Raising only the EOS logit leaves every earlier greedy choice unchanged, so a problem stops at the
    first step where EOS then wins: the margins of an unbiased reference run say where that is.
    """
    eos = tokenizer.eos_token_id
    smallest = []
    for record in records:
        _, logits = reference_generate(model, tokenizer, method, record, MAX_NEW, n_thoughts)
        others = logits.clone()
        others[:, eos] = float("-inf")
        smallest.append(float((others.max(-1).values - logits[:, eos]).min()))
    smallest.sort()
    mid = len(smallest) // 2
    with torch.no_grad():
        model.get_output_embeddings().bias[eos] = (smallest[mid - 1] + smallest[mid]) / 2


def hidden_fed_by_hand(model, example, feed):
    """One problem's final hidden states with each thought made by ``feed`` from the previous position's
    final hidden state, re-running the whole prefix for every thought."""
    embeds = model.get_input_embeddings()(torch.tensor([example.input_ids]))
    for col in range(example.thought_start, example.thought_start + example.n_thoughts):
        last = model(inputs_embeds=embeds[:, :col], output_hidden_states=True).hidden_states[-1][:, -1:]
        embeds = torch.cat([embeds[:, :col], feed(last), embeds[:, col + 1:]], dim=1)
    return model(inputs_embeds=embeds, output_hidden_states=True).hidden_states[-1][0]


# -- a hand-made problem for the methods' renderings -----------------------------------------------

RECORD = Record("Every a is a b. Every b is a c. Every c is a d. Tom is a a. Is Tom a d or e?",
                ["Tom is a a.", "Every a is a b.", "Every b is a c.", "Every c is a d."], "Tom is a d.")
STEPS = "Tom is a a.\nEvery a is a b.\nEvery b is a c.\nEvery c is a d.\n"
ANSWER = "### Tom is a d.<eos>"


@pytest.fixture(scope="module")
def tok():
    from latentcot.tokenization import record_text

    tokenizer = train_word_tokenizer([record_text(RECORD)])
    add_method_tokens(tokenizer, METHOD_TOKENS)
    return tokenizer


def render(tok, epoch=0, rng_seed=0, **cfg):
    method = build_method(MethodConfig(**cfg), tok)
    example = method.train_example(tokenize_record(RECORD, tok), epoch, random.Random(rng_seed))
    return method, example


def text(tok, ids):
    return tok.decode(ids)


def supervised(tok, example):
    return text(tok, [t for t, l in zip(example.input_ids, example.labels) if l != IGNORE_INDEX])


def unsupervised(tok, example):
    return text(tok, [t for t, l in zip(example.input_ids, example.labels) if l == IGNORE_INDEX])


# -- comparison plans ------------------------------------------------------------------------------

PLAN_BASE = {
    "seed": 0,
    "data": {"train": "", "valid": ""},
    # float64: a run is scored at several batch sizes, and the scores are compared exactly
    "model": {"preset": "tiny", "n_positions": 256, "dtype": "float64"},
    "method": {"max_new_tokens": 30},
    "train": {"batch_size": 8, "lr": 3e-3, "epochs": 1, "progress": False, "eval_every": 0, "log_every": 1},
}


def write_plan(tmp_path, runs, **extra):
    save_records(tiny_prosqa(8), tmp_path / "train.json")
    save_records(tiny_prosqa(3, seed=9), tmp_path / "valid.json")
    base = dict(PLAN_BASE, data={"train": str(tmp_path / "train.json"), "valid": str(tmp_path / "valid.json")})
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    plan = {"title": "tiny", "output_dir": str(tmp_path / "cmp"), "base_config": str(tmp_path / "base.yaml"),
            "eval_batch_size": 2, "runs": runs, **extra}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    return tmp_path / "plan.yaml"

"""Token Assorted (Su et al. 2025): the first m chunks of the written reasoning become VQ-VAE codes.

A VQ-VAE (:mod:`latentcot.vqvae`) maps every chunk of L step tokens to ``codes_per_chunk`` discrete
codes. The LM's vocabulary gains one token per code (``<latent_i>``) plus ``<bol>``/``<eol>``. For each
training problem m is drawn at random (from ``method.latent_chunks``, or 0..all chunks), the first m
chunks are replaced by ``<bol> codes <eol>`` and the rest of the steps stay text; the loss covers the
latent block, the remaining text and the answer, so at inference the model writes its own codes, then
text, then the answer, from the question alone.

The VQ-VAE must tokenize steps exactly as the LM does (chunk boundaries are token positions), so the
LM uses the VQ-VAE's tokenizer: ``tokenizer.path`` set to the VQ-VAE run (checked in :meth:`prepare`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
from pathlib import Path
from typing import Sequence

from ..config import MethodConfig
from ..tokenization import BEGIN_LATENT, END_LATENT, latent_code_token
from .base import Example, Method, TokenizedRecord, assemble
from ..errors import ConfigError


_CODE_RE = re.compile(r"<latent_(\d+)>")


def _vqvae_dir(cfg: MethodConfig, run_dir: Path | None = None) -> Path:
    """``method.vqvae``; for a saved run or exported model (``run_dir``), read relative to that directory
    first (an export carries its VQ-VAE inside, named relative to itself)."""
    if not cfg.vqvae:
        raise ConfigError("config key 'method.vqvae' is empty: the assorted method needs a trained VQ-VAE "
                         "(latentcot vqvae train ...)")
    from ..vqvae.io import resolve_vqvae

    if run_dir is not None and (run_dir / cfg.vqvae).exists():
        return resolve_vqvae(run_dir / cfg.vqvae)
    return resolve_vqvae(cfg.vqvae)


def _hparams(cfg: MethodConfig) -> dict:
    from ..vqvae.io import HPARAMS_FILE

    return json.loads((_vqvae_dir(cfg) / HPARAMS_FILE).read_text())


def encode_records(vqvae, records: Sequence[TokenizedRecord], batch_size: int = 512) -> list[tuple[int, ...]]:
    """Codes of every record's steps, chunk after chunk, encoded in batches of chunks."""
    import torch

    from ..vqvae.model import chunk_examples, collate_chunks

    examples = chunk_examples(records, vqvae.chunk_len)
    codes: list[list[int]] = [[] for _ in records]
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = examples[start:start + batch_size]
            tensors = collate_chunks(batch, vqvae.pad_id, vqvae.chunk_len, vqvae.max_question_len)
            out = vqvae.encode(**{k: v.to(vqvae.device) for k, v in tensors.items()}).view(len(batch), -1)
            for example, row in zip(batch, out.tolist()):
                codes[example.record_index].extend(row)  # chunk_examples lists chunks in order
    return [tuple(c) for c in codes]


class Assorted(Method):
    records_can_change = False  # prepare() attaches the VQ-VAE codes of the steps as written
    name = "assorted"
    special_tokens = (BEGIN_LATENT, END_LATENT)

    @classmethod
    def extra_tokens(cls, cfg: MethodConfig) -> tuple[str, ...]:
        return tuple(latent_code_token(i) for i in range(_hparams(cfg)["codebook_size"]))

    def __init__(self, cfg: MethodConfig, tokenizer, run_dir: Path | None = None):
        super().__init__(cfg, tokenizer, run_dir)
        vocab = tokenizer.get_vocab()
        self.latent_ids: list[int] = []
        while latent_code_token(len(self.latent_ids)) in vocab:
            self.latent_ids.append(vocab[latent_code_token(len(self.latent_ids))])
        if not self.latent_ids:
            raise ConfigError("method 'assorted' needs <latent_i> tokens in the vocabulary: train from a config "
                             "whose method.vqvae names the VQ-VAE")
        self.code_of = {token: code for code, token in enumerate(self.latent_ids)}
        self.chunk_len = 0
        self.codes_per_chunk = 0

    def prepare(self, records: list[TokenizedRecord], device: str = "cpu",
                encoding: str = "text") -> list[TokenizedRecord]:
        """Encode every problem's steps with the VQ-VAE; fails if the LM tokenizes them differently or
        writes them in another data encoding than the VQ-VAE was trained on."""
        from ..vqvae.io import load_vqvae, vqvae_encoding

        trained_on = vqvae_encoding(_vqvae_dir(self.cfg, self.run_dir))
        if trained_on != encoding:
            raise ConfigError(f"config key 'data.encoding': the LM's problems are in the {encoding!r} encoding but "
                             f"the VQ-VAE at {self.cfg.vqvae} was trained on {trained_on!r}; set "
                             f"data.encoding={trained_on} or train a VQ-VAE with data.encoding={encoding}")
        vqvae, vq_tokenizer = load_vqvae(_vqvae_dir(self.cfg, self.run_dir), device)
        if len(self.latent_ids) != vqvae.codebook_size:
            raise ConfigError(f"the vocabulary has {len(self.latent_ids)} latent tokens but the VQ-VAE at "
                             f"{self.cfg.vqvae} has {vqvae.codebook_size} codes")
        for record in records[:64]:
            text = self.tokenizer.decode([t for step in record.steps for t in step])
            if vq_tokenizer(text, add_special_tokens=False)["input_ids"] != [t for s in record.steps for t in s]:
                raise ConfigError(f"config key 'tokenizer.path': the LM tokenizes the steps differently from the "
                                 f"VQ-VAE; set tokenizer.path={self.cfg.vqvae} so both use its tokenizer")
        self.chunk_len, self.codes_per_chunk = vqvae.chunk_len, vqvae.codes_per_chunk
        codes = encode_records(vqvae, records)
        return [dataclasses.replace(r, latent=c) for r, c in zip(records, codes)]

    def n_chunks(self, record: TokenizedRecord) -> int:
        return math.ceil(sum(len(s) for s in record.steps) / self.chunk_len)

    def draw_m(self, n_chunks: int, rng: random.Random) -> int:
        choices = self.cfg.latent_chunks or range(n_chunks + 1)
        return min(rng.choice(list(choices)), n_chunks)

    def render(self, record: TokenizedRecord, m: int) -> Example:
        """Question, then m chunks as ``<bol> codes <eol>`` (none when m = 0), the other steps as text, answer."""
        steps = [t for step in record.steps for t in step]
        pieces = [(record.question, False)]
        if m > 0:
            codes = record.latent[:m * self.codes_per_chunk]
            block = [self.token_ids[BEGIN_LATENT], *(self.latent_ids[c] for c in codes), self.token_ids[END_LATENT]]
            pieces.append((block, True))
        pieces += [(steps[m * self.chunk_len:], True), (record.answer, True)]
        return assemble(pieces)

    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        if not self.chunk_len or (record.steps and not record.latent):
            raise RuntimeError("assorted: records need their VQ-VAE codes first (Method.prepare)")
        return self.render(record, self.draw_m(self.n_chunks(record), rng))

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        return assemble([(record.question, False)])

    def split_output(self, token_ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """The codes a model wrote (in order) and the other tokens, for showing or counting them."""
        codes = [self.code_of[t] for t in token_ids if t in self.code_of]
        return codes, [t for t in token_ids if t not in self.code_of]

    def output_summary(self, texts: Sequence[str]) -> dict:
        """How the model uses its latent vocabulary: the share of outputs that start with a latent block
        (a model may learn to skip it), codes per output, and how many distinct codes it writes."""
        codes = [[int(c) for c in _CODE_RE.findall(t)] for t in texts]
        used = {c for row in codes for c in row}
        return {"share_starting_latent": sum(t.lstrip().startswith(BEGIN_LATENT) for t in texts) / max(len(texts), 1),
                "mean_latent_codes": sum(map(len, codes)) / max(len(texts), 1),
                "distinct_codes_written": len(used)}

    def latent_text(self, text: str, question: str) -> str:
        """The generated text with each latent block replaced by the VQ-VAE decoder's reading of its codes."""
        from ..vqvae.io import decode_codes_to_text, load_vqvae

        if getattr(self, "_decoder", None) is None:
            self._decoder = load_vqvae(_vqvae_dir(self.cfg, self.run_dir))

        def expand(block: re.Match) -> str:
            model, tokenizer = self._decoder
            codes = [int(c) for c in _CODE_RE.findall(block.group(0))]
            usable = codes[:len(codes) - len(codes) % model.codes_per_chunk]
            return "[" + decode_codes_to_text(model, tokenizer, usable, question) + "]"

        return re.sub(re.escape(BEGIN_LATENT) + r"(.*?)" + re.escape(END_LATENT), expand, text, flags=re.S)

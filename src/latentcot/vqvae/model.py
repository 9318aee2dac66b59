"""The Token Assorted VQ-VAE (Su et al. 2025): chunks of reasoning-trace tokens to discrete codes and back.

A trace (a problem's steps, tokenized as the LM sees them) is cut into chunks of L tokens. The encoder
reads the question and one chunk and emits ``codes_per_chunk`` vectors; each snaps to the nearest of K
codebook entries (``vector_quantize_pytorch.VectorQuantize``: EMA codebook, k-means init, dead-code
re-seeding). The decoder reads the question and the chunk's code vectors and predicts the L tokens at
once (non-autoregressive: a code names a whole chunk, so nothing is gained by generating it token by
token, and a chunk decodes in one pass).

Both transformers see the question token by token rather than as one pooled vector: a code then only
has to say *which* part of the question the chunk restates (ProsQA steps copy facts of the question),
not spell out its words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PackageError
from ..tokenization import TokenizedRecord

INSTALL_HINT = "pip install latentcot[assorted]  (or: pip install vector-quantize-pytorch)"
_QUESTION, _CHUNK = 0, 1  # segment ids: which part of the input a position belongs to


def _vector_quantize_class():
    try:
        from vector_quantize_pytorch import VectorQuantize
    except ImportError as err:
        raise PackageError(f"the VQ-VAE needs the 'vector-quantize-pytorch' package: {INSTALL_HINT}") from err
    return VectorQuantize


# --------------------------------------------------------------------------- data: chunks and batches


def chunk_record(record: TokenizedRecord, chunk_len: int) -> list[tuple[int, ...]]:
    """The record's steps ids, concatenated, cut into chunks of ``chunk_len``; the last may be shorter.

    Chunks ignore step boundaries, as in the paper: one code stands for a fixed number of tokens.
    """
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be at least 1, got {chunk_len}")
    flat = [t for step in record.steps for t in step]
    return [tuple(flat[i:i + chunk_len]) for i in range(0, len(flat), chunk_len)]


def pad_chunk(chunk: Sequence[int], chunk_len: int, pad_id: int) -> tuple[list[int], list[bool]]:
    """A chunk padded to ``chunk_len`` with ``pad_id``, and its mask (True on real tokens)."""
    if len(chunk) > chunk_len:
        raise ValueError(f"chunk of {len(chunk)} tokens is longer than chunk_len={chunk_len}")
    fill = chunk_len - len(chunk)
    return list(chunk) + [pad_id] * fill, [True] * len(chunk) + [False] * fill


@dataclass(frozen=True)
class ChunkExample:
    """One training item: a chunk with its problem's question; indices say where it came from."""

    question: tuple[int, ...]
    chunk: tuple[int, ...]
    record_index: int
    chunk_index: int


def chunk_examples(records: Sequence[TokenizedRecord], chunk_len: int) -> list[ChunkExample]:
    return [ChunkExample(r.question, chunk, i, j)
            for i, r in enumerate(records) for j, chunk in enumerate(chunk_record(r, chunk_len))]


def collate_chunks(examples: Sequence[ChunkExample], pad_id: int, chunk_len: int,
                   max_question_len: int) -> dict[str, torch.Tensor]:
    """Tensors for :meth:`VQVAE.forward`: right-padded questions and padded chunks, with boolean masks.

    A question longer than ``max_question_len`` keeps its end, where the question proper is asked.
    """
    questions = [ex.question[-max_question_len:] for ex in examples]
    width = max(max((len(q) for q in questions), default=1), 1)
    question_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    question_mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, q in enumerate(questions):
        question_ids[row, :len(q)] = torch.tensor(q, dtype=torch.long)
        question_mask[row, :len(q)] = True
    padded = [pad_chunk(ex.chunk, chunk_len, pad_id) for ex in examples]
    return {
        "question_ids": question_ids,
        "question_mask": question_mask,
        "chunk_ids": torch.tensor([ids for ids, _ in padded], dtype=torch.long).view(len(examples), chunk_len),
        "chunk_mask": torch.tensor([mask for _, mask in padded], dtype=torch.bool).view(len(examples), chunk_len),
    }


# --------------------------------------------------------------------------- the model


def _transformer(d_model: int, n_heads: int, n_layers: int, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    # Nested tensors would only help with very ragged padding and warn with norm_first.
    return nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)


class VQVAE(nn.Module):
    """Encoder, quantizer and decoder; ``hparams`` (the constructor's arguments) rebuild it on load.

    A chunk of L tokens splits into ``codes_per_chunk`` segments of r = L / codes_per_chunk tokens. The
    encoder runs over [question, chunk]; each segment's outputs are averaged into the vector that is
    quantized. The decoder runs over [question, L position queries], and every query carries its
    segment's code vector. Both paths are direct: neither has to learn first where to look for the
    chunk or the code, which would delay the point where the codes start to matter and invite the
    decoder to settle for what the question alone predicts.

    ``threshold_ema_dead_code`` is the quantizer's own absolute threshold (moving-average count of uses
    per step); the config's relative ``dead_code_threshold`` is turned into it by ``build_vqvae``.
    """

    def __init__(self, vocab_size: int, pad_id: int, *, chunk_len: int = 16, codes_per_chunk: int = 1,
                 codebook_size: int = 64, codebook_dim: int = 0, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, dropout: float = 0.0, max_question_len: int = 512,
                 commitment_weight: float = 0.25, ema_decay: float = 0.99, kmeans_init: bool = True,
                 threshold_ema_dead_code: float = 0.0, rotation_trick: bool = False, predict_padding: bool = False):
        super().__init__()
        if chunk_len % codes_per_chunk:
            raise ValueError(f"codes_per_chunk={codes_per_chunk} does not divide chunk_len={chunk_len}")
        self.hparams: dict[str, Any] = dict(
            vocab_size=vocab_size, pad_id=pad_id, chunk_len=chunk_len, codes_per_chunk=codes_per_chunk,
            codebook_size=codebook_size, codebook_dim=codebook_dim, d_model=d_model, n_layers=n_layers,
            n_heads=n_heads, dropout=dropout, max_question_len=max_question_len,
            commitment_weight=commitment_weight, ema_decay=ema_decay, kmeans_init=kmeans_init,
            threshold_ema_dead_code=threshold_ema_dead_code, rotation_trick=rotation_trick,
            predict_padding=predict_padding)
        VectorQuantize = _vector_quantize_class()
        self.pad_id = pad_id
        self.chunk_len = chunk_len
        self.codes_per_chunk = codes_per_chunk
        self.codebook_size = codebook_size
        self.max_question_len = max_question_len
        self.predict_padding = predict_padding

        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.question_position = nn.Embedding(max_question_len, d_model)
        self.chunk_position = nn.Embedding(chunk_len, d_model)
        self.segment = nn.Embedding(2, d_model)
        self.encoder = _transformer(d_model, n_heads, n_layers, dropout)
        self.quantizer = VectorQuantize(
            dim=d_model, codebook_size=codebook_size, codebook_dim=codebook_dim or None, decay=ema_decay,
            commitment_weight=commitment_weight, kmeans_init=kmeans_init,
            threshold_ema_dead_code=threshold_ema_dead_code, rotation_trick=rotation_trick,
            # One process trains the VQ-VAE; syncing codebooks would need an initialised process group.
            sync_codebook=False)
        self.code_in = nn.Linear(d_model, d_model)
        self.decoder = _transformer(d_model, n_heads, n_layers, dropout)
        # Untied from the token embedding, whose N(0, 1) entries (the scale of positions, segments, code
        # vectors and sublayer outputs alike) would give over-confident logits at the start.
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    @property
    def device(self) -> torch.device:
        return self.token_embedding.weight.device

    def _question(self, question_ids: torch.Tensor) -> torch.Tensor:
        if question_ids.shape[1] > self.max_question_len:
            raise ValueError(f"question of {question_ids.shape[1]} tokens is longer than max_question_len="
                             f"{self.max_question_len}; collate_chunks truncates it")
        positions = torch.arange(question_ids.shape[1], device=question_ids.device)
        return (self.token_embedding(question_ids) + self.question_position(positions)
                + self.segment.weight[_QUESTION])

    def _chunk_positions(self) -> torch.Tensor:
        return self.chunk_position.weight + self.segment.weight[_CHUNK]

    def features(self, question_ids, question_mask, chunk_ids, chunk_mask) -> torch.Tensor:
        """The encoder's continuous output before quantization, (B, codes_per_chunk, d_model)."""
        batch, width = question_ids.shape
        x = torch.cat([self._question(question_ids), self.token_embedding(chunk_ids) + self._chunk_positions()], 1)
        real = chunk_mask.bool()
        hidden = self.encoder(x, src_key_padding_mask=torch.cat([~question_mask.bool(), ~real], 1))[:, width:]
        # Mean over each segment's real tokens; a segment that is all padding (possible in a trace's last
        # chunk when codes_per_chunk > 1) gets the zero vector.
        weights = real.view(batch, self.codes_per_chunk, -1, 1).to(hidden.dtype)
        hidden = hidden.reshape(batch, self.codes_per_chunk, -1, hidden.shape[-1])
        return (hidden * weights).sum(2) / weights.sum(2).clamp(min=1.0)

    def quantize(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized vectors, codes, quantizer loss); in training mode this also updates the codebook."""
        return self.quantizer(features)

    def encode(self, question_ids, question_mask, chunk_ids, chunk_mask) -> torch.Tensor:
        """Codes of each chunk, (B, codes_per_chunk) LongTensor. Never changes the codebook."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                _, codes, _ = self.quantize(self.features(question_ids, question_mask, chunk_ids, chunk_mask))
        finally:
            self.train(was_training)
        return codes

    def _decode_vectors(self, vectors, question_ids, question_mask) -> torch.Tensor:
        batch, width = question_ids.shape
        per_position = self.code_in(vectors).repeat_interleave(self.chunk_len // self.codes_per_chunk, dim=1)
        x = torch.cat([self._question(question_ids), self._chunk_positions() + per_position], 1)
        pad = torch.cat([~question_mask.bool(), question_mask.new_zeros(batch, self.chunk_len, dtype=torch.bool)], 1)
        return self.lm_head(self.decoder(x, src_key_padding_mask=pad)[:, width:])

    def decode(self, codes: torch.Tensor, question_ids, question_mask) -> torch.Tensor:
        """Logits (B, chunk_len, vocab) of the chunks that ``codes`` (B, codes_per_chunk) stand for."""
        if codes.dim() == 1:
            codes = codes.unsqueeze(1)
        if codes.shape[1] != self.codes_per_chunk:
            raise ValueError(f"expected {self.codes_per_chunk} codes per chunk, got shape {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got {codes.min().item()}.."
                             f"{codes.max().item()}")
        vectors = self.quantizer.get_output_from_indices(codes)
        return self._decode_vectors(vectors, question_ids, question_mask)

    def forward(self, question_ids, question_mask, chunk_ids, chunk_mask) -> dict[str, torch.Tensor]:
        """Reconstruction cross-entropy (mean over real chunk tokens) plus the quantizer's loss."""
        quantized, codes, vq_loss = self.quantize(self.features(question_ids, question_mask, chunk_ids, chunk_mask))
        logits = self._decode_vectors(quantized, question_ids, question_mask)
        targets = chunk_ids if self.predict_padding else chunk_ids.masked_fill(~chunk_mask.bool(), -100)
        recon_loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return {"loss": recon_loss + vq_loss, "recon_loss": recon_loss, "vq_loss": vq_loss,
                "codes": codes, "logits": logits}


def codebook_stats(codes: Sequence[int] | torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Usage of a codebook: perplexity exp(H) of the code frequencies (K when used uniformly, 1 when
    collapsed to one code), the number of distinct codes used and their share of the codebook."""
    counts = torch.bincount(torch.as_tensor(codes, dtype=torch.long).flatten(), minlength=codebook_size).double()
    total = counts.sum().item()
    if total == 0:
        return {"codebook_perplexity": 0.0, "codes_used": 0, "codebook_usage": 0.0}
    probs = counts[counts > 0] / total
    entropy = -(probs * probs.log()).sum().item()
    used = int((counts > 0).sum().item())
    return {"codebook_perplexity": math.exp(entropy), "codes_used": used, "codebook_usage": used / codebook_size}

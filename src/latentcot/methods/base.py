"""The interface every method answers, and every call the rest of the code makes on one.

:class:`Method` is what the trainer, inference, evaluation and analysis call on any method: how a problem
is rendered for training at an epoch and for inference, the model's submodules and loss terms, the forward
pass, and what validation measures beside accuracy. :class:`ContinuousThoughts` adds the calls of methods
whose thoughts are positions fed the previous position's hidden state (Coconut, CODI, PCCoT): how many
thoughts stand for a step, the most adaptive thinking may take, the prompt it starts from. Code outside
``latentcot.methods`` asks for that type (:func:`continuous_thoughts`), never for a method's name and
never with ``hasattr``. A method is a small class registered by name (``method.name`` in the config).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import ClassVar, Sequence

import torch

from ..config import Config, ConfigError, MethodConfig
from ..data.records import Record
from ..examples import IGNORE_INDEX, Example, assemble  # noqa: F401  (public here too)
from ..models import continuous
from ..models.halting import attach_halting_head, detach_halting_head, halting_head
from ..models.projection import feedback
from ..tokenization import BOT, EOT, THOUGHT
from ..tokenization import TokenizedRecord, tokenize_record, tokenize_records  # noqa: F401  (public here too)
from ..errors import CheckpointError

log = logging.getLogger(__name__)


class Method:
    """Base class: subclasses set ``name``, ``special_tokens`` and render problems."""

    name: ClassVar[str]
    special_tokens: ClassVar[tuple[str, ...]] = ()
    # True exactly for ContinuousThoughts: thought positions take the previous position's last hidden state
    # as input; False when they are ordinary tokens (pause) or there are none.
    continuous: ClassVar[bool] = False
    thought_token: ClassVar[str | None] = None
    # False when prepare() ties side data to each problem's steps as written (Token Assorted's codes), so
    # the trainer may not rewrite the problems every epoch (data.shuffle_graph, data.relabel_nodes)
    records_can_change: ClassVar[bool] = True

    def __init__(self, cfg: MethodConfig, tokenizer, run_dir: Path | None = None):
        # cfg was checked when it was read (latentcot.config: ranges, and the keys this method reads)
        self.cfg = cfg
        self.tokenizer = tokenizer
        # the saved run or exported model the config was read from: paths in it that do not exist as given
        # are looked for there (an export's bundled VQ-VAE); None when training
        self.run_dir = Path(run_dir) if run_dir is not None else None
        missing = [t for t in self.special_tokens if t not in tokenizer.get_vocab()]
        if missing:
            raise CheckpointError(f"method {self.name!r} needs special tokens {missing} in the tokenizer; "
                             "build the model with the method's special_tokens")
        self.token_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in self.special_tokens}
        # trainable modules beside the model (SIM-CoT's step decoder): checkpointed, never exported or used
        # at inference; filled by build_side_modules
        self.side_modules: dict = {}
        self.thought_id = self.token_ids[self.thought_token] if self.thought_token else None

    @classmethod
    def check_config(cls, cfg: Config) -> None:
        """Settings of other sections this method's keys need (``data.encoding`` for graph targets, ...);
        raises :class:`~latentcot.config.ConfigError`. The keys' own ranges are checked when they are read."""

    @classmethod
    def extra_tokens(cls, cfg: MethodConfig) -> tuple[str, ...]:
        """Vocabulary items this method needs beyond ``METHOD_TOKENS`` (Token Assorted's latent codes),
        added when a model is built or continued from another run."""
        return ()

    def prepare(self, records: list[TokenizedRecord], device: str = "cpu",
                encoding: str = "text") -> list[TokenizedRecord]:
        """Once before training: attach whatever the rendering needs beyond the tokens (default: nothing).

        ``encoding`` is the ``data.encoding`` the records were written in, for methods whose side model
        (Token Assorted's VQ-VAE) was trained on one encoding and must not read another."""
        return records

    def with_training_targets(self, records: list[Record]) -> list[Record]:
        """The training problems, each carrying the side data this method's targets are made from (frontier
        stage targets, thought targets); called every epoch the problems are written anew."""
        return records

    # -- schedule ----------------------------------------------------------------------------------
    def stage_at(self, epoch: int) -> int:
        """Curriculum stage of a (0-based) epoch; methods without a curriculum stay at 0."""
        return 0

    def reset_optimizer_at(self, epoch: int) -> bool:
        """Whether the optimizer starts fresh at this epoch: when the stage changes and
        ``method.reset_optimizer`` is on (epoch 0 always gets a new one anyway)."""
        return self.cfg.reset_optimizer and epoch > 0 and self.stage_at(epoch) != self.stage_at(epoch - 1)

    # -- rendering ---------------------------------------------------------------------------------
    def train_example(self, record: TokenizedRecord, epoch: int, rng: random.Random) -> Example:
        raise NotImplementedError

    def prompt(self, record: TokenizedRecord, n_thoughts: int | None = None) -> Example:
        """What inference feeds the model before it starts generating."""
        raise NotImplementedError

    def default_thoughts(self) -> int:
        return 0

    def eval_thoughts(self, epoch: int) -> int | None:
        """Thoughts the validation pass after ``epoch`` uses; ``None`` means inference's default."""
        return None

    def thoughts_for(self, stage: int, n_steps: int) -> int:
        """Thoughts (or pauses) a problem of ``n_steps`` steps gets at curriculum ``stage``; methods without a
        curriculum give every problem their default."""
        return self.default_thoughts()

    def frontier_stage(self, epoch: int) -> int | None:
        """The curriculum stage whose frontier targets (``method.stage_target=frontier``) the validation after
        ``epoch`` measures, or None when it trains toward the answer."""
        return None

    def thought_target_kind(self) -> str:
        """``method.thought_targets`` where a method trains thoughts toward target sets, else ``none``."""
        return "none"

    # -- the model and the loss --------------------------------------------------------------------
    # The trainer and inference call these on every method; the defaults are Coconut's and plain LM
    # training's, and methods with their own parts (CODI's projection and teacher, PCCoT's parallel pass,
    # SIM-CoT's step decoder) override them.
    def prepare_model(self, model, resuming: bool = False) -> None:
        """Once, before the optimizer is built: add the submodules this method trains inside the model, and
        drop those of a model it continues that it does not train (``resuming``: the model is this run's
        own checkpoint, whose optimizer state must still fit). By default: no halting head."""
        prepare_halting_head(model, False, resuming)

    def build_side_modules(self, model, resume_from: Path | None) -> None:
        """Once, after :meth:`prepare_model`: build ``side_modules`` fresh, or load them from the checkpoint
        a run resumes from."""

    def collate(self, examples: Sequence[Example], pad_id: int, align: str = "thoughts") -> dict:
        return continuous.collate(examples, pad_id, self.thought_id if self.continuous else None, align)

    def forward_hidden(self, model, input_ids, attention_mask, thought_mask=None, cache=None,
                       return_layers: bool = False, previous=None, edit=None):
        """The pass that fills the continuous thoughts in (:func:`~latentcot.models.continuous.forward_hidden`);
        with ``previous`` it continues a cached sequence (adaptive thinking's column-by-column steps); ``edit``
        changes what each thought is fed (interventions on the latents)."""
        return continuous.forward_hidden(model, input_ids, attention_mask, thought_mask, cache, return_layers,
                                         previous, edit)

    def prompt_calls(self, thought_mask, width: int) -> int:
        """Model calls :meth:`forward_hidden` makes for a prompt batch (the same for every row: thoughts share
        columns): one pass before the thoughts, one step per thought, one pass after them if anything follows."""
        if thought_mask is None or not bool(thought_mask.any()):
            return 1
        columns = thought_mask.any(0).nonzero().flatten()
        end = int(columns[-1]) + 1
        return 1 + len(columns) + (1 if end < width else 0)

    def fill_thoughts_naive(self, model, embeds, columns: Sequence[int]):
        """The no-cache reference of :meth:`forward_hidden` for one problem (``embeds``: (1, length, d),
        ``columns``: its thought positions): re-run the whole prefix for each thought. Returns the filled
        embeddings and the model calls made."""
        project = feedback(model)
        for col in columns:
            out = model(inputs_embeds=embeds[:, :col], output_hidden_states=True, use_cache=False)
            embeds = torch.cat([embeds[:, :col], project(out.hidden_states[-1][:, -1:]).to(embeds.dtype),
                                embeds[:, col + 1:]], dim=1)
        return embeds, len(columns)

    def training_pass(self, model, batch: dict, return_layers: bool = False):
        """The training forward of a collated batch: :meth:`forward_hidden`, or with teacher-forced thoughts
        (``thought_feedback=target_mixture``) one pass with each thought fed its target set's mean embedding."""
        if "teacher_forced" in batch and bool(batch["teacher_forced"]):
            return continuous.teacher_forced_forward(model, batch["input_ids"], batch["attention_mask"],
                                                     batch["thought_mask"], batch["thought_targets"], return_layers)
        return self.forward_hidden(model, batch["input_ids"], batch["attention_mask"], batch.get("thought_mask"),
                                   return_layers=return_layers)

    def batch_loss(self, model, batch: dict):
        """Summed losses of one collated batch (:class:`~latentcot.models.continuous.BatchLoss`)."""
        return continuous.loss_of_pass(model, self.training_pass(model, batch).hidden, batch)

    def latent_text(self, text: str, question: str) -> str | None:
        """``text`` with its latent codes read back as text, for a method that writes codes (Token
        Assorted); None for every other method."""
        return None

    def loss_weights(self) -> dict[str, float]:
        """Weight of each named loss term beside the token loss; a term without a weight is not trained."""
        weights = {"halt": self.cfg.halt_weight} if self.cfg.halting else {}
        if self.cfg.thought_targets != "none":
            weights["thought_target"] = self.cfg.thought_target_weight
        return weights

    def output_summary(self, texts: Sequence[str]) -> dict:
        """Method-specific statistics of generated texts, added to an evaluation's summary."""
        return {}


class ContinuousThoughts(Method):
    """A method whose thought positions take the previous position's final hidden state as input (through
    the model's latent projection when it has one): Coconut, its curriculum-free ablation, CODI, PCCoT.

    Inference fills the thoughts in with :meth:`forward_hidden` (or, for adaptive thinking, one cached
    column at a time through the same call with ``previous``); evaluation and analysis read thoughts back
    through :meth:`thoughts_per_step`."""

    continuous: ClassVar[bool] = True
    thought_token: ClassVar[str | None] = THOUGHT

    def thoughts_per_step(self) -> int:
        """How many consecutive thoughts stand for one reasoning step (and decode it)."""
        return 1

    def thought_cap(self) -> int:
        """The most thoughts adaptive thinking (``n_thoughts=auto``) may take."""
        return self.default_thoughts()

    def thought_target_hops(self) -> int:
        """How many hops of thought targets a problem needs: one per step a thought may stand for."""
        return -(-max(self.default_thoughts(), self.thought_cap()) // self.thoughts_per_step())

    def needed_thoughts(self, n_steps: int) -> int:
        """The thoughts after which a problem of ``n_steps`` steps has used up the steps its thoughts stand for
        (the halting head's first 'stop')."""
        return self.thoughts_per_step() * min(n_steps, self.thought_cap() // self.thoughts_per_step())

    def open_prompt(self, record: TokenizedRecord) -> Example:
        """The prompt of adaptive thinking: the question and ``<bot>``; the halting head decides the rest."""
        ids = list(record.question) + [self.token_ids[BOT]]
        return Example(ids, [IGNORE_INDEX] * len(ids))

    @property
    def end_of_thoughts_id(self) -> int:
        """The token that closes the thoughts (``<eot>``), fed once adaptive thinking stops."""
        return self.token_ids[EOT]


def continuous_thoughts(method: Method, purpose: str) -> ContinuousThoughts:
    """``method`` as the continuous-thought interface; one clear error naming ``purpose`` when it has none."""
    if not isinstance(method, ContinuousThoughts):
        raise ConfigError(f"{purpose} needs a continuous-thought method ({', '.join(_continuous_names())}); "
                          f"{method.name!r} has no continuous thoughts")
    return method


def _continuous_names() -> list[str]:
    found, todo = [], [ContinuousThoughts]
    while todo:
        cls = todo.pop(0)
        if "name" in vars(cls):
            found.append(cls.name)
        todo += cls.__subclasses__()
    return found


def prepare_halting_head(model, wanted: bool, resuming: bool) -> None:
    """Give ``model`` a halting head when ``wanted`` and it has none; drop one it does not train. A resumed
    run must keep its checkpoint's setting: its optimizer state holds the head's parameters or does not."""
    present = halting_head(model) is not None
    if resuming and wanted != present:
        raise ConfigError(f"config key 'method.halting': {str(wanted).lower()}, but the checkpoint was trained "
                          f"with{'out' if wanted else ''} a halting head; keep the run's setting, or start a new "
                          "run with train.init_from", key="method.halting")
    if wanted and not present:
        attach_halting_head(model)
    elif present and not wanted:
        # a head this run does not train would no longer match the model it sits on
        log.warning("note: train.init_from: its halting head is dropped (method.halting is false)")
        detach_halting_head(model)

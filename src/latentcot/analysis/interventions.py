"""Do the latents matter? Interventions on each latent position, run through the same cached pass as generation.

For each thought position i and each intervention, the problems are answered again with what thought i is fed
replaced (:func:`latentcot.inference.generate`'s ``latent_edit``), and compared with the untouched run:

* ``zero``: a zero vector;
* ``mean``: the data set's mean latent at i (from the untouched run);
* ``noise``: Gaussian noise with the latent's own norm (seeded by the problem and i);
* ``swap``: latent i of the next problem in the file (problem k takes problem k+1's);
* ``pause``: the embedding of a token that carries no thought (``<pause>``, else ``<bot>``);
* ``truncate``: thinking stops after i thoughts (``n_thoughts=i``), no edit.

Reported per (i, intervention): accuracy, the answer flip rate against the untouched run, and the mean change
in the gold answer's log-probability (teacher-forced after the intervened thoughts, :func:`gold_log_probs`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..data.records import Record
from ..evaluation.answers import accuracy, flip_rate
from ..inference.generate import EvalMode, generate
from ..inference.sampling import stable_seed
from ..examples import IGNORE_INDEX, Example
from ..methods import Method, continuous_thoughts, tokenize_records
from ..errors import UsageError
from ..tokenization import BOT, PAUSE

INTERVENTIONS = ("zero", "mean", "noise", "swap", "pause", "truncate")
Edit = Callable[[list[int], int, torch.Tensor], torch.Tensor]


def capture_latents(model, tokenizer, method: Method, records: Sequence[Record], n_thoughts: int,
                    batch_size: int = 32) -> torch.Tensor:
    """(problems, n_thoughts, d): what each thought of the untouched run is fed."""
    d = model.get_input_embeddings().embedding_dim
    store = torch.zeros(len(records), n_thoughts, d, dtype=model.get_input_embeddings().weight.dtype)

    def keep(rows: list[int], j: int, latent: torch.Tensor) -> torch.Tensor:
        store[rows, j] = latent[:, 0].detach().to(store.dtype).cpu()
        return latent

    generate(model, tokenizer, method, records, batch_size=batch_size, n_thoughts=n_thoughts, max_new_tokens=1,
             latent_edit=keep)
    return store


def gold_log_probs(model, tokenizer, method: Method, records: Sequence[Record], n_thoughts: int,
                   edit: Edit | None = None, batch_size: int = 32) -> list[float]:
    """Per problem, log p(gold answer | prompt with ``n_thoughts`` thoughts, ``edit`` applied): the answer's
    tokens (``### answer`` and the end-of-sequence token) scored after ``<eot>`` in one teacher-forced pass."""
    tokens = tokenize_records(records, tokenizer)
    out: list[float] = []
    device = next(model.parameters()).device
    with EvalMode(model), torch.no_grad():
        for lo in range(0, len(tokens), batch_size):
            part = tokens[lo:lo + batch_size]
            examples = []
            for t in part:
                prompt = method.prompt(t, n_thoughts)
                examples.append(Example(prompt.input_ids + list(t.answer), prompt.labels + list(t.answer),
                                        prompt.n_thoughts, prompt.thought_start))
            batch = {k: v.to(device) for k, v in method.collate(examples, tokenizer.pad_token_id).items()}
            rows = list(range(lo, lo + len(part)))
            step = None if edit is None else (lambda j, latent, rows=rows: edit(rows, j, latent))
            hidden = method.forward_hidden(model, batch["input_ids"], batch["attention_mask"],
                                           batch.get("thought_mask"), edit=step).hidden
            logits = model.get_output_embeddings()(hidden[:, :-1]).double()
            targets = batch["labels"][:, 1:]
            picked = torch.log_softmax(logits, -1).gather(-1, targets.clamp_min(0)[..., None])[..., 0]
            out += (picked * (targets != IGNORE_INDEX)).sum(-1).tolist()
    return out


def intervention_edit(kind: str, position: int, latents: torch.Tensor, model, tokenizer, seed: int = 0) -> Edit:
    """The ``latent_edit`` of ``kind`` at thought ``position`` (``latents``: :func:`capture_latents`' output)."""
    if kind not in INTERVENTIONS or kind == "truncate":
        raise ValueError(f"no latent edit for intervention {kind!r}")
    vocab = tokenizer.get_vocab()
    marker = vocab.get(PAUSE, vocab.get(BOT))
    mean = latents[:, position].mean(0)

    def edit(rows: list[int], j: int, latent: torch.Tensor) -> torch.Tensor:
        if j != position:
            return latent
        if kind == "zero":
            return torch.zeros_like(latent)
        if kind == "mean":
            return mean.to(latent)[None, None].expand_as(latent)
        if kind == "noise":
            # one draw per (problem, position): the same in the answer pass, the gold pass and every PCCoT
            # iteration, whatever the batch
            noise = torch.stack([torch.randn(latent.shape[-1], dtype=torch.float64, generator=torch.Generator()
                                             .manual_seed(stable_seed(seed, r, position))) for r in rows])
            noise = noise[:, None].to(latent)
            return noise / noise.norm(dim=-1, keepdim=True) * latent.norm(dim=-1, keepdim=True)
        if kind == "swap":
            others = [(r + 1) % len(latents) for r in rows]
            return latents[others, position][:, None].to(latent)
        token = torch.tensor([marker], device=latent.device)
        return model.get_input_embeddings()(token).to(latent)[None].expand_as(latent)

    return edit


def run_interventions(model, tokenizer, method: Method, records: Sequence[Record], n_thoughts: int | None = None,
                      kinds: Sequence[str] = INTERVENTIONS, batch_size: int = 32, seed: int = 0) -> dict:
    """Accuracy and flip rate per (thought position, intervention), and the untouched run's accuracy."""
    thinker = continuous_thoughts(method, "interventions on the latents")
    n = thinker.default_thoughts() if n_thoughts is None else n_thoughts
    trained = max(thinker.default_thoughts(), thinker.thought_cap())
    if not 1 <= n <= trained:
        raise UsageError(f"--n-thoughts {n}: {method.name} was trained with at most {trained} latents; probe 1 to "
                         f"{trained} (a latent past them is one the model never learned to use)")
    unknown = [k for k in kinds if k not in INTERVENTIONS]
    if unknown:
        raise UsageError(f"unknown interventions {unknown}; choose from {', '.join(INTERVENTIONS)}")

    def answers(**kwargs) -> list[str]:
        gens = generate(model, tokenizer, method, records, batch_size=batch_size, **kwargs)
        return [g.text for g in gens]

    base = answers(n_thoughts=n)
    base_gold = gold_log_probs(model, tokenizer, method, records, n, None, batch_size)
    latents = capture_latents(model, tokenizer, method, records, n, batch_size)
    table: dict[str, dict[str, dict]] = {}
    for i in range(n):
        row = {}
        for kind in kinds:
            if kind == "truncate":
                texts = answers(n_thoughts=i)
                gold = gold_log_probs(model, tokenizer, method, records, i, None, batch_size)
            else:
                edit = intervention_edit(kind, i, latents, model, tokenizer, seed)
                texts = answers(n_thoughts=n, latent_edit=edit)
                gold = gold_log_probs(model, tokenizer, method, records, n, edit, batch_size)
            row[kind] = {
                "accuracy": accuracy(texts, records),
                "flip_rate": flip_rate(texts, base),
                "gold_logprob_change": sum(g - b for g, b in zip(gold, base_gold)) / len(records),
            }
        table[str(i)] = row
    # how much accuracy the latents carry: every latent at once replaced by its position's mean
    all_mean = answers(n_thoughts=n, latent_edit=_every_position_mean(latents))
    untouched, mean_accuracy = accuracy(base, records), accuracy(all_mean, records)
    return {"n_thoughts": n, "n_problems": len(records), "accuracy": untouched,
            "all_mean": {"accuracy": mean_accuracy, "accuracy_carried": untouched - mean_accuracy,
                         "flip_rate": flip_rate(all_mean, base)},
            "by_position": table}


def _every_position_mean(latents: torch.Tensor) -> Edit:
    means = latents.mean(0)

    def edit(rows: list[int], j: int, latent: torch.Tensor) -> torch.Tensor:
        return means[j].to(latent)[None, None].expand_as(latent)

    return edit


def markdown_table(report: dict) -> str:
    """Flip rate (accuracy) per thought position and intervention, one row per position."""
    kinds = list(next(iter(report["by_position"].values()), {}))
    summary = ""
    if "all_mean" in report or "all_replaced" in report:
        every = report.get("all_mean") or report["all_replaced"]
        what = "every latent replaced by its mean" if "all_mean" in report else "every code replaced by a random one"
        carried = report["accuracy"] - every["accuracy"]
        summary = (f"; {what}: {100 * every['accuracy']:.1f}% (the latents carry {100 * carried:+.1f} points, "
                   f"{100 * every['flip_rate']:.1f}% of answers flip)")
    coded = "n_with_code" in report  # codes: not every problem writes a code at every position
    columns = [_latent_name(report), *kinds] + (["problems with the code (flip rate among them)"] if coded else [])
    lines = [f"untouched accuracy {100 * report['accuracy']:.1f}% ({report['n_problems']} problems, "
             f"{'up to ' if coded else ''}{report['n_thoughts']} {report.get('latents', 'thoughts')}){summary}", "",
             "each cell: flip rate (accuracy, mean change of the gold answer's log-probability)", "",
             "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for i, row in report["by_position"].items():
        cells = [f"{100 * row[k]['flip_rate']:.1f}% ({100 * row[k]['accuracy']:.1f}%, "
                 f"{row[k]['gold_logprob_change']:+.2f})" for k in kinds]
        if coded:
            among = report["flip_rate_with_code"][i]
            cells.append(f"{report['n_with_code'][i]} (" + ", ".join(f"{k} {100 * v:.0f}%" for k, v in among.items())
                         + ")")
        lines.append(f"| {int(i) + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _latent_name(report: dict) -> str:
    return "code" if report.get("latents") == "codes" else "thought"


def plot_flip_rates(report: dict, path: str, title: str = "") -> None:
    """Heat map: thought position x intervention, colour = answer flip rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = list(report["by_position"])
    kinds = list(report["by_position"][positions[0]]) if positions else []
    values = [[report["by_position"][i][k]["flip_rate"] for k in kinds] for i in positions]
    fig, ax = plt.subplots(figsize=(1.2 * len(kinds) + 2, 0.5 * len(positions) + 1.8))
    image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_yticks(range(len(positions)), [str(int(i) + 1) for i in positions])
    ax.set_xlabel("intervention")
    ax.set_ylabel(_latent_name(report))
    for y, row in enumerate(values):
        for x, v in enumerate(row):
            ax.text(x, y, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label="answer flip rate")
    ax.set_title(title or f"untouched accuracy {100 * report['accuracy']:.1f}%")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

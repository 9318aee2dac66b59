"""Where a written chain goes wrong: each generated step line against the file's gold step.

For any task whose records carry gold ``steps``. The generated text (in the file's words, after any
``data.encoding`` is decoded) is split into lines before the answer marker; line j is compared with gold
step ``offset + j``, where ``offset`` is the number of steps the method put into latent thoughts (0 for
text methods), so a Coconut model that thought through two steps and wrote the rest is scored on the rest.

Per problem: how many lines were written, whether every written line is its gold step (and as many as
there are), the index of the first wrong line, and whether the answer is right. Summed: the share right
at each step index, the first-error histogram, and the two disagreements that tell a lucky guess from a
broken answer head: a wrong chain with a right answer, and a right chain with a wrong answer.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..data.records import Record
from .paths import MARKER_RE


def written_lines(generated: str) -> list[str]:
    """The step lines of a generated text: before the answer's ``#``, markers removed, blanks dropped (the
    line-level sibling of :func:`latentcot.analysis.paths.written_steps`)."""
    body = MARKER_RE.sub("", generated.split("#", 1)[0])
    return [line.strip() for line in body.split("\n") if line.strip()]


def compare_steps(record: Record, generated: str, correct: bool, offset: int = 0) -> dict[str, Any]:
    """One problem's row: written lines against gold steps from ``offset`` on."""
    gold = [s.strip() for s in record.steps[offset:]]
    lines = written_lines(generated)
    right = [i < len(gold) and line == gold[i] for i, line in enumerate(lines)]
    first_error = next((i for i, ok in enumerate(right) if not ok), None)
    if first_error is None and len(lines) < len(gold):
        first_error = len(lines)  # stopped early: the first missing step is the error
    return {"offset": offset, "n_gold": len(gold), "n_written": len(lines), "step_right": right,
            "chain_right": first_error is None, "first_error": first_error, "correct": bool(correct)}


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    if not n:
        raise ValueError("no problems to summarize")
    depth = max((r["n_gold"] for r in rows), default=0)
    by_index = []
    for i in range(depth):
        reached = [r for r in rows if r["n_gold"] > i]
        by_index.append(sum(len(r["step_right"]) > i and r["step_right"][i] for r in reached) / max(len(reached), 1))
    errors = Counter(r["first_error"] for r in rows if r["first_error"] is not None)
    return {
        "n_problems": n,
        "accuracy": sum(r["correct"] for r in rows) / n,
        "chain_right": sum(r["chain_right"] for r in rows) / n,
        "step_right_by_index": by_index,
        "first_error_by_index": {str(i): errors[i] / n for i in sorted(errors)},
        "wrong_chain_right_answer": sum(not r["chain_right"] and r["correct"] for r in rows) / n,
        "right_chain_wrong_answer": sum(r["chain_right"] and not r["correct"] for r in rows) / n,
        "mean_lines_written": sum(r["n_written"] for r in rows) / n,
    }


def plot_steps(summary: dict[str, Any], path: Path, title: str = "") -> None:
    """Share of problems whose written step i is right, and where the first error falls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.io import atomic_path

    right = summary["step_right_by_index"]
    errors = summary["first_error_by_index"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = range(1, len(right) + 1)
    ax.bar([x - 0.2 for x in xs], right, width=0.4, label="written step right")
    ax.bar([x + 0.2 for x in xs], [errors.get(str(x - 1), 0.0) for x in xs], width=0.4, label="first error here")
    ax.set_xlabel("step (after the latent ones)")
    ax.set_ylabel("share of problems")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(list(xs))
    ax.set_title(title or f"chain right {summary['chain_right']:.1%}, accuracy {summary['accuracy']:.1%}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)

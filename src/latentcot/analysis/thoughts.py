"""How many thoughts a problem needs: fixed counts against adaptive thinking (``auto``), by problem depth.

For each thought setting (fixed k, or ``auto``: the halting head decides per problem) the evaluation's
accuracy and mean thoughts, overall and grouped by the problem's number of gold steps. The picture: accuracy
against the setting, one line per depth; and the mean thoughts ``auto`` spent at each depth against the
depth itself (a head that has learned depth climbs with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def thought_table_row(result) -> dict[str, Any]:
    """One setting's numbers from an :class:`~latentcot.evaluation.EvalResult`."""
    return {"accuracy": result.accuracy, "mean_thoughts": result.mean_thoughts,
            "mean_generated_tokens": result.mean_generated_tokens, "n_problems": result.n_problems,
            "by_steps": result.by_steps}


def best_fixed(table: dict[str, dict[str, Any]]) -> str | None:
    """The fixed setting with the highest accuracy (the fewest thoughts among ties)."""
    fixed = [k for k in table if k != "auto"]
    if not fixed:
        return None
    return max(fixed, key=lambda k: (table[k]["accuracy"], -table[k]["mean_thoughts"]))


def plot_thought_counts(table: dict[str, dict[str, Any]], needed: dict[str, int], path: Path,
                        title: str = "") -> None:
    """Accuracy by setting and depth (left); auto's mean thoughts by depth against ``needed``, the
    thoughts after which its head was trained to stop (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..data.io import atomic_path

    settings = list(table)
    depths = sorted({int(d) for row in table.values() for d in row["by_steps"]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    xs = range(len(settings))
    for depth in depths:
        ys = [table[s]["by_steps"].get(str(depth), {}).get("accuracy") for s in settings]
        n = next((table[s]["by_steps"][str(depth)]["n_problems"] for s in settings
                  if str(depth) in table[s]["by_steps"]), 0)
        left.plot(xs, [100 * y if y is not None else float("nan") for y in ys], marker="o", alpha=0.7,
                  label=f"{depth} steps (n={n})")
    left.plot(xs, [100 * table[s]["accuracy"] for s in settings], marker="s", color="black", linewidth=2.2,
              label="all")
    left.set_xticks(list(xs))
    left.set_xticklabels([f"auto\n({table[s]['mean_thoughts']:.2f})" if s == "auto" else s for s in settings])
    left.set_xlabel("thoughts at inference (auto: the halting head; its mean)")
    left.set_ylabel("accuracy (%)")
    left.legend(fontsize=7)
    if "auto" in table:
        auto = table["auto"]["by_steps"]
        shown = [d for d in depths if str(d) in auto]
        right.bar([str(d) for d in shown], [auto[str(d)]["mean_thoughts"] for d in shown], color="#1565c0",
                  label="auto: mean thoughts")
        right.plot([str(d) for d in shown], [needed[str(d)] for d in shown], color="#c62828", marker="x",
                   linestyle="--", label="trained to stop after")
        right.set_xlabel("problem's number of steps")
        right.set_ylabel("thoughts")
        right.legend(fontsize=7)
    else:
        right.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)

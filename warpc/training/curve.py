"""The training-curve PNG: validation accuracy (discrete, relaxed) and training loss vs step."""
from __future__ import annotations

from pathlib import Path


def plot_curve(history: list[dict], path: str | Path, title: str = "") -> Path | None:
    """Validation accuracy (discrete, relaxed) and training loss vs step, as a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(s, [h["val_accuracy"] for h in history], label="val accuracy (discrete)", marker=".")
    ax.plot(s, [h["val_accuracy_relaxed"] for h in history], label="val accuracy (relaxed)", marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(s, [h["loss"] for h in history], color="gray", alpha=0.5, label="train loss")
    ax2.set_ylabel("train loss")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path

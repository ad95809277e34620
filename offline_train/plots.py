"""PNG plots of a training run: loss curves and per-predicate recall bars."""
from __future__ import annotations

from pathlib import Path


def _figure(w: float, h: float):
    # Figure + Agg canvas directly: no pyplot, so no global backend switch and no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_losses(history: list[dict], path: str | Path) -> Path:
    """history: one dict per epoch with 'epoch', 'loss' and optionally 'val_loss', 'mean_recall@5'."""
    fig = loss_figure(history)
    fig.savefig(str(path))
    return Path(path)


def loss_figure(history: list[dict]):
    """The loss plot's Figure: whole-epoch ticks, one legend below the axes (it never covers a curve)."""
    from matplotlib.ticker import MaxNLocator
    fig = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    ep = [h["epoch"] for h in history]
    ax.plot(ep, [h["loss"] for h in history], "o-", label="train loss")
    if any("val_loss" in h for h in history):
        ax.plot([h["epoch"] for h in history if "val_loss" in h], [h["val_loss"] for h in history if "val_loss" in h],
                "s-", label="val loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if any("mean_recall@5" in h for h in history):
        ax2 = ax.twinx()
        ax2.plot([h["epoch"] for h in history if "mean_recall@5" in h],
                 [h["mean_recall@5"] for h in history if "mean_recall@5" in h], "g^--", label="val mR@5")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("val mean recall@5")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    # one legend for both axes, below the plot where it can never cover a curve
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    ax.set_title("training")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_predicate_recall(recall: dict[str, float], path: str | Path, title: str = "per-predicate recall") -> Path:
    """Horizontal bars, one per predicate, sorted by recall."""
    items = sorted(recall.items(), key=lambda kv: kv[1])
    fig = _figure(7, max(3, 0.22 * len(items) + 1))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(str(path))
    return Path(path)


def plot_recall_comparison(recalls: dict[str, dict[str, float]], path: str | Path,
                           title: str = "per-predicate recall@50") -> Path:
    """Grouped horizontal bars: one group per predicate (sorted by the first method's recall), one bar per method
    ({method: {predicate: recall}}); predicates missing for a method count 0."""
    methods = list(recalls)
    preds = sorted({p for r in recalls.values() for p in r}, key=lambda p: recalls[methods[0]].get(p, 0.0))
    fig = _figure(8, max(3, 0.3 * len(preds) * max(1, len(methods)) / 2 + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    h = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        ys = [k + (i - (len(methods) - 1) / 2) * h for k in range(len(preds))]
        ax.barh(ys, [recalls[m].get(p, 0.0) for p in preds], height=h, label=m)
    ax.set_yticks(range(len(preds)), preds)
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="lower center", ncol=len(methods), frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(str(path))
    return Path(path)

"""Figures people would rather look at than read; all written atomically as PNG."""

import matplotlib

matplotlib.use("Agg")  # files only: the scripts must work with no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emotion_analyzer.common.fileio import atomic_path  # noqa: E402


def save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_class_distribution(counts, categories, path):
    """Grouped bars: images per emotion for each split."""
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(categories))
    splits = list(counts)
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        values = [counts[split][e] for e in categories]
        bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, values, width, label=split)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=7)
    ax.set_xticks(x, [e.title() for e in categories])
    ax.set_ylabel("images")
    ax.set_title("Images per emotion")
    ax.legend()
    save_figure(fig, path)


def plot_training_curves(history, path):
    """Accuracy and loss per epoch, training against validation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    marker = "o" if len(epochs) < 20 else None  # a run of one epoch is a point, not an empty line
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, history[metric], marker=marker, label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker=marker, label="validation")
        if len(epochs) < 10:
            ax.set_xticks(epochs)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def plot_confusion_matrix(matrix, labels, path, truth="FER2013's labels"):
    """Row-normalised confusion matrix with counts, its rows the `truth` the answers are judged by."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), [lab.title() for lab in labels], rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [lab.title() for lab in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel(truth)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n{matrix[i, j]:,}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(f"Test set against {truth}")
    save_figure(fig, path)


def plot_emotion_summary(shares_per_face, timeline, labels, path):
    """Emotion share per tracked face (stacked bars) and the emotion mix over time."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    faces = list(shares_per_face)
    bottom = np.zeros(len(faces))
    for k, label in enumerate(labels):
        values = np.array([shares_per_face[f][k] for f in faces]) if faces else np.zeros(0)
        axes[0].bar([str(f) for f in faces], values, bottom=bottom, label=label)
        bottom += values
    axes[0].set_xlabel("face")
    axes[0].set_ylabel("share of frames")
    axes[0].set_title("Emotion share per face")
    times, mix = timeline
    if len(times):
        axes[1].stackplot(times, np.asarray(mix).T, labels=labels)
    axes[1].set_xlabel("time (s)")
    axes[1].set_ylabel("share of faces")
    axes[1].set_title("Emotions over time")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize=8)
    save_figure(fig, path)


def plot_emotion_counts(counts, labels, photos, without_face, path):
    """How many faces of a run of photos read as each emotion: a bar per emotion, its count above it."""
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4))
    bars = ax.bar([label.title() for label in labels], counts, color="#4c72b0")
    ax.bar_label(bars, [f"{int(c):,}" for c in counts])
    ax.set_ylabel("faces")
    ax.set_title(f"Faces read as each emotion: {int(sum(counts)):,} in {photos:,} photo(s), no face in {without_face:,}")
    ax.margins(y=0.15)
    save_figure(fig, path)

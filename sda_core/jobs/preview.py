"""Stage: a grid of the first images of each image set, the look a researcher takes before any number."""

from __future__ import annotations

import numpy as np

from sda_core.store import StoreSequence


def evenly_spaced(images: StoreSequence, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images spread over the whole set: ImageNet stores are ordered by class."""
    indices = np.unique(np.linspace(0, len(images) - 1, count).astype(int))
    picked = [images.read(int(i), int(i) + 1) for i in indices]
    return np.concatenate([p[0] for p in picked]), np.concatenate([p[1] for p in picked])


def preview_job(image_sets: dict[str, list[str]], output: str, columns: int = 10) -> None:
    """One row per image set, the same sample indices in every row (a target image beside its adaptations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(image_sets), 1, figsize=(columns * 0.9, 1.05 * len(image_sets)), squeeze=False)
    for ax, (name, stores) in zip(axes[:, 0], image_sets.items()):
        images, labels = evenly_spaced(StoreSequence(stores), columns)
        ax.imshow(np.concatenate(list(images), axis=1), interpolation="nearest")
        ax.set_xticks(
            (np.arange(len(images)) + 0.5) * images.shape[2], [str(int(label)) for label in labels], fontsize=7
        )
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)

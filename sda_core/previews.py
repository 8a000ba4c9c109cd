"""Preview grids: the same samples through every stage, the look a researcher takes before any number
(drawn for the preview stage by the run's task: sda_core.tasks)."""

from __future__ import annotations

import numpy as np

from sda_core.store import StoreSequence


def evenly_spaced_indices(length: int, count: int) -> np.ndarray:
    """`count` indices spread over a set of `length`: ImageNet stores are ordered by class."""
    return np.unique(np.linspace(0, length - 1, count).astype(int))


def evenly_spaced(images: StoreSequence, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images (and their labels) spread over the whole set (evenly_spaced_indices)."""
    indices = evenly_spaced_indices(len(images), count)
    picked = [images.read(int(i), int(i) + 1) for i in indices]
    return np.concatenate([p[0] for p in picked]), np.concatenate([p[1] for p in picked])


def image_grid(image_sets: dict[str, list[str]], output: str, columns: int = 10) -> None:
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


def label_colours(num_classes: int) -> np.ndarray:
    """(num_classes + 1, 3) uint8: class 0 (background) black, the others evenly spaced hues, and a last
    row, grey, for IGNORE_INDEX pixels."""
    import colorsys

    hues = [colorsys.hsv_to_rgb(k / max(num_classes - 1, 1), 0.9, 1.0) for k in range(num_classes - 1)]
    return (np.array([(0, 0, 0), *hues, (0.5, 0.5, 0.5)]) * 255).round().astype(np.uint8)


def coloured(maps: np.ndarray, num_classes: int) -> np.ndarray:
    """Label maps (N, H, W) as RGB images (N, H, W, 3)."""
    from sda_core.store import IGNORE_INDEX

    colours = label_colours(num_classes)
    return colours[np.where(maps == IGNORE_INDEX, num_classes, np.minimum(maps, num_classes))]


def map_grid(
    rows: dict[str, tuple[str, list[str] | None, tuple[str, str] | tuple]],
    prediction_files: dict[str, str],
    output: str,
    num_classes: int,
    columns: int = 8,
) -> None:
    """A grid, the same scenes in every row: each row an image set's images (kind "images", its stores),
    its label maps ("labels"), or a method's predicted maps ("predicted": the method's name and the
    corruption, fused as the tables fuse it (sda_core.ensemble), from prediction_files: image set -> the
    predict stage's file holding it), as rows[name] = (kind, stores, method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sda_core.ensemble import fuse, method_terms
    from sda_core.methods import METHODS
    from sda_core.scoring.predictions import PredictionReader

    predictions = PredictionReader(prediction_files)
    fig, axes = plt.subplots(len(rows), 1, figsize=(columns * 0.9, 1.05 * len(rows)), squeeze=False)
    for ax, (name, (kind, stores, method)) in zip(axes[:, 0], rows.items()):
        if kind == "predicted":
            method_name, corruption = method
            fused = fuse(METHODS[method_name].fusion, method_terms(predictions, METHODS[method_name], corruption))
            picture = coloured(fused[evenly_spaced_indices(len(fused), columns)].argmax(1), num_classes)
        else:
            images, maps = evenly_spaced(StoreSequence(stores), columns)
            picture = images if kind == "images" else coloured(maps, num_classes)
        ax.imshow(np.concatenate(list(picture), axis=1), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    predictions.close()

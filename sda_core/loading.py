"""Feeding the classifier passes: stores decoded (and training images augmented) in DataLoader worker
processes, streamed from the zarr stores, while the model runs.

- Prediction reads consecutive batches (`batch_loader`); fine-tuning reads each epoch's shuffled batches
  (`training_loader` over TrainingImages; each store chunk a batch touches is decoded once), so the
  training set is never held in memory whole.
- Workers, on a GPU: one fewer than the job's threads (the job's own thread runs the model); on the
  CPU none (the model's threads use the job's cores). Batches arrive in order whatever the worker
  count, pinned for the copy to a GPU.
- Training augmentation is seeded per (seed, epoch, image index), not by a generator shared across
  the job: an image gets the same crop and RandAugment draws in a worker process as in the job's own,
  so the trained weights do not depend on the worker count (tests/test_loading.py).
- `WaitClock` measures the share of a job's loop spent waiting for the next batch; the jobs log it.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sda_core.rng import sample_seed
from sda_core.store import CLASS_LABELS, LabelLayout, StoreSequence

log = logging.getLogger(__name__)


def loader_workers(threads: int, device: torch.device) -> int:
    """Worker processes for a job with `threads` threads on `device`: on a GPU all but the one that runs
    the model; on the CPU none, since the model's own threads use the job's cores."""
    return max(0, threads - 1) if device.type == "cuda" else 0


class StoreRows:
    """The images of stores at `positions` (None: all), as rows 0..n-1; each process that reads them opens
    its own handles (a DataLoader worker is a separate process)."""

    def __init__(self, paths: Sequence[str | os.PathLike], positions: np.ndarray | None = None):
        self.paths = [str(p) for p in paths]
        self._opened: tuple[int, StoreSequence] | None = None
        self.positions = np.arange(len(self.sequence)) if positions is None else np.asarray(positions)

    @property
    def sequence(self) -> StoreSequence:
        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), StoreSequence(self.paths))
        return self._opened[1]

    def __getstate__(self):
        return {**self.__dict__, "_opened": None}

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def label_layout(self) -> LabelLayout:
        """How the stores hold the labels (the task's: sda_core.tasks)."""
        return self.sequence.label_layout

    def rows(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images, labels and store positions of rows `indices`."""
        positions = self.positions[np.asarray(indices, dtype=np.int64)]
        return (*self.sequence.read_rows(positions), positions)


class ArrayRows:
    """In-memory images and labels as rows (tests, small sets)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, layout: LabelLayout = CLASS_LABELS):
        if tuple(labels.shape[1:]) != layout.shape:
            raise ValueError(f"labels of shape {labels.shape[1:]} for a label layout of shape {layout.shape}")
        self.images, self.labels, self.label_layout = images, labels, layout

    def __len__(self) -> int:
        return len(self.images)

    def rows(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        return self.images[indices], self.labels[indices], indices


class StoreBatches(Dataset):
    """Item k: images [k * batch_size, (k + 1) * batch_size) of the stores, with their labels."""

    def __init__(self, paths: Sequence[str | os.PathLike], batch_size: int):
        self.source, self.batch_size = StoreRows(paths), batch_size

    def __len__(self) -> int:
        return -(-len(self.source) // self.batch_size)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.source.sequence.read(
            k * self.batch_size, min((k + 1) * self.batch_size, len(self.source))
        )
        return torch.from_numpy(images), torch.from_numpy(labels)


class TrainingImages(Dataset):
    """Rows of `source` (StoreRows, ArrayRows) keyed by (epoch, row): uint8 HWC images, or with `augment`
    (uint8 HWC image -> tensor) augmented under the seed of (seed, epoch, the image's store position)."""

    def __init__(self, source, augment: Callable[[np.ndarray], torch.Tensor] | None, seed: int):
        self.source, self.augment, self.seed = source, augment, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        images, labels, positions = self.source.rows([row for _, row in keys])
        if self.augment is None:
            return [(torch.from_numpy(image), as_label(label)) for image, label in zip(images, labels)]
        augmented = []
        for (epoch, _), position, image, label in zip(keys, positions, images, labels):
            with seeded(sample_seed(self.seed, f"augment/epoch-{epoch}", int(position))):
                augmented.append((self.augment(image), as_label(label)))
        return augmented


def as_label(label: np.ndarray) -> torch.Tensor:
    """A loader item's label as a tensor of its own: a class (0-d int64) or a label map (H, W)."""
    return torch.from_numpy(np.array(label))


class seeded:
    """The global generators that image augmentations draw from, seeded for one image and restored
    afterwards: Python's (RandAugment's magnitudes), numpy's (timm's RandAugment picks its operations
    with np.random.choice) and torch's CPU generator (torchvision's random transforms). The CUDA
    generators are left alone: the model's own draws (drop path) come from them."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self.saved = random.getstate(), np.random.get_state(), torch.default_generator.get_state()
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.default_generator.manual_seed(self.seed)  # not torch.manual_seed, which reseeds CUDA too

    def __exit__(self, *exc):
        random.setstate(self.saved[0])
        np.random.set_state(self.saved[1])
        torch.default_generator.set_state(self.saved[2])


def _stack(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([image for image, _ in rows]), torch.stack([label for _, label in rows])


def batch_loader(
    paths: Sequence[str | os.PathLike], batch_size: int, threads: int, device: torch.device, workers: int | None = None
) -> DataLoader:
    """The stores' consecutive batches (uint8 NHWC images, int64 classes or uint8 label maps), decoded ahead by workers
    (None: loader_workers)."""
    workers = loader_workers(threads, device) if workers is None else workers
    return DataLoader(
        StoreBatches(paths, batch_size),
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )


def training_loader(
    dataset: TrainingImages,
    batches: Iterable[Sequence[tuple[int, int]]],
    threads: int,
    device: torch.device,
    workers: int | None = None,
) -> DataLoader:
    """`batches` (lists of (epoch, i) keys) of `dataset`, stacked: (N, H, W, C) uint8 or augmented tensors;
    workers None: loader_workers."""
    workers = loader_workers(threads, device) if workers is None else workers
    return DataLoader(
        dataset,
        batch_sampler=list(batches),
        collate_fn=_stack,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if workers else None,
    )


class WaitClock:
    """Time spent waiting for the next batch against the loop's whole time."""

    def __init__(self):
        self.waiting, self.started = 0.0, time.perf_counter()

    def batches(self, loader: Iterable) -> Iterator:
        iterator = iter(loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                self.waiting += time.perf_counter() - start
            yield batch

    def report(self, what: str) -> str:
        total = time.perf_counter() - self.started
        share = 100 * self.waiting / max(total, 1e-9)
        message = f"{what}: {self.waiting:.1f} s of {total:.1f} s waiting for data ({share:.0f}%)"
        log.info(message)
        return message

"""Zarr image stores: uint8 NHWC images, int64 labels, per-chunk completion flags.

A stage writes into `<output>.partial`, an undeclared sibling of its Snakemake output, one chunk
at a time: images, then labels, then the chunk's `done` flag. A killed job leaves finished chunks
flagged and resumes at the first unflagged one (all-zero chunks are not stored by zarr, so
completion is never inferred from a chunk file existing). When every chunk is done the store is
renamed to the declared output in one atomic step.

A store's attrs carry `fingerprint`, a dict describing what produced it; a partial store with a
different fingerprint is stale (other parameters) and is discarded rather than resumed.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    pass


def shard_range(num_items: int, num_shards: int, shard: int, batch_size: int) -> tuple[int, int]:
    """[start, stop) of shard `shard` of `num_shards`, cut on batch boundaries.

    Cutting on batch boundaries keeps every batch's content independent of the shard count,
    which matters for anything computed per batch (the reference's batch-wide guidance norm).
    """
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    num_batches = math.ceil(num_items / batch_size)
    first = shard * num_batches // num_shards
    last = (shard + 1) * num_batches // num_shards
    return min(first * batch_size, num_items), min(last * batch_size, num_items)


class ImageStore:
    """An open zarr group with `images` (N, H, W, C) uint8, `labels` (N,) int64 and `done` flags."""

    def __init__(self, group: zarr.Group, path: Path):
        self.group = group
        self.path = path
        self.images = group["images"]
        self.labels = group["labels"]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def chunk_size(self) -> int:
        return self.images.chunks[0]

    @property
    def num_chunks(self) -> int:
        return math.ceil(len(self) / self.chunk_size)

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        return chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, len(self))

    def pending_chunks(self) -> list[int]:
        done = self.group["done"][:]
        return [k for k in range(self.num_chunks) if not done[k]]

    def write_chunk(self, chunk: int, images: np.ndarray, labels: np.ndarray) -> None:
        start, stop = self.chunk_bounds(chunk)
        if images.shape != (stop - start, *self.images.shape[1:]) or images.dtype != np.uint8:
            raise StoreError(f"chunk {chunk} of {self.path} expects uint8 images of shape "
                             f"{(stop - start, *self.images.shape[1:])}, got {images.dtype} {images.shape}")
        self.images[start:stop] = images
        self.labels[start:stop] = labels
        self.group["done"][chunk] = True  # last: the flag vouches for the data written before it

    def read(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        stop = len(self) if stop is None else stop
        return self.images[start:stop], self.labels[start:stop]


def _fingerprint_json(fingerprint: dict) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def open_partial(output: str | os.PathLike, num_items: int, image_shape: Sequence[int], chunk_size: int,
                 fingerprint: dict) -> ImageStore:
    """Open `<output>.partial` for writing: resume it when its layout and fingerprint match, else start anew."""
    partial = Path(f"{output}.partial")
    layout = {"num_items": int(num_items), "image_shape": [int(s) for s in image_shape], "chunk_size": int(chunk_size)}
    wanted = {"layout": layout, "fingerprint": json.loads(_fingerprint_json(fingerprint))}
    if partial.exists():
        try:
            group = zarr.open_group(str(partial), mode="r+")
            found = {"layout": group.attrs.get("layout"), "fingerprint": group.attrs.get("fingerprint")}
        except Exception as error:  # unreadable metadata: nothing in it can be trusted
            log.warning("discarding unreadable partial store %s (%s)", partial, error)
            found = None
        if found == wanted:
            store = ImageStore(group, partial)
            log.info("resuming %s: %d of %d chunks already done", partial, store.num_chunks - len(
                store.pending_chunks()), store.num_chunks)
            return store
        if found is not None:
            log.warning("discarding partial store %s written with other parameters", partial)
        shutil.rmtree(partial)
    group = zarr.open_group(str(partial), mode="w")
    num_chunks = math.ceil(num_items / chunk_size)  # 0 for an empty shard (more shards than batches)
    group.create_array("images", shape=(num_items, *image_shape), chunks=(chunk_size, *image_shape),
                       dtype="uint8", fill_value=0)
    group.create_array("labels", shape=(num_items,), chunks=(chunk_size,), dtype="int64", fill_value=-1)
    group.create_array("done", shape=(num_chunks,), chunks=(1,), dtype="bool", fill_value=False)
    group.attrs.update(wanted)
    return ImageStore(group, partial)


def finalize(store: ImageStore, output: str | os.PathLike) -> None:
    """Rename a complete partial store to its declared output."""
    pending = store.pending_chunks()
    if pending:
        raise StoreError(f"{store.path} still has {len(pending)} unfinished chunks (first: {pending[0]})")
    output = Path(output)
    if output.exists():
        shutil.rmtree(output)
    os.replace(store.path, output)


def fill_store(output: str | os.PathLike, num_items: int, image_shape: Sequence[int], chunk_size: int,
               fingerprint: dict, compute: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
               desc: str | None = None) -> None:
    """Create `output` chunk by chunk, resuming a matching partial store; compute(start, stop) gives
    the uint8 images and labels of items [start, stop) of this store."""
    store = open_partial(output, num_items, image_shape, chunk_size, fingerprint)
    for chunk in tqdm(store.pending_chunks(), desc=desc or Path(output).name, mininterval=10):
        store.write_chunk(chunk, *compute(*store.chunk_bounds(chunk)))
    finalize(store, output)


def write_store(output: str | os.PathLike, images: np.ndarray, labels: np.ndarray, chunk_size: int,
                fingerprint: dict) -> None:
    """Write a whole in-memory image set as a finished store."""
    fill_store(output, len(images), images.shape[1:], chunk_size, fingerprint,
               lambda start, stop: (images[start:stop], labels[start:stop]))


def open_store(path: str | os.PathLike) -> ImageStore:
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"image store not found: {path}")
    store = ImageStore(zarr.open_group(str(path), mode="r"), path)
    if store.pending_chunks():
        raise StoreError(f"{path} is incomplete: {len(store.pending_chunks())} chunks not done")
    return store


class StoreSequence:
    """Several finished stores read as one index space, in the given order (e.g. the shards of a stage)."""

    def __init__(self, paths: Sequence[str | os.PathLike]):
        if not paths:
            raise ValueError("no image stores given")
        self.stores = [open_store(p) for p in paths]
        shapes = {s.images.shape[1:] for s in self.stores}
        if len(shapes) != 1:
            raise StoreError(f"stores have different image shapes {sorted(shapes)}: {list(map(str, paths))}")
        self.image_shape = shapes.pop()
        self.offsets = np.cumsum([0] + [len(s) for s in self.stores])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for store, offset in zip(self.stores, self.offsets[:-1]):
            lo, hi = max(start - offset, 0), min(stop - offset, len(store))
            if lo < hi:
                chunk_images, chunk_labels = store.read(int(lo), int(hi))
                images.append(chunk_images)
                labels.append(chunk_labels)
        if not images:
            return np.zeros((0, *self.image_shape), np.uint8), np.zeros((0,), np.int64)
        return np.concatenate(images), np.concatenate(labels)

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        stop = len(self) if stop is None else stop
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            yield (lo, *self.read(lo, hi))

"""Zarr image stores: uint8 NHWC images, their labels (int64 classes, or for segmentation uint8 label
maps of shape (N, H, W), chunked with the images), per-chunk completion flags; and prediction stores,
the same with float16 probability rows in place of the images (MEMO's outputs).

A stage writes into `<output>.partial`, an undeclared sibling of its Snakemake output, one chunk
at a time: images, then labels, then the chunk's `done` flag. A killed job leaves finished chunks
flagged and resumes at the first unflagged one (all-zero chunks are not stored by zarr, so
completion is never inferred from a chunk file existing). When every chunk is done the store is
renamed to the declared output in one atomic step.

A store's attrs carry `fingerprint`, a dict describing what produced it, and `codec`, the name of
the storage codec its images were written with (see STORAGE_CODECS); a partial store with a
different fingerprint or codec is stale and is discarded rather than resumed. A fingerprint names
what its inputs hold (input_identities), not only their paths: an input remade at the same path
makes the partial stale too.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import math
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from PIL import Image
from tqdm import tqdm
from zarr.abc.codec import ArrayBytesCodec
from zarr.codecs import TransposeCodec, ZstdCodec
from zarr.codecs.numcodecs import Delta
from zarr.core.common import parse_named_configuration
from zarr.errors import ZarrUserWarning
from zarr.registry import register_codec

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

log = logging.getLogger(__name__)

# zarr warns on every use of a numcodecs codec (Delta) that other zarr implementations may lack it;
# these stores are only ever read through this module, so the warning is noise
warnings.filterwarnings(
    "ignore", message="Numcodecs codecs are not in the Zarr version 3 specification", category=ZarrUserWarning
)

STORAGE_CODECS = {
    "zstd": "lossless: zstd level 3 over each chunk of images (what zarr uses by default)",
    "none": "lossless: raw bytes, no compression",
    "delta-zstd": "lossless: each channel's horizontal pixel differences (PNG's 'Sub' predictor), then zstd level 1",
    "jpeg-q85": "LOSSY: every image a JPEG of quality 85, 4:2:0 chroma, as the ImageNet-C release stores its images",
    "jpeg-q75": "LOSSY: every image a JPEG of quality 75, 4:2:0 chroma, as the reference stores adapted images",
}
JPEG_QUALITY = {"jpeg-q85": 85, "jpeg-q75": 75}


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


IMAGES = "images"  # the array of an image store: (N, H, W, C) uint8
PROBABILITIES = "probabilities"  # the array of a prediction store: (N, classes) float16
IGNORE_INDEX = 255  # a label map's "no label" value (PASCAL VOC's void), and its fill before it is written


@dataclass(frozen=True)
class LabelLayout:
    """How a store holds its labels: an array of `shape` per image (() a class), as `dtype`, `fill` in the
    rows not written yet. The run's task chooses it (sda_core.tasks: Task.label_layout); a store keeps it,
    and every stage that copies a store's labels copies its layout."""

    shape: tuple[int, ...] = ()
    dtype: str = "int64"
    fill: int = -1

    def record(self) -> dict:
        """The layout in a store's attrs: nothing for the default (stores of classes read as before)."""
        return {} if self == CLASS_LABELS else {"label_shape": [int(s) for s in self.shape]}

    def fits(self, image_side: int) -> bool:
        """Whether the labels stay true for images of `image_side` px (a label per pixel does not)."""
        return self.shape in ((), (image_side, image_side))

    def values_problem(self, labels: np.ndarray) -> str | None:
        """Labels an unsigned dtype cannot hold (they would wrap around)."""
        if np.dtype(self.dtype).kind != "u" or not np.size(labels):
            return None
        high = np.iinfo(self.dtype).max
        return None if 0 <= np.min(labels) <= np.max(labels) <= high else f"label values outside 0..{high}"


CLASS_LABELS = LabelLayout()  # one int64 class per image, -1 before it is written


class ImageStore:
    """An open zarr group with `images` (N, H, W, C) uint8 (a prediction store: `probabilities` (N, K)
    float16, read through the same attribute), `labels` (N,) int64 or (N, H, W) uint8 label maps, and
    `done` flags."""

    def __init__(self, group: zarr.Group, path: Path):
        self.group = group
        self.path = path
        self.images = group[PROBABILITIES if PROBABILITIES in group else IMAGES]
        self.labels = group["labels"]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def chunk_size(self) -> int:
        """Images per written chunk: the shard for per-image codecs (their zarr chunks hold one image)."""
        return (self.images.shards or self.images.chunks)[0]

    @property
    def label_shape(self) -> tuple[int, ...]:
        """The shape of one image's labels: () for a class, (H, W) for a label map."""
        return tuple(self.labels.shape[1:])

    @property
    def label_layout(self) -> LabelLayout:
        return LabelLayout(self.label_shape, str(self.labels.dtype), int(self.labels.fill_value))

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
        if images.shape != (stop - start, *self.images.shape[1:]) or images.dtype != self.images.dtype:
            raise StoreError(
                f"chunk {chunk} of {self.path} expects {self.images.dtype} rows of shape "
                f"{(stop - start, *self.images.shape[1:])}, got {images.dtype} {images.shape}"
            )
        if np.shape(labels) != (stop - start, *self.label_shape):
            raise StoreError(
                f"chunk {chunk} of {self.path} expects labels of shape {(stop - start, *self.label_shape)}, "
                f"got {np.shape(labels)}"
            )
        problem = self.label_layout.values_problem(labels)
        if problem:
            raise StoreError(f"chunk {chunk} of {self.path}: {problem}")
        self.images[start:stop] = images
        self.labels[start:stop] = labels
        self.group["done"][chunk] = True  # last: the flag vouches for the data written before it

    def mark_pending(self, chunks: Sequence[int]) -> None:
        """Clear the done flags of `chunks`: they are computed again (a job's other store lacks them)."""
        for chunk in chunks:
            self.group["done"][chunk] = False

    def read(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        stop = len(self) if stop is None else stop
        return self.images[start:stop], self.labels[start:stop]


JPEG_CODEC_NAME = "sda_pipeline.jpeg"


@dataclass(frozen=True)
class JpegImageCodec(ArrayBytesCodec):
    """Zarr serializer storing a chunk of one uint8 image, (1, H, W, C) with C 1 or 3, as a JPEG file.

    Encoded by Pillow (libjpeg-turbo) with its default 4:2:0 chroma subsampling, as the ImageNet-C
    release's `Image.save(path, quality=85, optimize=True)`; optimised Huffman tables shrink the file
    without changing a decoded pixel. Decoded pixels can differ by a grey level or so between
    libjpeg builds. The codec is not in the zarr spec: importing this module registers it, so
    stores using it open through this module.
    """

    is_fixed_size = False

    quality: int

    def __init__(self, *, quality: int) -> None:
        object.__setattr__(self, "quality", int(quality))

    @classmethod
    def from_dict(cls, data: dict) -> JpegImageCodec:
        _, configuration = parse_named_configuration(data, JPEG_CODEC_NAME)
        return cls(**configuration)

    def to_dict(self) -> dict:
        return {"name": JPEG_CODEC_NAME, "configuration": {"quality": self.quality}}

    def _encode_image(self, chunk: np.ndarray) -> bytes:
        if chunk.dtype != np.uint8 or chunk.ndim != 4 or chunk.shape[0] != 1 or chunk.shape[3] not in (1, 3):
            raise StoreError(
                f"the JPEG codec stores one uint8 (1, H, W, 1 or 3) image per chunk, got {chunk.dtype} {chunk.shape}"
            )
        encoded = io.BytesIO()
        Image.fromarray(chunk[0, :, :, 0] if chunk.shape[3] == 1 else chunk[0]).save(
            encoded, "JPEG", quality=self.quality, optimize=True
        )
        return encoded.getvalue()

    @staticmethod
    def _decode_image(encoded: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(encoded)))

    # both code in worker threads: Pillow releases the GIL meanwhile, so a shard's images code in parallel
    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer:
        encoded = await asyncio.to_thread(self._encode_image, chunk_array.as_numpy_array())
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        image = await asyncio.to_thread(self._decode_image, chunk_bytes.to_bytes())
        return chunk_spec.prototype.nd_buffer.from_numpy_array(image.reshape(chunk_spec.shape))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("a JPEG's size depends on the image")


register_codec(JPEG_CODEC_NAME, JpegImageCodec)


def check_codec(codec: str) -> str:
    """`codec` if it names a storage codec (a key of STORAGE_CODECS), else a ValueError listing them."""
    if codec not in STORAGE_CODECS:
        raise ValueError(f"unknown storage codec {codec!r}; valid: {', '.join(STORAGE_CODECS)}")
    return codec


def image_array_encoding(codec: str, image_shape: Sequence[int], chunk_size: int) -> dict:
    """The `create_array` keywords (chunks, shards, filters, serializer, compressors) storing
    (N, H, W, C) images with `codec`, `chunk_size` images per written chunk.

    Lossless codecs compress a whole chunk of images at once. JPEG codes single images, so there a
    zarr chunk is one image and `chunk_size` images make a shard: still one file per written chunk,
    with per-image JPEGs inside (reading decodes them in parallel threads).
    """
    check_codec(codec)
    if len(image_shape) != 3:
        raise ValueError(f"images must be (H, W, C), got shape {tuple(image_shape)}")
    written_chunk = (int(chunk_size), *map(int, image_shape))
    if codec in JPEG_QUALITY:
        if image_shape[2] not in (1, 3):
            raise ValueError(f"{codec} stores images of 1 or 3 channels, not {image_shape[2]}")
        return {
            "chunks": (1, *written_chunk[1:]),
            "shards": written_chunk,
            "filters": None,
            "serializer": JpegImageCodec(quality=JPEG_QUALITY[codec]),
            "compressors": None,
        }
    # NCHW order makes the flat differences run along image rows of one channel
    filters = [TransposeCodec(order=(0, 3, 1, 2)), Delta(dtype="|u1")] if codec == "delta-zstd" else None
    compressors = {"zstd": ZstdCodec(level=3), "delta-zstd": ZstdCodec(level=1), "none": None}[codec]
    return {"chunks": written_chunk, "filters": filters, "compressors": compressors}


def _fingerprint_json(fingerprint: dict) -> str:
    return json.dumps(fingerprint, sort_keys=True, default=str)


def input_identities(paths: Sequence[str | os.PathLike | None]) -> dict[str, str]:
    """path -> a digest of what it holds, for the fingerprint of a store made from those inputs: a
    partial store of a killed job must not be resumed once an input was remade at the same path (a
    retrained model, a target set made again). A store's digest is that of its recorded fingerprint,
    layout and codec (which name its own inputs' digests in turn, so this reads no images); a file's,
    or a folder's files', is of their bytes. Deterministic: equal inputs give equal digests on a rerun."""
    found = {}
    for path in dict.fromkeys(Path(p) for p in paths if p is not None):
        digest = hashlib.sha256()
        if (path / "zarr.json").is_file():
            attrs = zarr.open_group(str(path), mode="r").attrs
            digest.update(
                _fingerprint_json({key: attrs.get(key) for key in ("fingerprint", "layout", "codec")}).encode()
            )
        else:
            files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
            for file in files:
                digest.update(str(file.relative_to(path)).encode() if file != path else b"")
                with file.open("rb") as opened:
                    for block in iter(lambda opened=opened: opened.read(1 << 24), b""):
                        digest.update(block)
        found[str(path)] = digest.hexdigest()
    return found


def open_partial(
    output: str | os.PathLike,
    num_items: int,
    image_shape: Sequence[int],
    chunk_size: int,
    fingerprint: dict,
    codec: str = "zstd",
    array: str = IMAGES,
    labels: LabelLayout = CLASS_LABELS,
) -> ImageStore:
    """Open `<output>.partial` for writing: resume it when its layout, fingerprint and storage codec
    (a name in STORAGE_CODECS) match, else start anew. array=PROBABILITIES: a prediction store, whose
    float16 rows of shape `image_shape` are stored with zstd (codec is ignored). labels: how the labels
    are held (the task's layout; a class per image by default)."""
    if array == PROBABILITIES:
        dtype, codec = "float16", "zstd"
        encoding = {"chunks": (int(chunk_size), *map(int, image_shape)), "compressors": ZstdCodec(level=3)}
    else:
        dtype = "uint8"
        encoding = image_array_encoding(codec, image_shape, chunk_size)  # a bad name fails before anything is deleted
    partial = Path(f"{output}.partial")
    layout = {
        "num_items": int(num_items),
        "image_shape": [int(s) for s in image_shape],
        "chunk_size": int(chunk_size),
        **({"array": array} if array != IMAGES else {}),
        **labels.record(),
    }
    wanted = {"layout": layout, "fingerprint": json.loads(_fingerprint_json(fingerprint)), "codec": codec}
    if partial.exists():
        try:
            group = zarr.open_group(str(partial), mode="r+")
            found = {
                "layout": group.attrs.get("layout"),
                "fingerprint": group.attrs.get("fingerprint"),
                "codec": group.attrs.get("codec"),
            }
        except Exception as error:  # unreadable metadata: nothing in it can be trusted
            log.warning("discarding unreadable partial store %s (%s)", partial, error)
            found = None
        if found == wanted:
            store = ImageStore(group, partial)
            log.info(
                "resuming %s: %d of %d chunks already done",
                partial,
                store.num_chunks - len(store.pending_chunks()),
                store.num_chunks,
            )
            return store
        if found is not None:
            log.warning("discarding partial store %s written with other parameters", partial)
        shutil.rmtree(partial)
    group = zarr.open_group(str(partial), mode="w")
    num_chunks = math.ceil(num_items / chunk_size)  # 0 for an empty shard (more shards than batches)
    group.create_array(array, shape=(num_items, *image_shape), dtype=dtype, fill_value=0, **encoding)
    group.create_array(
        "labels",
        shape=(num_items, *labels.shape),
        chunks=(chunk_size, *labels.shape),
        dtype=labels.dtype,
        fill_value=labels.fill,
    )
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


def fill_store(
    output: str | os.PathLike,
    num_items: int,
    image_shape: Sequence[int],
    chunk_size: int,
    fingerprint: dict,
    compute: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    desc: str | None = None,
    codec: str = "zstd",
    array: str = IMAGES,
    chunks_per_call: int | Callable[[], int] = 1,
    labels: LabelLayout = CLASS_LABELS,
    keep_partial: bool = False,
) -> ImageStore:
    """Create `output` chunk by chunk with storage codec `codec`, resuming a matching partial store;
    compute(start, stop) gives the uint8 images (array=PROBABILITIES: float16 rows) and labels of items
    [start, stop) of this store. Each call covers up to `chunks_per_call` consecutive pending chunks (a
    batch larger than the store's chunk: adaptation.batch_size auto; a callable is asked only when
    chunks are pending); each is written as soon as the call returns, so a kill loses at most one
    call's chunks. labels: as for open_partial.

    keep_partial: leave the complete store at `<output>.partial` (returned) for finalize_all: a job
    with several outputs renames them only once all are complete, because Snakemake deletes every
    declared output of a killed job when it reruns it, while it leaves the `.partial` stores alone."""
    store = open_partial(output, num_items, image_shape, chunk_size, fingerprint, codec, array, labels)
    pending = store.pending_chunks()
    if pending and callable(chunks_per_call):
        chunks_per_call = chunks_per_call()
    with tqdm(total=len(pending), desc=desc or Path(output).name, mininterval=10) as progress:
        for run in consecutive_runs(pending, chunks_per_call):
            start, stop = store.chunk_bounds(run[0])[0], store.chunk_bounds(run[-1])[1]
            images, labels = compute(start, stop)
            for chunk in run:
                lo, hi = (bound - start for bound in store.chunk_bounds(chunk))
                store.write_chunk(chunk, images[lo:hi], labels[lo:hi])
            progress.update(len(run))
    if not keep_partial:
        finalize(store, output)
    return store


def finalize_all(stores: Sequence[tuple[ImageStore, str | os.PathLike]]) -> None:
    """Rename the complete partial stores of a job with several outputs (fill_store's keep_partial) to
    their declared outputs, once all of them are complete."""
    for store, output in stores:
        finalize(store, output)


def consecutive_runs(chunks: Sequence[int], longest: int) -> list[list[int]]:
    """`chunks` (increasing) cut into runs of consecutive indices, each at most `longest` long."""
    runs: list[list[int]] = []
    for chunk in chunks:
        if runs and chunk == runs[-1][-1] + 1 and len(runs[-1]) < longest:
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return runs


def write_store(
    output: str | os.PathLike,
    images: np.ndarray,
    labels: np.ndarray,
    chunk_size: int,
    fingerprint: dict,
    codec: str = "zstd",
    layout: LabelLayout = CLASS_LABELS,
) -> None:
    """Write a whole in-memory image set (labels as `layout` holds them: the task's) as a finished store
    with storage codec `codec`."""
    fill_store(
        output,
        len(images),
        images.shape[1:],
        chunk_size,
        fingerprint,
        lambda start, stop: (images[start:stop], labels[start:stop]),
        codec=codec,
        labels=layout,
    )


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
        layouts = {s.label_layout for s in self.stores}
        if len(layouts) != 1:
            raise StoreError(
                f"stores have different label layouts {sorted(map(str, layouts))}: {list(map(str, paths))}"
            )
        self.label_layout = layouts.pop()
        self.label_shape, self.label_dtype = self.label_layout.shape, self.label_layout.dtype
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
            return np.zeros((0, *self.image_shape), np.uint8), np.zeros((0, *self.label_shape), self.label_dtype)
        return np.concatenate(images), np.concatenate(labels)

    def read_positions(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The images and labels at increasing `positions` (e.g. a chunk of the images a limited method
        covers), read as the one span from the first to the last."""
        span, span_labels = self.read(int(positions[0]), int(positions[-1]) + 1)
        return span[positions - positions[0]], span_labels[positions - positions[0]]

    def read_rows(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The images and labels at any `positions`, in their order, each chunk decoded once (zarr's
        orthogonal selection; e.g. a shuffled training batch)."""
        positions = np.asarray(positions, dtype=np.int64)
        images = np.empty((len(positions), *self.image_shape), np.uint8)
        labels = np.empty((len(positions), *self.label_shape), self.label_dtype)
        which = np.searchsorted(self.offsets, positions, side="right") - 1
        for k in np.unique(which):
            rows = np.flatnonzero(which == k)
            local = positions[rows] - self.offsets[k]
            images[rows] = self.stores[k].images.oindex[local]
            labels[rows] = self.stores[k].labels.oindex[local]
        return images, labels

    def labels(self) -> np.ndarray:
        """Every label (or label map), in order, without reading an image."""
        return np.concatenate([s.labels[:] for s in self.stores])


def read_predictions(paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """The probability rows and labels of finished prediction stores, concatenated in the given order."""
    stores = [open_store(p) for p in paths]
    not_predictions = [str(s.path) for s in stores if s.images.basename != PROBABILITIES]
    if not_predictions:
        raise StoreError(f"not prediction stores: {', '.join(not_predictions)}")
    return np.concatenate([s.images[:] for s in stores]), np.concatenate([s.labels[:] for s in stores])

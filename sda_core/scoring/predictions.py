"""The predict stage's outputs, read by key (sda_core.image_sets): softmax rows of every model on every
image set, and the prediction stores of the per-image adaptation methods (MEMO, GDA)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sda_core.image_sets import covered_images, image_set_of, labels_key
from sda_core.store import read_predictions

# arch -> image set -> npz of the predict stage holding it; or predictions key -> prediction stores (MEMO)
PredictionFiles = dict[str, dict[str, str | list[str]]]


class PredictionReader(Mapping):
    """The predict stage's arrays of one architecture by key (sda_core.image_sets), read lazily; and
    MEMO's, from prediction stores, where `files` maps a whole predictions key to its stores.

    Only the arrays asked for are decompressed: at ImageNet scale a group file holds ~0.6 GB of softmax
    outputs, and with predict.jobs: per_architecture every set is in the same file. A key whose set or
    array is missing raises, naming both: a renamed set must not drop a row silently. The labels of
    prediction stores must be those of the set's images they cover (image_sets.covered_images), else
    the rows do not belong to those images.
    """

    def __init__(self, files: dict[str, str | list[str]]):
        self.files = files
        self._open: dict[str, np.lib.npyio.NpzFile] = {}
        self._stores: dict[str, np.ndarray] = {}

    def _from_stores(self, key: str) -> np.ndarray:
        if key not in self._stores:
            probabilities, labels = read_predictions(self.files[key])
            every = self[labels_key(image_set_of(key))]
            expected = every[covered_images(len(every), len(labels))]
            if len(labels) > len(every) or not np.array_equal(labels, expected):
                raise ValueError(f"the labels of {', '.join(self.files[key])} are not those of {image_set_of(key)}")
            self._stores[key] = probabilities
        return self._stores[key]

    def __getitem__(self, key: str) -> np.ndarray:
        if not isinstance(self.files.get(key, ""), str):
            return self._from_stores(key)
        image_set = image_set_of(key)
        if image_set not in self.files:
            raise KeyError(f"no prediction file holds image set {image_set!r} (known: {', '.join(self.files)})")
        path = self.files[image_set]
        if path not in self._open:
            self._open[path] = np.load(path)
        if key not in self._open[path]:
            raise KeyError(f"{path} has no array {key!r}: was it written for another set of image sets?")
        return self._open[path][key]

    def __iter__(self):
        return iter(self.keys_available())

    def __len__(self) -> int:
        return len(self.keys_available())

    def keys_available(self) -> list[str]:
        """Every predictions key of the files (opens them all)."""
        keys = [key for key, paths in self.files.items() if not isinstance(paths, str)]
        for path in dict.fromkeys(p for p in self.files.values() if isinstance(p, str)):
            if path not in self._open:
                self._open[path] = np.load(path)
            keys += [k for k in self._open[path].files if not k.startswith("labels/")]
        return keys

    def close(self) -> None:
        for arrays in self._open.values():
            arrays.close()
        self._open.clear()
        self._stores.clear()

    def __enter__(self) -> PredictionReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

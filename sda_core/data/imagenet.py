"""ImageNet and ImageNet-C on disk: class folders named by WordNet id, class-balanced subsets, decoding.

Published layouts (Hendrycks & Dietterich 2019; the ImageNet validation set sorted into folders):
    ImageNet-C:  <root>/<corruption>/<severity>/<wnid>/*.JPEG   (224x224, already centre-cropped)
    ImageNet:    <val_root>/<wnid>/*.JPEG                        (full-size photos)
Labels are the positions of the wnids in sorted order, the torchvision ImageFolder convention that
every ImageNet classifier's output layer follows. A folder with a different number of classes than
the configuration is an error: a missing class folder would silently shift every label after it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sda_core.rng import sample_seed

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".webp", ".bmp")


class UnreadableImageError(RuntimeError):
    """An image file that cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int


def class_folders(directory: str | os.PathLike, num_classes: int) -> list[str]:
    """The wnid folders of `directory`, sorted; their positions are the labels."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder not found: {directory}")
    wnids = _class_names(directory)
    if len(wnids) != num_classes:
        raise ValueError(
            f"{directory} has {len(wnids)} class folders, the configuration expects {num_classes} "
            "(labels are positions in the sorted folder list, so every class must be present)"
        )
    return wnids


def _class_names(directory: Path) -> list[str]:
    # hidden and underscore folders (.ipynb_checkpoints, __MACOSX) are not classes
    return sorted(
        entry.name for entry in os.scandir(directory) if entry.is_dir() and not entry.name.startswith((".", "_"))
    )


def class_map_disagreement(folders: dict[str, str | os.PathLike]) -> str | None:
    """A message naming every folder whose class folders are not the first one's, or None.

    Labels are positions in a folder's sorted wnids, so two sets with different wnids in the same
    number would be labelled by different maps without any other error. Folders absent or without
    class folders are left to the import's own checks.
    """
    listed = {what: _class_names(Path(f)) for what, f in folders.items() if Path(f).is_dir()}
    listed = {what: wnids for what, wnids in listed.items() if wnids}
    if not listed:
        return None
    (first, reference), *others = listed.items()
    lines = []
    for what, wnids in others:
        if wnids != reference:
            only_here, only_there = sorted(set(wnids) - set(reference)), sorted(set(reference) - set(wnids))
            lines.append(
                f"  - {what} ({folders[what]}): {len(wnids)} classes; not in {first}: "
                f"{', '.join(only_here[:5]) or 'none'}{' ...' if len(only_here) > 5 else ''}; missing: "
                f"{', '.join(only_there[:5]) or 'none'}{' ...' if len(only_there) > 5 else ''}"
            )
    if not lines:
        return None
    return (
        f"{len(lines)} image folder(s) have other class folders (wnids) than {first} ({folders[first]}, "
        f"{len(reference)} classes). Labels are positions in the sorted wnids, so every set must have the "
        "same ones:\n" + "\n".join(lines)
    )


def read_subset_file(path: str | os.PathLike) -> list[str]:
    """The entries of an image-subset file: one file name per line ("<wnid>/<name>" or "<name>"), blank
    lines and "#" comments left out (e.g. RobustBench's list of 5,000 ImageNet-C images)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image subset file not found: {path}")
    # utf-8-sig: a byte-order mark (an editor's, invisible) would otherwise stick to the first name
    entries = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    entries = [entry for entry in entries if entry and not entry.startswith("#")]
    if not entries:
        raise ValueError(f"image subset file {path} names no images")
    return entries


def _in_subset(directory: Path, names: dict[str, list[str]], subset: list[str]) -> dict[str, list[str]]:
    """The names of each class that `subset` lists, matched by file stem (a set stored as PNG matches a
    list of JPEG names); an entry that matches no file is an error naming it."""

    def key(entry: str) -> tuple[str | None, str]:
        wnid, _, name = entry.rpartition("/")
        return (wnid.rpartition("/")[2] or None), Path(name).stem

    wanted = [key(entry) for entry in subset]
    pairs = {k for k in wanted if k[0] is not None}
    bare = {stem for wnid, stem in wanted if wnid is None}
    kept = {
        wnid: [n for n in files if (wnid, Path(n).stem) in pairs or Path(n).stem in bare]
        for wnid, files in names.items()
    }
    found = {(wnid, Path(n).stem) for wnid, files in kept.items() for n in files}
    found_stems = {stem for _, stem in found}
    missing = [e for e, k in zip(subset, wanted) if (k not in found if k[0] is not None else k[1] not in found_stems)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) of the subset file are not in {directory}: "
            + ", ".join(str(directory / m) for m in missing[:5])
            + (" ..." if len(missing) > 5 else "")
        )
    return kept


def list_images(
    directory: str | os.PathLike,
    num_classes: int,
    images_per_class: int | None = None,
    seed: int = 0,
    allow_uneven_classes: bool = False,
    subset: list[str] | None = None,
) -> list[LabelledFile]:
    """Every image of `directory`, a class-balanced subset of `images_per_class` per class, or the images
    a subset file lists (`subset`, read_subset_file: each must be there).

    Hidden files (AppleDouble `._*.JPEG` from macOS archives) are not images. Classes with different
    image counts (an extraction that stopped half-way, an empty folder) are an error unless
    `allow_uneven_classes`: the mean accuracy would silently weigh the classes differently. With a
    subset file, the whole folder is checked for this, and the subset keeps the counts it lists.

    The subset of a class is a seeded random choice among its files in sorted order, keyed by the
    wnid only: every ImageNet-C corruption (same file names) gets the same images, and so does a run
    with another shard count. Files are listed class by class, sorted by name within a class.
    """
    if subset is not None and images_per_class is not None:
        raise ValueError("give a subset file or images_per_class, not both")
    directory = Path(directory)
    wnids = class_folders(directory, num_classes)
    names = {wnid: class_image_names(directory / wnid) for wnid in wnids}
    if subset is not None:
        _check_even([len(names[w]) for w in wnids], directory, wnids, allow_uneven_classes)
        names = _in_subset(directory, names, subset)
    files = []
    for label, wnid in enumerate(wnids):
        chosen = names[wnid]
        if images_per_class is not None:
            if len(chosen) < images_per_class:
                raise ValueError(
                    f"{directory / wnid} has {len(chosen)} images, fewer than the "
                    f"{images_per_class} per class asked for"
                )
            rng = np.random.default_rng(sample_seed(seed, f"subset/{wnid}", 0))
            chosen = [chosen[k] for k in sorted(rng.choice(len(chosen), images_per_class, replace=False))]
        files += [LabelledFile(directory / wnid / name, label) for name in chosen]
    if subset is None:
        _check_even(
            np.bincount([f.label for f in files], minlength=num_classes), directory, wnids, allow_uneven_classes
        )
    return files


def class_image_names(folder: Path) -> list[str]:
    """The image files of a class folder, sorted by name; hidden files (AppleDouble `._*.JPEG` from macOS
    archives) are not images. An image is known by <wnid>/<stem> (its adapted copy in another folder may
    have another suffix), so X.JPEG and X.png in one folder, one image twice or a pairing with the wrong
    copy, are refused naming both."""
    names = sorted(
        entry.name
        for entry in os.scandir(folder)
        if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES) and not entry.name.startswith(".")
    )
    seen: dict[str, str] = {}
    for name in names:
        stem = Path(name).stem
        if stem in seen:
            raise ValueError(
                f"{folder} holds two images of one name, {folder / seen[stem]} and {folder / name}: images "
                "are known and paired across folders by <class folder>/<name without suffix>; keep one of them"
            )
        seen[stem] = name
    return names


def paired_images(
    files: list[LabelledFile], target_root: str | os.PathLike, adapted_root: str | os.PathLike, num_classes: int
) -> list[LabelledFile]:
    """The adapted copy of each target file (same <wnid>/<stem>, any image suffix: a release may store
    PNG or JPEG), in the target's order and with its labels. A target image without its adapted copy,
    or an adapted image of no target image, is an error naming it: pairing must never shift."""
    target_root, adapted_root = Path(target_root), Path(adapted_root)
    adapted = {}
    for wnid in class_folders(adapted_root, num_classes):
        for name in class_image_names(adapted_root / wnid):
            adapted[(wnid, Path(name).stem)] = adapted_root / wnid / name
    complete = {
        (folder.name, Path(name).stem)
        for folder in os.scandir(target_root)
        if folder.is_dir() and not folder.name.startswith((".", "_"))
        for name in class_image_names(Path(folder.path))
    }
    keys = [(f.path.parent.name, f.path.stem) for f in files]
    lacking = [target_root / wnid / stem for wnid, stem in keys if (wnid, stem) not in adapted]
    extra = [adapted[key] for key in sorted(adapted) if key not in complete]
    problems = ((f"have no adapted copy in {adapted_root}", lacking), (f"match no image of {target_root}", extra))
    for problem, paths in problems:
        if paths:
            raise FileNotFoundError(
                f"{len(paths)} image(s) {problem}: {', '.join(map(str, paths[:5]))}{' ...' if len(paths) > 5 else ''}"
            )
    return [LabelledFile(adapted[key], f.label) for key, f in zip(keys, files)]


def _check_even(counts, directory: Path, wnids: list[str], allow_uneven_classes: bool) -> None:
    counts = np.asarray(counts)
    if counts.min() != counts.max():  # e.g. an extraction that stopped half-way
        message = (
            f"{directory}: classes have {counts.min()} to {counts.max()} images ({wnids[counts.argmin()]} has "
            f"the fewest, {int((counts < counts.max()).sum())} classes fewer than {counts.max()})"
        )
        if not allow_uneven_classes:
            raise ValueError(f"{message}; complete the folder, or set imagenet.allow_uneven_classes: true")
        log.warning(message)


def folder_manifest(directory: str | os.PathLike) -> str:
    """Every file under the class folders of `directory` as "<wnid>/<name><TAB><bytes>" lines, sorted, hidden
    files and folders left out: what an import reads, so that a completed or changed folder is re-imported
    (the folder's own time stamp does not change when files are added to its class folders)."""
    directory = Path(directory)
    lines = []
    for folder in sorted(os.scandir(directory), key=lambda e: e.name):
        if folder.is_dir() and not folder.name.startswith((".", "_")):
            for entry in os.scandir(folder.path):
                if entry.is_file() and not entry.name.startswith("."):
                    lines.append(f"{folder.name}/{entry.name}\t{entry.stat().st_size}")
    return "".join(f"{line}\n" for line in sorted(lines))


def update_manifest(path: str | os.PathLike, content: str) -> bool:
    """Write `content` to `path` only if it differs (atomically), so that its time stamp marks a change."""
    path = Path(path)
    if path.is_file() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(content)
    os.replace(tmp, path)
    return True


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to uint8 (H, W, 3); any decoding failure names the file."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise UnreadableImageError(f"cannot read image {path}: {error}") from error


def resize_center_crop(
    image: np.ndarray, resize: int, crop: int, resample: Image.Resampling = Image.Resampling.BICUBIC
) -> np.ndarray:
    """Resize the short side to `resize`, then take the centre `crop` x `crop` (torchvision's rules)."""
    height, width = image.shape[:2]
    short, long = sorted((height, width))
    long = int(resize * long / short)  # torchvision truncates the long side
    size = (long, resize) if width > height else (resize, long)  # PIL sizes are (width, height)
    resized = Image.fromarray(image).resize(size, resample)
    top, left = round((size[1] - crop) / 2), round((size[0] - crop) / 2)
    return np.asarray(resized.crop((left, top, left + crop, top + crop)))

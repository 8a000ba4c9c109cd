"""Image-set names, groups and the score stage's lookups (sda_core.image_sets, sda_core.jobs.score)."""

import numpy as np
import pytest

from sda_core.image_sets import RunImageSets, adapted, labels_key, predictions_key
from sda_core.scoring.accuracy import sanity_table
from sda_core.scoring.sanity import SANITY_CHECKS

SETS = RunImageSets(("fog", "snow"), has_clean=True)


def test_every_set_is_in_exactly_one_group_with_what_its_ensembles_combine():
    groups = SETS.groups()
    assert groups["fog"] == ["target/fog", "dda/fog", "diffpure/fog"]
    assert groups["clean"] == ["clean", "dda/clean", "unguided/clean"]
    assert groups["synthetic"] == ["synthetic/generated", "synthetic/mod"]
    grouped = [name for names in groups.values() for name in names]
    assert sorted(grouped) == sorted(SETS.names()) and len(set(grouped)) == len(grouped)


def test_without_clean_images_no_clean_set_is_made():
    names = RunImageSets(("fog",), has_clean=False).names()
    assert not [name for name in names if "clean" in name]
    with pytest.raises(ValueError, match="dda, diffpure, unguided"):
        adapted("ddpm", "fog")


def _prediction_file(tmp_path, names, skip=()):
    arrays = {}
    for name in names:
        arrays[labels_key(name)] = np.array([0, 1])
        for model in ("source", "finetuned"):
            if (model, name) not in skip:
                arrays[predictions_key(model, name)] = np.eye(2, dtype=np.float16)
    path = tmp_path / "all.npz"
    np.savez(path, **arrays)
    return {name: str(path) for name in names}


def test_sanity_table_has_every_check_of_a_run(tmp_path):
    files = _prediction_file(tmp_path, SETS.names())
    table = sanity_table({"r": files}, has_clean=True)
    assert list(table.check) == [check for check, _, _ in SANITY_CHECKS] and (table.top1 == 100).all()
    assert len(sanity_table({"r": files}, has_clean=False)) == 2  # the synthetic checks only


def test_a_missing_sanity_set_raises_instead_of_dropping_its_row(tmp_path):
    files = _prediction_file(tmp_path, SETS.names(), skip={("finetuned", "unguided/clean")})
    with pytest.raises(KeyError, match="finetuned/unguided/clean"):
        sanity_table({"r": files}, has_clean=True)
    del files["synthetic/mod"]
    with pytest.raises(KeyError, match="synthetic/mod"):
        sanity_table({"r": files}, has_clean=False)

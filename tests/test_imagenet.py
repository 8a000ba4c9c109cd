"""ImageNet(-C) folders into image stores, subsets, unreadable files, classifier weights."""

import shutil

import numpy as np
import pytest
import torch
from fake_imagenet import make_imagenet_c, make_imagenet_val, wnid
from PIL import Image

from sda_core.data.imagenet import UnreadableImageError, list_images, resize_center_crop
from sda_core.jobs.import_images import import_images_job
from sda_core.store import open_store

CORRUPTIONS = ["gaussian_noise", "fog"]


@pytest.fixture(scope="module")
def val_root(tmp_path_factory):
    return make_imagenet_val(tmp_path_factory.mktemp("imagenet") / "val", num_classes=3, per_class=4)


@pytest.fixture(scope="module")
def imagenet_c_root(tmp_path_factory, val_root):
    return make_imagenet_c(tmp_path_factory.mktemp("imagenet") / "imagenet-c", val_root, CORRUPTIONS, severity=5)


def test_labels_are_positions_of_sorted_wnids(val_root):
    files = list_images(val_root, num_classes=3)
    assert [f.label for f in files] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(f.path.parent.name == wnid(f.label) for f in files)


def test_a_missing_class_folder_is_an_error_not_a_label_shift(val_root, tmp_path):
    with pytest.raises(ValueError, match="3 class folders, the configuration expects 4"):
        list_images(val_root, num_classes=4)
    extracted_on_a_mac = shutil.copytree(val_root, tmp_path / "val")
    (extracted_on_a_mac / "__MACOSX").mkdir()
    assert list_images(extracted_on_a_mac, num_classes=3)[-1].label == 2


def test_hidden_files_are_not_images(val_root, tmp_path):
    extracted_on_a_mac = shutil.copytree(val_root, tmp_path / "val")
    (extracted_on_a_mac / wnid(1) / "._ILSVRC2012_val_00000001.JPEG").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    listed = [f.path.relative_to(extracted_on_a_mac) for f in list_images(extracted_on_a_mac, num_classes=3)]
    assert listed == [f.path.relative_to(val_root) for f in list_images(val_root, num_classes=3)]


def test_a_class_with_fewer_images_is_an_error_unless_allowed(val_root, tmp_path):
    half_extracted = shutil.copytree(val_root, tmp_path / "val")
    for image in sorted((half_extracted / wnid(2)).iterdir()):
        image.unlink()
    with pytest.raises(ValueError, match=rf"0 to 4 images \({wnid(2)} has the fewest.*allow_uneven_classes"):
        list_images(half_extracted, num_classes=3)
    assert len(list_images(half_extracted, num_classes=3, allow_uneven_classes=True)) == 8


def test_subsets_are_class_balanced_deterministic_and_the_same_for_every_corruption(imagenet_c_root):
    fog = list_images(imagenet_c_root / "fog" / "5", 3, images_per_class=2, seed=0)
    noise = list_images(imagenet_c_root / "gaussian_noise" / "5", 3, images_per_class=2, seed=0)
    assert [f.label for f in fog] == [0, 0, 1, 1, 2, 2]
    assert [f.path.name for f in fog] == [f.path.name for f in noise]
    assert fog == list_images(imagenet_c_root / "fog" / "5", 3, images_per_class=2, seed=0)
    other_seeds = {
        tuple(f.path.name for f in list_images(imagenet_c_root / "fog" / "5", 3, 2, seed=s)) for s in range(6)
    }
    assert len(other_seeds) > 1  # the choice is random, not the first files
    with pytest.raises(ValueError, match="fewer than the 5 per class"):
        list_images(imagenet_c_root / "fog" / "5", 3, images_per_class=5)


def test_resize_center_crop_matches_torchvision(val_root):
    from torchvision import transforms

    image = Image.open(next(val_root.glob("*/*.JPEG"))).convert("RGB")
    ours = resize_center_crop(np.asarray(image), 256, 224)
    theirs = transforms.Compose(
        [transforms.Resize(256, transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(224)]
    )(image)
    assert ours.shape == (224, 224, 3)
    np.testing.assert_array_equal(ours, np.asarray(theirs))


def test_imagenet_c_is_imported_at_the_model_size_with_labels(imagenet_c_root, tmp_path):
    output = tmp_path / "fog.zarr"
    import_images_job(
        str(output), str(imagenet_c_root / "fog" / "5"), num_classes=3, size=64, images_per_class=2, chunk_size=4
    )
    store = open_store(output)
    images, labels = store.read()
    assert images.shape == (6, 64, 64, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    files = list_images(imagenet_c_root / "fog" / "5", 3, images_per_class=2)
    first = np.asarray(Image.open(files[0].path).convert("RGB").resize((64, 64), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(images[0], first)


def test_building_from_val_corrupts_reproducibly_like_the_published_preparation(val_root, tmp_path):
    def build(name, corruption, workers=1):
        import_images_job(
            str(tmp_path / name),
            str(val_root),
            num_classes=3,
            size=64,
            images_per_class=2,
            from_imagenet_val=True,
            corruption=corruption,
            seed=3,
            workers=workers,
        )
        return open_store(tmp_path / name).read()[0]

    clean, noisy = build("clean.zarr", None), build("a.zarr", "gaussian_noise")
    again = build("b.zarr", "gaussian_noise", workers=2)  # seeded per image: worker processes change nothing
    np.testing.assert_array_equal(noisy, again)
    assert np.abs(noisy.astype(int) - clean.astype(int)).mean() > 10


def test_an_unreadable_image_is_named_or_skipped_when_asked(val_root, tmp_path):
    broken_root = shutil.copytree(val_root, tmp_path / "val")
    broken = sorted((broken_root / wnid(1)).iterdir())[-1]
    broken.write_bytes(broken.read_bytes()[:300])  # a cut-off JPEG

    with pytest.raises(UnreadableImageError, match=broken.name):
        import_images_job(str(tmp_path / "strict.zarr"), str(broken_root), 3, 32, chunk_size=2)
    assert (tmp_path / "strict.zarr.partial").exists()  # the chunks before the bad file are kept

    import_images_job(str(tmp_path / "skip.zarr"), str(broken_root), 3, 32, skip_unreadable=True)
    store = open_store(tmp_path / "skip.zarr")
    assert len(store) == 11 and store.attrs["fingerprint"]["skipped_files"] == [str(broken)]


def test_classifier_weights_from_the_hub_cache_or_an_original_release_file(tmp_path):
    from safetensors.torch import save_file

    from sda_core.checkpoints import CheckpointError
    from sda_core.external_inputs import cached_pretrained_weights
    from sda_core.models.classifiers import create_classifier, load_classifier

    torch.manual_seed(0)
    model = create_classifier("resnet10t.c3_in1k", 1000)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    snapshot = tmp_path / "hub" / "models--timm--resnet10t.c3_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--timm--resnet10t.c3_in1k" / "refs").mkdir()
    (tmp_path / "hub" / "models--timm--resnet10t.c3_in1k" / "refs" / "main").write_text("abc123")
    save_file(state, str(snapshot / "model.safetensors"))

    assert cached_pretrained_weights("resnet10t.c3_in1k", cache_dir=tmp_path / "nowhere") is None
    cached = cached_pretrained_weights("resnet10t.c3_in1k", cache_dir=tmp_path / "hub")
    assert cached == snapshot / "model.safetensors"
    x = torch.randn(2, 3, 32, 32)
    loaded = load_classifier("resnet10t.c3_in1k", 1000, None, cached).eval()
    torch.testing.assert_close(loaded(x), model.eval()(x))

    torch.save({"model": state, "epoch": 300}, tmp_path / "release.pth")  # the Swin/ConvNeXt release layout
    torch.testing.assert_close(load_classifier("resnet10t", 1000, None, tmp_path / "release.pth").eval()(x), model(x))
    with pytest.raises(CheckpointError, match=r"release.pth .*missing \(\d+\): fc.weight"):
        torch.save({"model": {k: v for k, v in state.items() if not k.startswith("fc.")}}, tmp_path / "release.pth")
        load_classifier("resnet10t", 1000, None, tmp_path / "release.pth")


def test_a_subset_file_picks_its_images_in_every_corruption_and_names_a_missing_one(imagenet_c_root, tmp_path):
    from sda_core.data.imagenet import read_subset_file

    fog = imagenet_c_root / "fog" / "5"
    every = list_images(fog, num_classes=3)
    chosen = [every[1], every[6], every[11]]
    subset_file = tmp_path / "subset.txt"
    # RobustBench's form (<wnid>/<name>) and a bare name, a comment and a blank line
    lines = [f"{chosen[0].path.parent.name}/{chosen[0].path.name}", chosen[1].path.name, "# comment", ""]
    subset_file.write_text("\n".join(lines + [f"{chosen[2].path.parent.name}/{chosen[2].path.name}"]) + "\n")
    subset = read_subset_file(subset_file)
    assert len(subset) == 3
    for corruption in CORRUPTIONS:
        picked = list_images(imagenet_c_root / corruption / "5", num_classes=3, subset=subset)
        assert [(f.path.parent.name, f.path.name, f.label) for f in picked] == [
            (f.path.parent.name, f.path.name, f.label) for f in chosen
        ]
    missing = subset + [f"{wnid(0)}/not_there.JPEG"]
    with pytest.raises(FileNotFoundError, match=f"1 image.*{wnid(0)}/not_there.JPEG"):
        list_images(fog, num_classes=3, subset=missing)
    with pytest.raises(ValueError, match="not both"):
        list_images(fog, num_classes=3, images_per_class=2, subset=subset)
    subset_file.write_text("# nothing\n")
    with pytest.raises(ValueError, match="names no images"):
        read_subset_file(subset_file)
    out = tmp_path / "fog.zarr"
    # a byte-order mark (Windows editors write one) is read as such, not as part of the first name
    subset_file.write_text("\ufeff" + "\n".join(subset) + "\n", encoding="utf-8")
    assert read_subset_file(subset_file) == subset
    import_images_job(str(out), str(fog), num_classes=3, size=16, subset_file=str(subset_file))
    assert open_store(out).labels[:].tolist() == [0, 1, 2]


def test_pre_adapted_images_pair_with_their_targets_by_name_and_a_missing_one_is_named(imagenet_c_root, tmp_path):
    from sda_core.data.imagenet import paired_images

    fog = imagenet_c_root / "fog" / "5"
    adapted = tmp_path / "adapted"
    for path in sorted(fog.rglob("*.JPEG")):  # a release storing PNG under the same stems
        (adapted / path.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
            adapted / path.parent.name / f"{path.stem}.png"
        )
    files = list_images(fog, num_classes=3, images_per_class=2, seed=1)
    paired = paired_images(files, fog, adapted, num_classes=3)
    assert [(p.path.parent.name, p.path.stem, p.label) for p in paired] == [
        (f.path.parent.name, f.path.stem, f.label) for f in files
    ]
    out = tmp_path / "dda-fog.zarr"
    import_images_job(
        str(out), str(fog), num_classes=3, size=16, images_per_class=2, seed=1, adapted_directory=str(adapted)
    )
    target = tmp_path / "fog.zarr"
    import_images_job(str(target), str(fog), num_classes=3, size=16, images_per_class=2, seed=1)
    imported, plain = open_store(out), open_store(target)
    assert imported.labels[:].tolist() == plain.labels[:].tolist()
    flipped = imported.images[:][:, :, ::-1].astype(float)
    assert np.abs(flipped - plain.images[:].astype(float)).mean() < 3  # the flipped copies, resampled alike
    (adapted / files[0].path.parent.name / f"{files[0].path.stem}.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"1 image.*have no adapted copy.*{files[0].path.stem}"):
        paired_images(files, fog, adapted, num_classes=3)
    Image.new("RGB", (8, 8)).save(adapted / wnid(0) / "stray.png")
    with pytest.raises(FileNotFoundError, match="match no image of.*stray.png"):
        paired_images(files[1:], fog, adapted, num_classes=3)


def test_an_adapted_folder_with_two_images_of_one_name_is_refused_naming_both(imagenet_c_root, tmp_path):
    """X.JPEG and X.png in a pre-adapted folder: not whichever the directory lists last as X's copy."""
    from sda_core.data.imagenet import paired_images

    fog = imagenet_c_root / "fog" / "5"
    adapted = shutil.copytree(fog, tmp_path / "adapted")
    first = sorted((adapted / wnid(1)).glob("*.JPEG"))[0]
    Image.new("RGB", (8, 8)).save(first.with_suffix(".png"))  # a black image under the same name
    files = list_images(fog, num_classes=3)
    with pytest.raises(ValueError, match=f"{first.stem}.JPEG and .*{first.stem}.png"):
        paired_images(files, fog, adapted, num_classes=3)


@pytest.mark.parametrize("classes", ["one", "every"])
def test_a_target_folder_with_two_images_of_one_name_is_refused_naming_them(imagenet_c_root, tmp_path, classes):
    """X.JPEG and X.png in a target class folder: both imported (both pairing with the one adapted X), or
    refused as uneven classes, before; now refused for what it is."""
    fog = shutil.copytree(imagenet_c_root / "fog" / "5", tmp_path / "fog")
    doubled = [sorted((fog / wnid(k)).glob("*.JPEG"))[0] for k in ([1] if classes == "one" else range(3))]
    for path in doubled:
        Image.new("RGB", (8, 8)).save(path.with_suffix(".png"))
    stem = doubled[0].stem  # the first class folder with two is named
    with pytest.raises(ValueError, match=f"two images of one name.*{stem}.JPEG and .*{stem}.png"):
        list_images(fog, num_classes=3)

"""The digit-scenes world (sda_core.data.digit_scenes): seeded per scene, label maps that match the pixels."""

import numpy as np
import pytest
import torch
from shard_helpers import whole_and_in_two_shards

from sda_core.data.digit_scenes import (
    BACKGROUND,
    MAX_DIGITS,
    NUM_CLASSES,
    digit_pools,
    make_scenes,
    scale_range,
)


@pytest.fixture(scope="module")
def pools():
    return digit_pools(test_fraction=0.3, seed=0)


def test_a_scene_depends_only_on_its_seed_split_and_index(pools):
    source, _ = pools
    images, maps = make_scenes(source, 24, "source", 0, 0, 12)
    tail_images, tail_maps = make_scenes(source, 24, "source", 0, 5, 12)
    np.testing.assert_array_equal(images[5:], tail_images)
    np.testing.assert_array_equal(maps[5:], tail_maps)
    other_split = make_scenes(source, 24, "generated", 0, 0, 12)[0]
    other_seed = make_scenes(source, 24, "source", 1, 0, 12)[0]
    assert not np.array_equal(images, other_split) and not np.array_equal(images, other_seed)
    assert images.shape == (12, 24, 24, 3) and maps.shape == (12, 24, 24)
    assert images.dtype == maps.dtype == np.uint8


@pytest.mark.parametrize("size", [16, 24, 32])
def test_label_maps_hold_one_to_three_digits_over_background_and_match_the_pixels(pools, size):
    source, _ = pools
    images, maps = make_scenes(source, size, "source", 3, 0, 64)
    assert maps.max() < NUM_CLASSES
    brightness = images.astype(np.float32).mean(-1)
    counts = []
    for image, label_map in zip(brightness, maps):
        digits = set(np.unique(label_map)) - {BACKGROUND}
        assert 1 <= len(digits) <= MAX_DIGITS  # two equal digits in one scene count once here
        counts.append(len(digits))
        # digits are blended in at alpha >= 0.25 in colours >= 0.6 over a background <= 0.35 + grain
        assert image[label_map != BACKGROUND].min() > image[label_map == BACKGROUND].mean()
    assert len(set(counts)) > 1  # not always the same number of digits
    smallest, largest = scale_range(size)
    assert smallest <= largest <= size // 2


def test_source_and_target_scenes_draw_on_disjoint_digit_images(pools):
    source, target = pools
    assert len(source) + len(target) == 1797
    assert set(np.unique(source.digits)) == set(np.unique(target.digits)) == set(range(10))
    flat_source = {image.tobytes() for image in source.images}
    shared = sum(image.tobytes() in flat_source for image in target.images)
    assert shared == 0  # no digit image of a target scene appears in a source scene


def test_scenes_go_through_generation_and_adaptation_with_their_label_maps(tmp_path, tiny_adm_spec):
    """The stages of the segmentation task on tiny models: scenes with maps, a mask-conditioned generator
    trained on them, images drawn for new maps (the same whatever the shard count), MoD keeping the maps."""
    from sda_core.checkpoints import save_weights
    from sda_core.data.digit_scenes import GeneratedMaps
    from sda_core.jobs.adapt import adapt_job
    from sda_core.jobs.prepare_digit_scenes import prepare_digit_scenes_job
    from sda_core.jobs.sample import sample_job
    from sda_core.jobs.train_denoiser import train_denoiser_job
    from sda_core.models.denoisers import build_denoiser
    from sda_core.processes import ReverseProcess
    from sda_core.store import StoreSequence

    train, test = str(tmp_path / "train.zarr"), str(tmp_path / "test.zarr")
    prepare_digit_scenes_job(train, "train", 8, 0.3, count=12, seed=0)
    prepare_digit_scenes_job(test, "test", 8, 0.3, count=5, seed=0)
    source = StoreSequence([train])
    assert len(source) == 12 and len(StoreSequence([test])) == 5 and source.label_shape == (8, 8)
    pools = digit_pools(0.3, 0)
    np.testing.assert_array_equal(source.labels(), make_scenes(pools[0], 8, "train", 0, 0, 12)[1])

    spec = {**tiny_adm_spec, "mask_classes": NUM_CLASSES}
    settings = {"steps": 2, "batch_size": 4}
    generator = str(tmp_path / "generator.safetensors")
    with pytest.raises(ValueError, match="needs a generator with mask_classes"):
        train_denoiser_job(train, generator, tiny_adm_spec, settings, True, 0, torch.device("cpu"), "segmentation")
    with pytest.raises(ValueError, match="task classification expects"):
        train_denoiser_job(train, generator, spec, settings, True, 0, torch.device("cpu"))
    train_denoiser_job(train, generator, spec, settings, True, 0, torch.device("cpu"), "segmentation")

    maps = GeneratedMaps(resolution=8, test_fraction=0.3, seed=0, count=5)

    def sample(output, shard, shards):
        sample_job(
            str(output),
            spec,
            generator,
            NUM_CLASSES,
            0,
            3,
            2,
            shard,
            shards,
            0,
            torch.device("cpu"),
            task="segmentation",
            label_maps=maps,
        )

    with pytest.raises(ValueError, match="needs a generator with mask_classes"):
        sample_job(
            str(tmp_path / "x.zarr"),
            tiny_adm_spec,
            generator,
            NUM_CLASSES,
            0,
            3,
            2,
            0,
            1,
            0,
            torch.device("cpu"),
            task="segmentation",
            label_maps=maps,
        )
    one, two = whole_and_in_two_shards(sample, tmp_path, 5)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], maps.maps(0, 5))
    assert not np.array_equal(maps.maps(0, 5), source.labels()[:5])  # new maps, not the source scenes'

    torch.manual_seed(0)
    unconditional = str(tmp_path / "unconditional.safetensors")
    save_weights(build_denoiser(tiny_adm_spec), unconditional)
    process = ReverseProcess(respacing=10, steps=2, noise_index="reference", guidance=None)
    mod = tmp_path / "mod.zarr"
    adapt_job(
        [str(tmp_path / "one.zarr")],
        str(mod),
        tiny_adm_spec,
        unconditional,
        process,
        2,
        0,
        1,
        "mod",
        0,
        torch.device("cpu"),
    )
    np.testing.assert_array_equal(StoreSequence([mod]).labels(), maps.maps(0, 5))
    with pytest.raises(ValueError, match="misaligned"):
        big = {**tiny_adm_spec, "image_size": 16}
        adapt_job([train], str(tmp_path / "x.zarr"), big, unconditional, process, 2, 0, 1, "x", 0, torch.device("cpu"))


def test_a_segmenter_is_trained_fine_tuned_and_predicts_per_pixel_through_the_classifier_jobs(tmp_path):
    from sda_core.image_sets import labels_key, predictions_key
    from sda_core.jobs.predict import predict_job
    from sda_core.jobs.prepare_digit_scenes import prepare_digit_scenes_job
    from sda_core.jobs.train_model import train_model_job

    train, test = str(tmp_path / "train.zarr"), str(tmp_path / "test.zarr")
    prepare_digit_scenes_job(train, "train", 8, 0.3, count=16, seed=0)
    prepare_digit_scenes_job(test, "test", 8, 0.3, count=6, seed=0)
    model = {"timm_name": "convnext_atto", "timm_kwargs": {"patch_size": 1, "depths": [1, 1, 1, 1], "dims": [8] * 4}}
    segmenter = {"feature_index": 0, "atrous_rates": [1, 2], "aspp_channels": 8}
    settings = {"optimizer": "adamw", "lr": 1e-3, "batch_size": 8, "epochs": 1, "schedule": "constant"}
    source, tuned = str(tmp_path / "source.safetensors"), str(tmp_path / "tuned.safetensors")
    common = dict(num_classes=NUM_CLASSES, settings=settings, preprocess={"resize": 8, "crop": 8}, seed=0)
    common.update(device=torch.device("cpu"), segmenter=segmenter, task="segmentation")
    train_model_job([train], source, model["timm_name"], model["timm_kwargs"], **common)
    train_model_job([train], tuned, model["timm_name"], model["timm_kwargs"], init_weights=source, **common)
    with pytest.raises(ValueError, match="task segmentation has no class per image"):
        train_model_job([train], tuned, model["timm_name"], model["timm_kwargs"], images_per_class=1, **common)
    output = tmp_path / "predictions.npz"
    predict_job(
        {"target/clean": [test]},
        str(output),
        model["timm_name"],
        model["timm_kwargs"],
        NUM_CLASSES,
        {"source": source, "finetuned": tuned},
        {"target/clean": ["source", "finetuned"]},
        {"resize": 8, "crop": 8},
        torch.device("cpu"),
        batch_size=4,
        segmenter=segmenter,
        task="segmentation",
    )
    stored = np.load(output)
    probabilities = stored[predictions_key("source", "target/clean")]
    assert probabilities.shape == (6, NUM_CLASSES, 8, 8) and probabilities.dtype == np.float16
    np.testing.assert_allclose(probabilities.astype(np.float32).sum(1), 1.0, atol=1e-2)
    np.testing.assert_array_equal(
        stored[labels_key("target/clean")], make_scenes(digit_pools(0.3, 0)[1], 8, "test", 0, 0, 6)[1]
    )
    assert not np.array_equal(probabilities, stored[predictions_key("finetuned", "target/clean")])

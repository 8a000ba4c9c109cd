"""Classifier construction, preprocessing against timm's own transform, and the training schedules."""

import dataclasses

import numpy as np
import pytest
import torch

from sda_core.loading import ArrayRows
from sda_core.model_training import TrainSettings, learning_rate, train_model
from sda_core.models.classifiers import Preprocess, create_classifier
from sda_core.pixels import to_unit
from sda_core.tasks import TASKS

CLASSIFICATION, SEGMENTATION = TASKS["classification"], TASKS["segmentation"]
MAPS = SEGMENTATION.label_layout(8)


def test_preprocess_matches_timm_eval_transform():
    """Resize 256 (bicubic) + centre crop 224 + ImageNet normalisation, as timm builds it with PIL."""
    from PIL import Image
    from skimage import data
    from timm.data import create_transform

    image = data.astronaut()[:400, :, :]  # non-square, so the short-side rule matters
    theirs = create_transform(224, crop_pct=224 / 256, interpolation="bicubic")(Image.fromarray(image))
    ours = Preprocess(resize=256, crop=224)(to_unit(image[None]))[0]
    assert ours.shape == theirs.shape == (3, 224, 224)
    # PIL and torch bicubic kernels differ slightly; a wrong crop, size or normalisation is far off
    assert (ours - theirs).abs().mean() < 0.02


def test_unknown_architecture_names_close_matches():
    with pytest.raises(ValueError, match="resnet50"):
        create_classifier("resnet_50", 10)


def test_step_and_warmup_cosine_schedules():
    steps = TrainSettings(lr=1.0, schedule="multistep", milestones=(2, 4), gamma=0.1)
    assert [learning_rate(steps, e) for e in (0, 1.9, 2, 4.5)] == pytest.approx([1, 1, 0.1, 0.01])
    cosine = TrainSettings(lr=1.0, schedule="warmup_cosine", epochs=10, warmup_epochs=2, warmup_lr=0.0, min_lr=0.1)
    assert learning_rate(cosine, 0) == pytest.approx(0.0)
    assert learning_rate(cosine, 1) == pytest.approx(0.5)
    assert learning_rate(cosine, 2) == pytest.approx(1.0)
    assert learning_rate(cosine, 6) == pytest.approx(0.55)
    assert learning_rate(cosine, 10) == pytest.approx(0.1)


def test_training_learns_a_separable_toy_problem():
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    images = np.zeros((64, 8, 8, 3), np.uint8)
    images[labels == 1, :, :4] = 200  # class 1: left half bright
    images += rng.integers(0, 40, images.shape, dtype=np.uint8)
    model = create_classifier("resnet10t", 2)
    settings = TrainSettings(
        optimizer="adamw",
        lr=3e-3,
        weight_decay=0.0,
        epochs=6,
        batch_size=16,
        schedule="constant",
        no_decay_on_norm_bias=True,
    )
    preprocess = Preprocess(resize=8, crop=8)
    train_model(model, ArrayRows(images, labels), settings, preprocess, torch.device("cpu"))
    with torch.no_grad():
        accuracy = (model(preprocess(to_unit(images))).argmax(1).numpy() == labels).mean()
    assert accuracy > 0.9


def test_class_255_is_a_class_and_a_label_map_pixel_of_255_is_no_label():
    """ImageNet has a class 255; PASCAL VOC's label maps mark unlabelled pixels 255."""
    logits = torch.randn(3, 300)
    classes = torch.tensor([255, 3, 7])
    torch.testing.assert_close(CLASSIFICATION.loss(logits, classes), torch.nn.functional.cross_entropy(logits, classes))
    map_logits = torch.randn(2, 11, 4, 4)
    maps = torch.randint(0, 11, (2, 4, 4))
    maps[0, :2] = 255
    keep = maps != 255
    expected = torch.nn.functional.cross_entropy(map_logits.permute(0, 2, 3, 1)[keep], maps[keep])
    torch.testing.assert_close(SEGMENTATION.loss(map_logits, maps), expected)


def test_a_segmenter_learns_a_toy_label_map_problem_through_the_same_training():
    """Per-pixel labels: the bright half of each image is class 1 (or 2), the rest background."""
    from sda_core.models.segmenters import SegmenterSpec, create_segmenter
    from sda_core.segmentation import confusions, mean_iou

    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, (48, 8, 8, 3), dtype=np.uint8)
    maps = np.zeros((48, 8, 8), np.uint8)
    for k in range(48):
        side = slice(0, 4) if k % 2 else slice(4, 8)
        images[k, :, side] += 180
        maps[k, :, side] = 1 + k % 3 // 2  # class 1 or 2, told apart by the green channel
        images[k, :, side, 1] = 250 if maps[k, 0, side.start] == 2 else 100
    maps[0, 0, 0] = 255  # an unlabelled pixel trains nothing
    torch.manual_seed(0)
    spec = SegmenterSpec(
        "convnext_atto", 3, {"patch_size": 1, "depths": [1, 1, 1, 1], "dims": [16, 16, 16, 16]}, 0, (1, 2), 16
    )
    model = create_segmenter(spec)
    settings = TrainSettings(optimizer="adamw", lr=1e-2, weight_decay=0.0, epochs=8, batch_size=16, schedule="constant")
    preprocess = Preprocess(resize=8, crop=8)
    rows = ArrayRows(images, maps, MAPS)
    train_model(model, rows, settings, preprocess, torch.device("cpu"), task=SEGMENTATION)
    with torch.no_grad():
        predicted = model(preprocess(to_unit(images))).argmax(1).numpy()
    assert mean_iou(confusions(predicted, maps, 3)) > 90


def test_label_maps_refuse_a_resizing_preprocess_a_batch_of_one_and_score_an_unlabelled_slice_zero():
    """Maps are used as stored, so their images are not resized or cropped; an ASPP's pooled batch norm
    needs two images; a slice with no labelled pixel adds nothing instead of NaN."""
    from sda_core.models.segmenters import SegmenterSpec, create_segmenter

    images = np.zeros((17, 8, 8, 3), np.uint8)
    maps = np.zeros((17, 8, 8), np.uint8)
    spec = SegmenterSpec("convnext_atto", 3, {"patch_size": 1, "depths": [1, 1, 1, 1], "dims": [8] * 4}, 0, (1,), 8)
    settings = TrainSettings(optimizer="adamw", lr=1e-3, epochs=1, batch_size=8, schedule="constant")
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="resize and crop equal to their side"):
        rows = ArrayRows(images[:16], maps[:16], MAPS)
        train_model(create_segmenter(spec), rows, settings, Preprocess(10, 8), cpu, task=SEGMENTATION)
    with pytest.raises(ValueError, match="batch .* of one image"):
        rows = ArrayRows(images, maps, MAPS)
        train_model(create_segmenter(spec), rows, settings, Preprocess(8, 8), cpu, task=SEGMENTATION)
    unlabelled = torch.full((2, 8, 8), 255)
    assert SEGMENTATION.loss(torch.randn(2, 3, 8, 8), unlabelled).item() == 0.0


def test_micro_batches_give_the_same_update_without_batch_norm():
    """Gradient accumulation (one GPU standing in for the reference's eight) changes nothing for LayerNorm models."""
    import copy

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(24) % 3
    torch.manual_seed(0)
    model = create_classifier("convnext_atto", 3, {"depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8], "patch_size": 1})
    settings = TrainSettings(
        optimizer="adamw",
        lr=1e-2,
        weight_decay=0.05,
        epochs=2,
        batch_size=12,
        schedule="constant",
        label_smoothing=0.1,
        grad_clip=5.0,
    )
    whole, sliced = copy.deepcopy(model), copy.deepcopy(model)
    preprocess = Preprocess(resize=8, crop=8)
    train_model(whole, ArrayRows(images, labels), settings, preprocess, torch.device("cpu"))
    train_model(
        sliced,
        ArrayRows(images, labels),
        dataclasses.replace(settings, micro_batch_size=5),
        preprocess,
        torch.device("cpu"),
    )
    moved = max((p - q).abs().max().item() for p, q in zip(whole.parameters(), model.parameters()))
    differ = max((p - q).abs().max().item() for p, q in zip(whole.parameters(), sliced.parameters()))
    assert moved > 1e-3 and differ < 1e-3 * moved


def test_imagenet_augmentation_survives_randaugment_at_its_top_magnitude():
    """Posterize at magnitude 10 keeps 0 bits, which Pillow 13 refuses: 400 seeded images draw it (this
    failed with "bits must be between or equal to 1 and 8" before the fix), and it gives black."""
    from PIL import Image

    from sda_core.loading import seeded
    from sda_core.model_training import make_augment, posterize_keeping_any_bits

    augment = make_augment("imagenet", Preprocess(resize=20, crop=16))
    image = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    for k in range(400):
        with seeded(k):
            augment(image)
    black = posterize_keeping_any_bits(Image.fromarray(image), 0)
    assert np.asarray(black).max() == 0
    assert np.array_equal(np.asarray(posterize_keeping_any_bits(Image.fromarray(image), 8)), image)


def test_imagenet_training_transform_gives_normalised_crops():
    """Seeded per image as the loader does (unseeded, the draws followed whatever the tests before had
    left in the global generators, and a dark draw failed this in CI)."""
    from sda_core.loading import seeded
    from sda_core.model_training import make_augment

    images = np.random.default_rng(0).integers(0, 256, (8, 40, 48, 3), dtype=np.uint8)
    augment = make_augment("imagenet", Preprocess(resize=36, crop=32))
    augmented = []
    for k, image in enumerate(images):
        with seeded(k):
            augmented.append(augment(image))
    batch = torch.stack(augmented)
    assert batch.shape == (8, 3, 32, 32) and batch.dtype == torch.float32
    assert batch.min() < -1 and batch.max() > 1  # normalised by ImageNet mean/std, not in [0, 1]
    assert make_augment("none", Preprocess(36, 32)) is None
    with pytest.raises(ValueError, match="none, imagenet"):
        make_augment("autoaugment", Preprocess(36, 32))

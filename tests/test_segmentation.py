"""Segmentation scores (sda_core.segmentation) against scikit-learn, and the DeepLabV3 segmenter."""

import numpy as np
import pytest
import torch
from sklearn.metrics import jaccard_score

from sda_core.segmentation import (
    bootstrap_resamples,
    class_iou,
    confusions,
    mean_iou,
    mean_miou,
    miou_interval,
    paired_difference_interval,
)
from sda_core.store import IGNORE_INDEX


def _maps(seed, n=12, size=6, classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, (n, size, size))
    predicted = np.where(rng.random((n, size, size)) < 0.7, labels, rng.integers(0, classes, (n, size, size)))
    return predicted, labels


def test_mean_iou_is_scikit_learns_macro_jaccard_over_the_pixels_of_the_set():
    predicted, labels = _maps(0)
    labels[0, :2] = IGNORE_INDEX
    per_image = confusions(predicted, labels, 5)
    valid = labels != IGNORE_INDEX
    expected = 100 * jaccard_score(labels[valid], predicted[valid], average="macro")
    assert mean_iou(per_image) == pytest.approx(expected)
    assert per_image.sum() == valid.sum()  # ignored pixels count nowhere


def test_a_class_in_neither_labels_nor_predictions_has_no_iou_and_a_missed_one_has_zero():
    labels = np.array([[[0, 0], [1, 1]]])
    predicted = np.array([[[0, 0], [0, 0]]])
    iou = class_iou(confusions(predicted, labels, 3).sum(0))
    assert iou[0] == pytest.approx(0.5) and iou[1] == 0 and np.isnan(iou[2])
    assert mean_iou(confusions(predicted, labels, 3)) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="outside 0..2"):
        confusions(predicted, labels + 2, 3)


def test_bootstrap_intervals_hold_the_point_and_pair_the_images():
    predicted, labels = _maps(1, n=40)
    worse = np.where(np.random.default_rng(2).random(labels.shape) < 0.2, 0, predicted)
    good, bad = confusions(predicted, labels, 5), confusions(worse, labels, 5)
    draws = bootstrap_resamples(40, seed=0, resamples=200)
    point, low, high = miou_interval([good], draws)
    assert point == mean_iou(good) and low < point < high
    point, low, high = paired_difference_interval([good], [bad], draws)
    assert point == pytest.approx(mean_iou(good) - mean_iou(bad)) and 0 < low < point < high
    assert paired_difference_interval([good], [good], draws) == (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(draws, bootstrap_resamples(40, seed=0, resamples=200))
    with pytest.raises(ValueError, match="resampled by draws of 40"):
        miou_interval([good[:30]], draws)


def test_the_mean_over_sets_is_the_mean_of_their_mious_and_is_resampled_by_scene():
    """The corruptions corrupt the same scenes: one draw of scenes resamples every set."""
    sets = [confusions(*_maps(seed, n=30), 5) for seed in (3, 4, 5)]
    assert mean_miou(sets) == pytest.approx(np.mean([mean_iou(c) for c in sets]))
    draws = bootstrap_resamples(30, seed=1, resamples=100)
    point, low, high = miou_interval(sets, draws)
    assert point == pytest.approx(mean_miou(sets)) and low < point < high
    assert mean_miou(sets, draws[0]) == pytest.approx(np.mean([mean_iou(c[draws[0]]) for c in sets]))


def test_deeplabv3_on_a_timm_backbone_gives_logits_at_the_input_size_and_round_trips(tmp_path):
    from sda_core.checkpoints import save_weights
    from sda_core.models.segmenters import SegmenterSpec, create_segmenter, load_segmenter

    spec = SegmenterSpec(
        "convnext_atto",
        11,
        {"patch_size": 1, "depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32]},
        feature_index=1,
        atrous_rates=(1, 2),
        aspp_channels=8,
    )
    torch.manual_seed(0)
    model = create_segmenter(spec).eval()
    assert model.deeplab.backbone.reduction == 2 and model.deeplab.backbone.channels == 16
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 11, 24, 24) and torch.isfinite(logits).all()
    save_weights(model, tmp_path / "segmenter.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(load_segmenter(spec, tmp_path / "segmenter.safetensors").eval()(x), logits)
    deepest = create_segmenter(SegmenterSpec("resnet10t", 11, {"output_stride": 8}, aspp_channels=8))
    assert deepest.deeplab.backbone.reduction == 8
    with pytest.raises(ValueError, match="unknown timm architecture"):
        create_segmenter(SegmenterSpec("resnet10", 11))


def test_the_task_scores_classes_by_top1_and_label_maps_by_miou():
    from sda_core.tasks import TASKS

    probabilities = np.eye(3)[[0, 1, 2, 2]]
    assert TASKS["classification"].score_summary(probabilities, np.array([0, 1, 2, 0]), 3) == "top-1 75.00%"
    predicted, labels = _maps(6, n=4, classes=3)
    per_pixel = np.moveaxis(np.eye(3)[predicted], -1, 1)
    assert (
        TASKS["segmentation"].score_summary(per_pixel, labels, 3)
        == f"mIoU {mean_iou(confusions(predicted, labels, 3)):.2f}%"
    )


def test_one_scene_gives_no_interval_rather_than_a_zero_width_one():
    predicted, labels = _maps(5, n=1)
    found = [confusions(predicted, labels, 5)]
    value, low, high = miou_interval(found, bootstrap_resamples(1, 0))
    assert value == mean_iou(found[0]) and np.isnan(low) and np.isnan(high)
    difference, low, high = paired_difference_interval(found, found, bootstrap_resamples(1, 0))
    assert difference == 0 and np.isnan(low) and np.isnan(high)


def test_a_label_outside_the_classes_is_refused_before_prediction_naming_the_set_and_image(tmp_path):
    from sda_core.jobs.predict import predict_job
    from sda_core.store import write_store
    from sda_core.tasks import TASKS

    maps = np.zeros((4, 8, 8), np.uint8)
    maps[2, 3, 3], maps[1, 0, 0] = 12, IGNORE_INDEX  # 12 is no class of 11; 255 is no label, not a mistake
    store = str(tmp_path / "fog.zarr")
    write_store(store, np.zeros((4, 8, 8, 3), np.uint8), maps, 2, {}, layout=TASKS["segmentation"].label_layout(8))
    with pytest.raises(ValueError, match=r"image set target/fog \(.*fog.zarr\): image 2 has label value\(s\) \[12\]"):
        predict_job(
            {"target/fog": [store]},
            str(tmp_path / "p.npz"),
            "convnext_atto",
            {"patch_size": 1, "depths": [1, 1, 1, 1], "dims": [8] * 4},
            11,
            {"source": str(tmp_path / "absent.safetensors")},
            {"target/fog": ["source"]},
            {"resize": 8, "crop": 8},
            torch.device("cpu"),
            segmenter={"feature_index": 0, "atrous_rates": [1], "aspp_channels": 8},
            task="segmentation",
        )


def test_the_segmenters_seeded_weights_do_not_change_with_its_checks():
    """A seeded segmenter's weights depend on every draw from the global generator before its backbone:
    the name check (a throwaway classifier) and the level count (a throwaway feature extractor), both on
    the CPU. The parse-time level check runs on the meta device instead; had the segmenter used it, every
    segmenter (and every digit-scenes table) would have changed."""
    import timm

    from sda_core.models.classifiers import create_classifier
    from sda_core.models.segmenters import SegmenterSpec, create_segmenter

    kwargs = {"patch_size": 1, "depths": [1, 1, 1, 1], "dims": [8] * 4}
    torch.manual_seed(0)
    segmenter = create_segmenter(SegmenterSpec("convnext_atto", 11, kwargs, 0, (1,), 8))
    torch.manual_seed(0)
    create_classifier("convnext_atto", 0, kwargs)
    timm.create_model("convnext_atto", pretrained=False, features_only=True, **kwargs)
    body = timm.create_model("convnext_atto", pretrained=False, features_only=True, out_indices=(0,), **kwargs)
    ours = segmenter.deeplab.backbone.body.state_dict()
    assert ours.keys() == body.state_dict().keys()
    assert all(torch.equal(ours[key], value) for key, value in body.state_dict().items())

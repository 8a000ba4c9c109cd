"""The OpenMMLab -> timm conversion against mmcls itself: the five paper architectures, their logits.

The reference files are made by mmcls 0.25 in its own environment (tools/openmmlab_reference.py; `make
openmmlab-check` builds that environment and runs this file; CI does). Without them (a plain `pytest`
on a machine that has not made them) these tests are skipped, and say so; with SDA_OPENMMLAB_REFERENCE
set, a missing file is a failure.
"""

import os
from pathlib import Path

import pytest
import torch

from sda_core.checkpoints import CheckpointError
from sda_core.models.classifiers import load_classifier

REFERENCE = os.environ.get("SDA_OPENMMLAB_REFERENCE")
pytestmark = pytest.mark.skipif(
    not REFERENCE, reason="SDA_OPENMMLAB_REFERENCE unset: make openmmlab-reference runs these against mmcls 0.25"
)

TIMM_NAMES = {
    "resnet50": "resnet50",
    "swin_t": "swin_tiny_patch4_window7_224",
    "swin_b": "swin_base_patch4_window7_224",
    "convnext_t": "convnext_tiny",
    "convnext_b": "convnext_base",
}


@pytest.fixture(scope="module")
def reference():
    return torch.load(Path(REFERENCE) / "reference.pt", weights_only=True)


def timm_logits(timm_name: str, path: Path, images: torch.Tensor) -> torch.Tensor:
    model = load_classifier(timm_name, 1000, {}, path).eval()
    with torch.no_grad():
        return model(images)


@pytest.mark.parametrize("name", list(TIMM_NAMES))
def test_timm_computes_what_mmcls_computes_with_the_converted_weights(reference, name):
    ours = timm_logits(TIMM_NAMES[name], Path(REFERENCE) / f"{name}.pth", reference["input"])
    # ConvNeXt: timm and MMPreTrain 1.x use eps 1e-6 in every LayerNorm; mmcls 0.x 1e-5 in the three
    # downsampling ones, a different function of the same weights (docs/openmmlab.md)
    theirs = reference[f"{name}.eps1e-6" if name.startswith("convnext") else name]
    scale = theirs.abs().max()
    assert (ours - theirs).abs().max() <= 1e-5 * scale, (ours - theirs).abs().max()
    assert torch.equal(ours.argmax(1), theirs.argmax(1))
    if name.startswith("convnext"):  # mmcls 0.x's eps: another function, close on these weights
        gap = (ours - reference[name]).abs().max()
        assert 0 < gap <= 1e-5 * scale, gap


def test_without_the_merge_permutation_swin_computes_another_function(reference, monkeypatch):
    import sda_core.models.openmmlab as openmmlab

    monkeypatch.setattr(openmmlab, "unfold_to_concat", lambda channels: torch.arange(4 * channels))
    ours = timm_logits(TIMM_NAMES["swin_t"], Path(REFERENCE) / "swin_t.pth", reference["input"])
    assert (ours - reference["swin_t"]).abs().max() > 0.5 * reference["swin_t"].abs().max()


def test_the_pre_0_20_swin_layout_loads_the_same_model(reference):
    """The 2021 Swin release names its final norm `norm` and may store attention masks (buffers)."""
    ours = timm_logits(TIMM_NAMES["swin_t"], Path(REFERENCE) / "swin_t.norm.pth", reference["input"])
    assert (ours - reference["swin_t"]).abs().max() <= 1e-5 * reference["swin_t"].abs().max()


def test_a_file_of_another_architecture_is_named_as_such():
    with pytest.raises(CheckpointError, match="seems to be a Swin Transformer in the OpenMMLab layout"):
        load_classifier("convnext_tiny", 1000, {}, Path(REFERENCE) / "swin_t.pth")
    with pytest.raises(CheckpointError, match=r"seems to be a ConvNeXt\) does not fit.*wrong shape"):
        load_classifier("convnext_tiny", 1000, {}, Path(REFERENCE) / "convnext_b.pth")


def test_the_mmcls_preprocess_is_mmcls_test_pipeline(reference):
    from sda_core.models.classifiers import Preprocess

    preprocess = Preprocess(resize=256, crop=224, preprocess="mmcls")
    tensor = Preprocess(resize=256, crop=224)
    for k in range(5):
        rgb = reference[f"pipeline.{k}.input"]
        x = rgb.permute(2, 0, 1)[None].float() / 255
        theirs = reference[f"pipeline.{k}.output"]
        assert (preprocess(x)[0] - theirs).abs().max() < 1e-5
        if k == 4:  # 256 px: no resize, so the two pipelines differ only in float arithmetic
            assert (tensor(x)[0] - theirs).abs().max() < 1e-5
        else:  # the default resizes differently (torch's bicubic on floats): the option is not a no-op
            assert (tensor(x)[0] - theirs).abs().max() > 0.01

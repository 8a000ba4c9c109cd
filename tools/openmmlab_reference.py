"""Reference files for the OpenMMLab -> timm conversion, made by mmcls itself (run in its own environment).

Builds the paper's five source architectures with mmcls 0.25's own classes (its release configs:
ResNet-50, Swin-T/B, ConvNeXt-T/B; 1,000 classes), gives every parameter and statistic a random value
(norm affines, running statistics and layer scales included, so that none of them is an identity a wrong
mapping could hide behind), and writes for each:
  <out>/<name>.pth        {"state_dict", "meta"} as mmcls's checkpoint saver lays it out
  <out>/reference.pt      the input batch and each model's logits (eval mode), mmcls's forward pass
ConvNeXt is written twice: as mmcls 0.x builds it (eps 1e-5 in its three downsampling LayerNorms) and
with those at 1e-6 (MMPreTrain 1.x, timm), since the same weights mean slightly different functions.
A Swin-T copy in the pre-0.20 layout (final norm `norm`, stored attention masks) is written as well,
and mmcls's test pipeline applied to a few images (reference.pt: pipeline.<k>.input / .output).

    python tools/openmmlab_reference.py OUT_DIR     # with mmcls==0.25.0, mmcv==1.7.2 (make openmmlab-reference)

tests/test_openmmlab_reference.py reads OUT_DIR (SDA_OPENMMLAB_REFERENCE) and checks timm against it.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import mmcls
import torch
from mmcls.models import build_classifier

HEAD = dict(type="LinearClsHead", num_classes=1000)
GAP = dict(type="GlobalAveragePooling")
ARCHITECTURES = {  # the backbones of mmcls's configs for the five release files
    "resnet50": (dict(type="ResNet", depth=50, num_stages=4, out_indices=(3,), style="pytorch"), GAP, 2048),
    "swin_t": (dict(type="SwinTransformer", arch="tiny", img_size=224), GAP, 768),
    "swin_b": (dict(type="SwinTransformer", arch="base", img_size=224), GAP, 1024),
    "convnext_t": (dict(type="ConvNeXt", arch="tiny", out_indices=(3,), gap_before_final_norm=True), None, 768),
    "convnext_b": (dict(type="ConvNeXt", arch="base", out_indices=(3,), gap_before_final_norm=True), None, 1024),
}


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or "relative_position_index" in name:
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm3.weight")) or ".bn" in name:
                tensor.copy_(1 + 0.2 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("gamma"):
                tensor.copy_(0.5 + 0.5 * torch.rand(tensor.shape, generator=generator))
            else:
                scale = tensor[0].numel() ** -0.5 if tensor.dim() > 1 else 0.1
                tensor.copy_(scale * torch.randn(tensor.shape, generator=generator))
    return model.eval()


def logits(model, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        features = model.extract_feat(images)
        return model.head.fc(model.head.pre_logits(features))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    reference = {"input": images}
    meta = {"mmcls_version": mmcls.__version__, "CLASSES": [f"class {k}" for k in range(1000)]}
    for seed, (name, (backbone, neck, width)) in enumerate(ARCHITECTURES.items()):
        model = build_classifier(
            dict(type="ImageClassifier", backbone=backbone, neck=neck, head=dict(HEAD, in_channels=width))
        )
        model = randomised(model, seed)
        torch.save({"meta": meta, "state_dict": model.state_dict()}, out / f"{name}.pth")
        reference[name] = logits(model, images)
        if name.startswith("convnext"):  # MMPreTrain 1.x: eps 1e-6 in the downsampling norms too
            assert all(layer[0].eps == 1e-5 for layer in model.backbone.downsample_layers[1:])
            for layer in model.backbone.downsample_layers[1:]:
                layer[0].eps = 1e-6
            reference[f"{name}.eps1e-6"] = logits(model, images)
        if name == "swin_t":  # the pre-0.20 layout of the 2021 release file
            old = OrderedDict(
                (k.replace("backbone.norm3.", "backbone.norm."), v) for k, v in model.state_dict().items()
            )
            for stage, layer in enumerate(model.backbone.stages):
                for block in range(len(layer.blocks)):
                    old[f"backbone.stages.{stage}.blocks.{block}.attn_mask"] = torch.zeros(4, 49, 49)
            torch.save({"meta": meta, "state_dict": old}, out / "swin_t.norm.pth")
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters", flush=True)
    reference.update(test_pipeline_outputs())
    torch.save(reference, out / "reference.pt")


def test_pipeline_outputs() -> dict[str, torch.Tensor]:
    """mmcls's test pipeline (PIL bicubic resize of the short side to 256, centre crop 224, normalise on
    the 0-255 scale) on 8-bit RGB images of the shapes ImageNet-C (square) and ImageNet val have."""
    import numpy as np
    from mmcls.datasets.pipelines import Compose

    pipeline = Compose(
        [
            dict(type="Resize", size=(256, -1), backend="pillow", interpolation="bicubic"),
            dict(type="CenterCrop", crop_size=224),
            dict(type="Normalize", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
        ]
    )
    outputs = {}
    generator = torch.Generator().manual_seed(1)
    for k, (height, width) in enumerate([(224, 224), (300, 400), (375, 500), (500, 333), (256, 256)]):
        # smooth images with detail at every scale, as photos have (noise alone hides resampling differences)
        coarse = torch.rand(3, height // 16 + 1, width // 16 + 1, generator=generator)
        smooth = torch.nn.functional.interpolate(coarse[None], size=(height, width), mode="bilinear")[0]
        image = (255 * (0.7 * smooth + 0.3 * torch.rand(3, height, width, generator=generator))).round()
        rgb = image.permute(1, 2, 0).to(torch.uint8).numpy()
        result = pipeline({"img": np.ascontiguousarray(rgb[..., ::-1]), "img_fields": ["img"]})  # mmcls reads BGR
        outputs[f"pipeline.{k}.input"] = torch.from_numpy(rgb.copy())
        outputs[f"pipeline.{k}.output"] = torch.from_numpy(result["img"]).permute(2, 0, 1).contiguous()
    return outputs


if __name__ == "__main__":
    main(Path(sys.argv[1]))

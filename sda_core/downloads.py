"""How to obtain each external input (weights, data sets), the one owner of these texts: the
missing-inputs message (sda_core.external_inputs) and the model loaders (sda_core.models) quote them.
A leaf module: it imports nothing of the package."""

ADM_256_UNCOND_URL = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt"
DIT_XL_2_256_URL = "https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt"

# The paper's five source models, mmcls v0 release files (both papers evaluate these)
OPENMMLAB_V0 = "https://download.openmmlab.com/mmclassification/v0"
OPENMMLAB_RELEASES = {
    name: f"{OPENMMLAB_V0}/{folder}/{name}"
    for folder, name in (
        ("resnet", "resnet50_8xb32_in1k_20210831-ea4938fc.pth"),
        ("swin-transformer", "swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth"),
        ("convnext", "convnext-tiny_3rdparty_32xb128_in1k_20220124-18abde00.pth"),
        ("swin-transformer", "swin_base_224_b16x64_300e_imagenet_20210616_190742-93230b0d.pth"),
        ("convnext", "convnext-base_3rdparty_32xb128_in1k_20220124-d0915162.pth"),
    )
}

HOW_TO_OBTAIN = {
    "adm": f"the openai/guided-diffusion release file 256x256_diffusion_uncond.pt: {ADM_256_UNCOND_URL}",
    "dit": (
        f"the original DiT-XL-2-256x256.pt ({DIT_XL_2_256_URL}) with the VAE below, or the diffusers "
        "directory: huggingface-cli download facebook/DiT-XL-2-256 --local-dir <dir>"
    ),
    "vae": "huggingface-cli download stabilityai/sd-vae-ft-ema --local-dir <dir>",
    "imagenet_c": (
        "ImageNet-C (Hendrycks & Dietterich 2019, https://zenodo.org/records/2235448), extracted as "
        "<root>/<corruption>/<severity>/<wnid>/*.JPEG; or set imagenet.target: imagenet_val to "
        "build it from ImageNet val"
    ),
    "imagenet_val": (
        "the ImageNet validation images sorted into one folder per wnid, <val_root>/<wnid>/*.JPEG "
        "(https://image-net.org)"
    ),
    "adapted": (
        "DDA-adapted images in the layout of the set they adapt (ImageNet-C: <root>/<corruption>/<severity>/"
        "<wnid>/*), e.g. the DDA authors' release; or unset imagenet.adapted_root to run DDA here"
    ),
    "subset": (
        "a text file of image names, one per line; RobustBench's 5,000 ImageNet-C images: "
        "robustbench/data/imagenet_test_image_ids.txt of https://github.com/RobustBench/robustbench"
    ),
    "target": (
        "a folder of images as <root>/<wnid>/* (ImageNet-W: ImageNet val with the watermark of "
        "https://github.com/facebookresearch/Whac-A-Mole); or remove the entry from `targets`"
    ),
    "finetuned": (
        "the SDA authors' released fine-tuned checkpoints (MMPreTrain files, linked from their repository's "
        "README), one per architecture; or unset finetuned_weights to fine-tune here"
    ),
    "vgg": (
        "torchvision's VGG-19 weights, vgg19-dcbb9e9d.pth (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth); "
        "or set gda.vgg_weight: 0 to run GDA without its VGG term (a deviation)"
    ),
    "clip": (
        "OpenAI's CLIP ViT-B/16 in open_clip's format: huggingface-cli download "
        "timm/vit_base_patch16_clip_224.openai open_clip_model.safetensors --local-dir <dir>; or set "
        "gda.clip_weight: 0 to run GDA without its CLIP term (a deviation)"
    ),
}

"""The ImageNet world through the `snakemake` command: missing inputs, a dry run of the full config, a tiny run."""

import collections
import re
from pathlib import Path

import pytest
import torch
import yaml
from workflow_helpers import copy_workflow, imagenet_placeholders, job_counts, run_snakemake


def snakemake(workdir, *args, hub_cache):
    return run_snakemake(workdir, *args, check=False, env={"HF_HUB_CACHE": str(hub_cache)})


@pytest.fixture()
def workdir(tmp_path):
    return copy_workflow(tmp_path)


def test_missing_inputs_are_listed_in_one_message_with_how_to_obtain_them(workdir):
    result = snakemake(workdir, "-n", hub_cache=workdir / "empty-cache")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "30 input(s) of the ImageNet experiment are missing" in message
    for expected in (
        "checkpoints/256x256_diffusion_uncond.pt",
        "openaipublic.blob.core.windows.net",
        "checkpoints/DiT-XL-2-256x256.pt",
        "checkpoints/sd-vae-ft-ema",
        "huggingface-cli download timm/convnext_base.fb_in1k",
        "data/imagenet-c/jpeg_compression/5",
        "data/imagenet-c/saturate/5",
        "zenodo.org",
        "target set w: data/imagenet-w",
        "facebookresearch/Whac-A-Mole",
        "GDA's VGG-19 weights: checkpoints/vgg19-dcbb9e9d.pth",
        "GDA's CLIP ViT-B/16 weights: checkpoints/clip-vit-b-16/open_clip_model.safetensors",
        "timm/vit_base_patch16_clip_224.openai",
        "gda.clip_weight: 0",
    ):
        assert expected in message


def test_a_misspelled_timm_name_is_named_as_such_not_as_a_missing_download(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["architectures"][0]["timm_name"] = "resnett50.tv_in1k"
    (workdir / "typo.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", "--configfile", "typo.yaml", hub_cache=workdir / "empty-cache")
    message = result.stdout + result.stderr
    assert result.returncode != 0 and "timm has no model 'resnett50.tv_in1k'; close: resnet50" in message
    assert "missing" not in message.split("problem(s) in the configuration")[1]


@pytest.mark.parametrize("val_root", [None, "data/imagenet/val"])
def test_dry_run_of_the_full_imagenet_experiment_lists_the_expected_jobs(workdir, val_root):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["imagenet"]["val_root"] = val_root
    (workdir / "full.yaml").write_text(yaml.safe_dump(config))
    hub_cache = imagenet_placeholders(workdir, "full.yaml")
    result = snakemake(workdir, "-n", "--configfile", "full.yaml", hub_cache=hub_cache)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    clean = 1 if val_root else 0
    swept = 9 * clean  # the timestep study's levels besides the configured start (t = 505), with val_root only
    assert job_counts(result.stdout) == {
        "all": 1,
        "import_images": 19 + 1 + clean,  # the corruptions, ImageNet-W (targets: w), clean
        "import_classifier": 5,
        "sample_synthetic": 8,
        "mod": 8,
        "finetune": 5 + 5,  # f' and f_c' (studies.generated_only)
        "adapt": (20 + 20 + 2 * clean + 2 * swept) * 8,
        "predict": 5 * (20 + 1 + clean + clean),  # + the timestep study's group
        "memo": 5 * 20 * 8,  # architectures x (corruptions and ImageNet-W) x memo.shards
        "gda": 3 * 20 * 8,  # gda.architectures (the paper's GDA column) x the same sets x gda.shards
        "predict_per_image_adapted": 3 * 20,  # f' on GDA's images (SDA on GDA), per architecture and set
        "tent": 5 * 20,  # one stream per architecture and set (TENT is not sharded)
        "score_target": 1,
        "score": 1,
        **({"score_timesteps": 1} if clean else {}),
        "claims": 1,
        "gates": 1,
        "preview": 1,
    }
    jobs = collections.Counter(re.findall(r"output: results/adapted/([\w-]+)/", result.stdout))
    levels = [101, 202, 303, 404, 595, 696, 797, 898, 999] if clean else []
    assert jobs == {
        "dda": (20 + clean) * 8,
        "diffpure": 20 * 8,
        **({"unguided": 8} if clean else {}),
        **{f"{process}-t{t}": 8 for t in levels for process in ("unguided", "dda")},
    }
    assert len(re.findall(r"output: results/models/finetuned-generated/", result.stdout)) == 5
    memo = collections.Counter(re.findall(r"output: results/memo/(\w+)/\w+/shard-\d\.zarr", result.stdout))
    assert memo == {arch: 20 * 8 for arch in ("resnet50", "swin_t", "convnext_t", "swin_b", "convnext_b")}
    gda = collections.Counter(re.findall(r"output: results/gda/(\w+)/\w+/shard-\d\.zarr", result.stdout))
    assert gda == {arch: 20 * 8 for arch in ("resnet50", "swin_t", "convnext_t")}
    assert "checkpoints/vgg19-dcbb9e9d.pth" in result.stdout  # GDA's VGG and CLIP are inputs of its jobs
    assert "checkpoints/clip-vit-b-16/open_clip_model.safetensors" in result.stdout
    assert "output: results/target/w.zarr" in result.stdout and "results/tables/imagenet_w.csv" in result.stdout
    assert "output: results/adapted/dda/w/shard-7.zarr" in result.stdout


def test_a_pre_adapted_imagenet_c_is_imported_in_place_of_dda_and_a_subset_file_reaches_every_import(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["imagenet"].update(adapted_root="data/dda-imagenet-c", subset_file="data/imagenet_test_image_ids.txt")
    config["targets"] = [{"name": "w", "root": "data/imagenet-w", "adapted_root": "data/dda-imagenet-w"}]
    (workdir / "pre.yaml").write_text(yaml.safe_dump(config))
    missing = snakemake(workdir, "-n", "--configfile", "pre.yaml", hub_cache=workdir / "empty-cache")
    message = missing.stdout + missing.stderr
    assert (
        missing.returncode != 0 and "pre-adapted (DDA) gaussian_noise: data/dda-imagenet-c/gaussian_noise/5" in message
    )
    assert "image subset file: data/imagenet_test_image_ids.txt" in message and "RobustBench" in message
    hub_cache = imagenet_placeholders(workdir, "pre.yaml")
    result = snakemake(workdir, "-n", "--configfile", "pre.yaml", hub_cache=hub_cache)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["import_adapted"] == 20 and counts["import_images"] == 20  # 19 corruptions and ImageNet-W
    adapted = collections.Counter(re.findall(r"output: results/adapted/([\w-]+)/", result.stdout))
    assert adapted == {"diffpure": 20 * 8, "dda-imported": 20}  # no DDA runs on a pre-adapted set
    assert "output: results/adapted/dda-imported/w.zarr" in result.stdout
    assert "data/dda-imagenet-c/fog/5, results/manifests/fog.tsv" not in result.stdout  # its own manifest
    assert "data/imagenet_test_image_ids.txt" in result.stdout.split("rule import_images")[1].split("rule ")[0]


def tiny_imagenet_world(workdir: Path) -> dict:
    """Tiny random-weight models in the official file layouts, and a 3-class ImageNet(-C) from photos."""
    from fake_imagenet import make_imagenet_c, make_imagenet_val
    from safetensors.torch import save_file
    from test_dit import TINY_LATENT_DIT, tiny_vae

    from sda_core.models.classifiers import create_classifier
    from sda_core.models.denoisers import build_denoiser
    from sda_core.models.dit import DiTDenoiser

    adm_spec = {
        "arch": "adm",
        "image_size": 16,
        "in_channels": 3,
        "model_channels": 8,
        "out_channels": 6,
        "num_res_blocks": 1,
        "attention_resolutions": "8",
        "channel_mult": [1, 2],
        "num_head_channels": 8,
        "use_scale_shift_norm": True,
        "resblock_updown": True,
        "norm_groups": 4,
    }
    dit_spec = {**TINY_LATENT_DIT, "num_embeds_ada_norm": 3}
    checkpoints = workdir / "checkpoints"
    checkpoints.mkdir()
    torch.manual_seed(0)
    adm = build_denoiser(adm_spec)
    torch.nn.init.normal_(adm.out[2].weight, std=0.05)
    torch.save(adm.state_dict(), checkpoints / "adm.pt")  # a plain state dict, as guided-diffusion publishes
    dit = DiTDenoiser(**{k: v for k, v in dit_spec.items() if k != "arch"}).transformer
    for parameter in dit.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    dit.save_pretrained(checkpoints / "DiT-tiny" / "transformer", safe_serialization=True)
    tiny_vae().save_pretrained(checkpoints / "DiT-tiny" / "vae", safe_serialization=True)
    classifier = create_classifier("resnet10t", 3)
    save_file(
        {k: v.contiguous() for k, v in classifier.state_dict().items()}, str(checkpoints / "resnet10t.safetensors")
    )

    corruptions = {"test": ["gaussian_noise", "fog"], "validation": ["saturate"]}
    val = make_imagenet_val(workdir / "data" / "val", num_classes=3, per_class=3)
    make_imagenet_c(workdir / "data" / "imagenet-c", val, corruptions["test"] + corruptions["validation"], 5)
    make_imagenet_val(workdir / "data" / "imagenet-w", num_classes=3, per_class=3)  # a named target's folder
    return {
        "world": "imagenet",
        "device": "cpu",
        "threads": 1,
        "imagenet": {
            "imagenet_c_root": "data/imagenet-c",
            "val_root": "data/val",
            "num_classes": 3,
            "images_per_class": 2,
            "clean_images_per_class": 1,
        },
        "corruptions": {"severity": 5, **corruptions},
        "classifier_input": {"resize": 16, "crop": 16},
        "architectures": [
            {
                "name": "tiny_resnet",
                "timm_name": "resnet10t",
                "weights": "checkpoints/resnet10t.safetensors",
                "finetune": {"optimizer": "sgd", "lr": 1e-3, "batch_size": 4, "epochs": 1, "schedule": "constant"},
            }
        ],
        "denoisers": {
            "unconditional": {"spec": adm_spec, "checkpoint": "checkpoints/adm.pt"},
            "generator": {"spec": dit_spec, "checkpoint": "checkpoints/DiT-tiny"},
        },
        "sampling": {"images_per_class": 2, "respacing": 4, "batch_size": 4, "shards": 1},
        "adaptation": {
            "respacing": 10,
            "steps": 3,
            "guidance": {"scale": 6.0, "downsample": 2, "norm": "batch"},
            "batch_size": 4,
            "shards": 1,
            "mod_shards": 1,
        },  # shard invariance: test_jobs, test_dit
        "diffpure": {"respacing": 10, "t": 150},
        "storage": {"codec": "jpeg-q85"},
        "memo": {"views": 4, "batch_size": 3},
        # no VGG or CLIP weights exist for this world (and VGG-19 needs 32 px): GDA without them
        "gda": {"steps": 2, "views": 4, "vgg_weight": 0, "clip_weight": 0, "batch_size": 3},
        "targets": [{"name": "w", "root": "data/imagenet-w"}],
    }


def test_tiny_imagenet_world_runs_end_to_end_from_official_file_layouts(workdir):
    import pandas as pd

    (workdir / "tiny_imagenet.yaml").write_text(yaml.safe_dump(tiny_imagenet_world(workdir)))
    result = snakemake(workdir, "--configfile", "tiny_imagenet.yaml", hub_cache=workdir / "empty-cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]

    table = pd.read_csv(workdir / "results/tables/imagenet_c.csv")
    assert set(table.corruption) == {"gaussian_noise", "fog", "saturate", "mean"}
    per_corruption = table[table.corruption != "mean"]
    assert (per_corruption.n == 6).all()  # 2 images per class, 3 classes
    sanity = pd.read_csv(workdir / "results/tables/imagenet_sanity.csv").set_index("check")
    assert sanity.loc["source on clean test", "n"] == 3
    assert sanity.loc["source agrees with generator label", "n"] == 6
    from sda_core.store import open_store

    generated = open_store(workdir / "results/synthetic/generated/shard-0.zarr")
    assert generated.images.shape[1:] == (16, 16, 3) and generated.attrs["codec"] == "jpeg-q85"
    assert (workdir / "results/plots/imagenet_preview.png").is_file()
    w = pd.read_csv(workdir / "results/tables/imagenet_w.csv")
    assert {"Source", "MEMO", "DiffPure", "GDA", "DDA", "SDA"} <= set(w.method) and (w.n == 6).all()
    assert set(pd.read_csv(workdir / "results/tables/imagenet_w_paired.csv").target) == {"w"}

    # completing a folder re-imports it (the folder's own time stamp does not change), and only it
    nothing = snakemake(workdir, "-n", "--configfile", "tiny_imagenet.yaml", hub_cache=workdir / "empty-cache")
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    fog_class = sorted((workdir / "data/imagenet-c/fog/5").iterdir())[0]
    first = sorted(fog_class.iterdir())[0]
    (fog_class / f"zz_{first.name}").write_bytes(first.read_bytes())
    changed = snakemake(workdir, "-n", "--configfile", "tiny_imagenet.yaml", hub_cache=workdir / "empty-cache")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert job_counts(changed.stdout)["import_images"] == 1 and "output: results/target/fog.zarr" in changed.stdout


def test_a_set_whose_class_folders_are_other_wnids_is_refused_before_any_job(workdir):
    """Labels are positions in the sorted wnids: a named target with other wnids in the same number was
    labelled by position, exit 0."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["imagenet"].update(adapted_root="data/dda-imagenet-c")
    config["targets"] = [{"name": "w", "root": "data/imagenet-w", "adapted_root": None}]
    (workdir / "pre.yaml").write_text(yaml.safe_dump(config))
    hub_cache = imagenet_placeholders(workdir, "pre.yaml")
    wnids = [f"n0{k}" for k in range(3)]
    for folder in [*(workdir / "data/imagenet-c").glob("*/5"), *(workdir / "data/dda-imagenet-c").glob("*/5")]:
        for name in wnids:
            (folder / name).mkdir()
    for name in ["n00", "n01", "n09"]:  # the same number of classes, one of them another
        (workdir / "data/imagenet-w" / name).mkdir()
    result = snakemake(workdir, "-n", "--configfile", "pre.yaml", hub_cache=hub_cache)
    message = result.stdout + result.stderr
    assert result.returncode != 0 and "1 image folder(s) have other class folders (wnids) than" in message
    assert "w (data/imagenet-w): 3 classes; not in" in message and "n09; missing: n02" in message
    (workdir / "data/imagenet-w/n09").rename(workdir / "data/imagenet-w/n02")
    result = snakemake(workdir, "-n", "--configfile", "pre.yaml", hub_cache=hub_cache)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_released_artifacts_preset_runs_no_diffusion_sampling_or_training_job(workdir):
    released = yaml.safe_load((workdir / "presets/paper_released.yaml").read_text())
    missing = snakemake(workdir, "-n", "--configfile", "presets/paper_released.yaml", hub_cache=workdir / "none")
    message = missing.stdout + missing.stderr
    # 5 + 5 models, 15 + 15 sets, and nothing else: no denoiser
    assert missing.returncode != 0 and "40 input(s) of the ImageNet experiment are missing" in message
    assert message.count("\n  - ") == 40
    for expected in (
        "download.openmmlab.com/mmclassification/v0/swin-transformer/swin_base_224_b16x64_300e_imagenet_20210616_",
        "released fine-tuned convnext_b: checkpoints/sda/convnext_b.pth",
        "pre-adapted (DDA) fog: data/imagenet-c-syn/fog/5",
        "ImageNet-C fog, severity 5: data/imagenet-c/fog/5",
    ):
        assert expected in message
    assert "unconditional ADM weights" not in message and "DiT generator weights" not in message  # no denoiser runs
    hub_cache = imagenet_placeholders(workdir, "presets/paper_released.yaml")
    result = snakemake(workdir, "-n", "--configfile", "presets/paper_released.yaml", hub_cache=hub_cache)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    archs = len(released["architectures"])
    assert job_counts(result.stdout) == {
        "all": 1,
        "import_images": 15,
        "import_adapted": 15,
        "import_classifier": archs,
        "import_finetuned": archs,
        "predict": archs * 15,
        "score": 1,
        "claims": 1,
        "gates": 1,
        "preview": 1,
    }


def test_released_artifacts_are_scored_without_any_diffusion_or_training(workdir):
    """The released-artifacts path on the tiny world: source and fine-tuned models as OpenMMLab files, the
    DDA sets pre-adapted, DiffPure and the studies off, the mmcls pipeline; SDA's figure checked by hand."""
    import numpy as np
    import pandas as pd
    from fake_imagenet import make_imagenet_c
    from test_openmmlab import openmmlab_layout

    from sda_core.models.classifiers import Preprocess, load_classifier
    from sda_core.store import open_store

    config = tiny_imagenet_world(workdir)
    source = load_classifier("resnet10t", 3, {}, workdir / "checkpoints/resnet10t.safetensors")
    finetuned = {
        k: v + 0.05 * torch.randn(v.shape) if v.is_floating_point() else v for k, v in source.state_dict().items()
    }
    meta = {"mmcls_version": "0.25.0"}
    torch.save(
        {"meta": meta, "state_dict": openmmlab_layout("resnet10t", source.state_dict())}, workdir / "checkpoints/f.pth"
    )
    torch.save(
        {"meta": meta, "state_dict": openmmlab_layout("resnet10t", finetuned)}, workdir / "checkpoints/f_sda.pth"
    )
    make_imagenet_c(workdir / "data/imagenet-c-syn", workdir / "data/val", ["gaussian_noise", "fog"], 5, seed=1)
    config["architectures"][0].update(weights="checkpoints/f.pth", finetuned_weights="checkpoints/f_sda.pth")
    config["imagenet"].update(val_root=None, adapted_root="data/imagenet-c-syn")
    config["corruptions"]["validation"] = []
    config["classifier_input"]["preprocess"] = "mmcls"
    config.update(targets=[], memo={"enabled": False}, gda={"enabled": False})
    config["diffpure"]["enabled"] = False
    config["studies"] = {key: {"enabled": False} for key in ("timesteps", "generated_only", "set_size", "fusions")}
    (workdir / "released.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--configfile", "released.yaml", hub_cache=workdir / "empty-cache")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert set(job_counts(result.stdout + result.stderr)) == {
        "all", "import_images", "import_adapted", "import_classifier", "import_finetuned", "predict", "score",
        "claims", "gates", "preview",
    }  # fmt: skip
    table = pd.read_csv(workdir / "results/tables/imagenet_c.csv")
    assert set(table.method) == {"Source", "DDA", "SDA", "DDA (adapted only)", "SDA (adapted only)"}
    # SDA on fog, computed here from the stores and the two models: f(x) + f'(x_dda), softmax sums
    preprocess = Preprocess(16, 16, "mmcls")
    released = load_classifier(
        "resnet10t", 3, {}, workdir / "results/models/released-finetuned/tiny_resnet.safetensors"
    )
    assert all(torch.equal(released.state_dict()[k], v) for k, v in finetuned.items())
    target, adapted = (open_store(workdir / f"results/{p}/fog.zarr") for p in ("target", "adapted/dda-imported"))

    def probabilities(model, store):
        x = torch.from_numpy(store.images[:]).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            return model.eval()(preprocess(x)).softmax(1).numpy()

    fused = probabilities(source, target) + probabilities(released, adapted)
    expected = 100 * np.mean(fused.argmax(1) == target.labels[:])
    row = table[(table.method == "SDA") & (table.corruption == "fog")].iloc[0]
    assert row.n == 6 and abs(row.top1 - expected) < 0.01

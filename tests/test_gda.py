"""GDA (sda_core.gda, a per-image stage of sda_core.jobs.per_image): the weighted-marginal entropy, the
guided step, the views' gradient path, the VGG and CLIP terms, per-image independence, and the stage's sharding
and resume."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

import sda_core.gda as gda_module
from sda_core.augmix import AugMixDraws, augmix_views, resized_crops
from sda_core.checkpoints import save_weights
from sda_core.diffusion.adapt import reverse_diffusion
from sda_core.diffusion.schedule import DiffusionSchedule
from sda_core.gda import (
    VGG_LAYERS,
    ClipStyle,
    GdaAdapter,
    GdaGuidance,
    GdaSettings,
    VggFeatures,
    clip_cutouts,
    configure_classifier,
    load_clip,
    weighted_marginal_entropy,
)
from sda_core.jobs.per_image import per_image_job
from sda_core.memo import marginal_entropy
from sda_core.models.classifiers import Preprocess, create_classifier
from sda_core.rng import randn_per_sample, sample_generators
from sda_core.store import StoreSequence, read_predictions, write_store

PREPROCESS = Preprocess(resize=8, crop=8)
PIXEL_AND_ENTROPY = GdaSettings(views=4, vgg_weight=0, clip_weight=0)


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    return configure_classifier(create_classifier("resnet10t", 5))


def test_weighted_marginal_entropy_fuses_views_and_raw_prediction_by_each_others_entropy():
    torch.manual_seed(0)
    logits = torch.randn(6, 5, dtype=torch.float64) * 2
    raw = (torch.randn(5, dtype=torch.float64) * 3).log_softmax(0)
    # the code's formula, written out with numpy
    p = logits.numpy()
    log_views = p - np.log(np.exp(p).sum(1, keepdims=True))
    log_mean = np.log(np.exp(log_views).mean(0))
    mean = np.exp(log_mean) / np.exp(log_mean).sum()
    views_entropy = -(mean * np.log(mean)).sum()
    raw_entropy = -(np.exp(raw.numpy()) * raw.numpy()).sum()
    fused = (log_mean * raw_entropy + raw.numpy() * views_entropy) / (raw_entropy + views_entropy)
    expected = -(np.exp(fused) * fused).sum()
    assert weighted_marginal_entropy(logits, raw).item() == pytest.approx(expected, rel=1e-10)
    # with the raw prediction equal to the views' mean, it is the plain marginal entropy
    same = torch.from_numpy(log_mean)
    torch.testing.assert_close(weighted_marginal_entropy(logits, same), marginal_entropy(logits))


def test_the_code_settings_start_at_timestep_82(tiny_adm, classifier):
    adapter = GdaAdapter(tiny_adm, classifier, PREPROCESS, GdaSettings(vgg_weight=0, clip_weight=0))
    assert adapter.start_timestep == 82  # guided-diffusion's respacing "50", skip_timesteps 45
    with pytest.raises(ValueError, match="objective"):
        GdaSettings(objective="supervised")  # the code's default uses the label: an oracle
    with pytest.raises(ValueError, match="every loss weight 0"):
        GdaSettings(entropy_weight=0, pixel_weight=0, vgg_weight=0, clip_weight=0)


def test_a_guided_step_moves_the_mean_by_minus_variance_times_the_loss_gradient(tiny_adm, classifier):
    """Two steps (one guided, then the x0 estimate) against the step written out by hand."""
    settings = GdaSettings(steps=2, views=4, entropy_weight=0, vgg_weight=0, clip_weight=0)
    adapter = GdaAdapter(tiny_adm, classifier, PREPROCESS, settings)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    adapted = adapter.adapt(x, sample_generators(0, "s", [0, 1]))

    schedule, generators = adapter.schedule, sample_generators(0, "s", [0, 1])
    x_t = schedule.q_sample(x, 1, randn_per_sample(generators, x.shape[1:])).requires_grad_(True)
    noise = randn_per_sample(generators, x.shape[1:])
    out = schedule.p_mean_variance(tiny_adm(x_t, schedule.model_timesteps(1, 2, "cpu")), x_t, 1, clip_x0=False)
    fac = np.sqrt(1 - schedule.alphas_cumprod[1])
    blend = fac * out.pred_x0 + (1 - fac) * x_t
    loss = 100 * ((blend - x) ** 2).mean(dim=(1, 2, 3)).sum()  # pixel MSE, per image
    (gradient,) = torch.autograd.grad(loss, x_t)
    variance = out.log_variance.exp()
    x_prev = (out.mean + variance.sqrt() * noise - variance * gradient).detach()
    last = schedule.p_mean_variance(tiny_adm(x_prev, schedule.model_timesteps(0, 2, "cpu")), x_prev, 0, False)
    torch.testing.assert_close(adapted, last.pred_x0.detach(), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(gradient, torch.zeros_like(gradient))


def test_each_image_is_adapted_as_it_would_be_alone(tiny_adm, classifier):
    adapter = GdaAdapter(tiny_adm, classifier, PREPROCESS, PIXEL_AND_ENTROPY)
    torch.manual_seed(2)
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    together = adapter.adapt(x, sample_generators(0, "s", range(3)))
    alone = torch.cat([adapter.adapt(x[k : k + 1], sample_generators(0, "s", [k])) for k in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    rows = adapter.probabilities(together)
    torch.testing.assert_close(rows.sum(1), torch.ones(3))


def test_views_carry_gradient_through_the_crop_share_only():
    """GDA's views: m * crop + (1 - m) * chains, the chains constants (made through PIL in the code)."""
    torch.manual_seed(3)
    image = torch.rand(1, 3, 10, 10, requires_grad=True)
    views = augmix_views(image, 5, 8, [torch.Generator().manual_seed(7)], differentiable=True)
    (gradient,) = torch.autograd.grad(views.sum(), image)
    draws = AugMixDraws.draw(torch.Generator().manual_seed(7), 5, 10, 10)
    crop_share = draws.m.float().view(-1, 1, 1, 1) * resized_crops(image[0] * 255, draws.boxes, draws.flips, 8) / 255
    (expected,) = torch.autograd.grad(crop_share.sum(), image)
    torch.testing.assert_close(gradient, expected)
    chains_share = views.detach() - crop_share.detach()  # (1 - m) * the chains: there, but constant
    assert chains_share.abs().max() > 0.05 and ((views >= 0) & (views <= 1)).all()


def test_vgg_features_are_relu4_2_and_relu5_2_and_a_missing_file_says_how_to_obtain_it(tmp_path):
    vgg = VggFeatures()
    assert [type(vgg.features[i - 1]).__name__ for i in VGG_LAYERS] == ["Conv2d", "Conv2d"]
    torch.manual_seed(4)
    x = torch.randn(1, 3, 32, 32)
    relu4_2, relu5_2 = vgg(x)
    torch.testing.assert_close(relu4_2, vgg.features[:23](x))
    assert relu5_2.shape == (1, 512, 2, 2) and (relu5_2 >= 0).all()
    weights = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in vgg.features.state_dict().items()}, weights)
    torch.testing.assert_close(VggFeatures(str(weights))(x)[1], relu5_2)
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d"):
        VggFeatures(str(tmp_path / "missing.pth"))


@pytest.fixture
def tiny_clip(tmp_path):
    """A random-weight open_clip CLIP of a tiny size, registered by name, saved as safetensors."""
    import open_clip

    config = {
        "embed_dim": 16,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny-clip-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "configs")
    torch.manual_seed(5)
    weights = tmp_path / "tiny-clip.safetensors"
    save_weights(open_clip.create_model("tiny-clip-test", pretrained=None), weights)
    return "tiny-clip-test", str(weights)


def test_clip_term_is_one_minus_the_cosine_over_seeded_cutouts(tiny_clip):
    model = load_clip(*tiny_clip)
    style = ClipStyle(model, "photo realistic", cutouts=3)
    torch.manual_seed(6)
    images = torch.rand(2, 3, 20, 20, requires_grad=True)
    losses = style.losses(images, sample_generators(0, "s", [0, 1]))
    assert losses.shape == (2,) and ((losses >= 0) & (losses <= 2)).all()
    (gradient,) = torch.autograd.grad(losses.sum(), images)
    assert gradient.abs().sum() > 0
    again = style.losses(images.detach(), sample_generators(0, "s", [0, 1]))
    torch.testing.assert_close(again, losses.detach())
    a = clip_cutouts(images[0].detach(), 3, 16, torch.Generator().manual_seed(1))
    b = clip_cutouts(images[0].detach(), 3, 16, torch.Generator().manual_seed(2))
    assert a.shape == (3, 3, 16, 16) and not torch.equal(a, b)
    # a CLIP weight without a model is refused rather than run without the term
    with pytest.raises(ValueError, match="clip"):
        schedule = DiffusionSchedule(respacing=50)
        GdaGuidance(
            GdaSettings(vgg_weight=0),
            schedule,
            configure_classifier(create_classifier("resnet10t", 5)),
            PREPROCESS,
            torch.zeros(1, 3, 8, 8),
            sample_generators(0, "s", [0]),
        )


def test_reverse_loop_returns_the_last_x0_estimate_which_the_last_guidance_does_not_change(tiny_adm):
    """return_x0: the last step's x0 estimate, without computing that step's guidance (it moves only the
    sample). Expected: the loop run with a guidance whose last shift is zero, at i = 0 its mean = x0."""
    from sda_core.diffusion.guidance import LowPassGuidance

    class SilentAtLastStep:
        every, jacobian = 1, "full"

        def __init__(self, bound):
            self.bound, self.i = bound, None

        def loss(self, out, x_t, i):
            self.i = i
            return self.bound.loss(out, x_t, i)

        def shift(self, gradient, out):
            return torch.zeros_like(gradient) if self.i == 0 else self.bound.shift(gradient, out)

    schedule = DiffusionSchedule(respacing=10)
    torch.manual_seed(7)
    reference = torch.rand(2, 3, 8, 8) * 2 - 1
    x = torch.randn(2, 3, 8, 8)
    guidance = LowPassGuidance(scale=5.0, downsample=2, norm="sample").towards(reference)

    def run(guide, return_x0):
        generators = sample_generators(0, "s", [0, 1])
        return reverse_diffusion(tiny_adm, schedule, x, 3, generators, guidance=guide, return_x0=return_x0)

    x0 = run(guidance, True)
    torch.testing.assert_close(x0, run(SilentAtLastStep(guidance), False), atol=1e-6, rtol=1e-6)
    assert (x0 - run(guidance, False)).abs().max() > 1e-3  # the last guidance moves the sample, not x0


@pytest.fixture
def job_inputs(tmp_path, tiny_adm, classifier):
    weights, checkpoint = tmp_path / "resnet.safetensors", tmp_path / "adm.safetensors"
    save_weights(classifier, weights)
    save_weights(tiny_adm, checkpoint)
    rng = np.random.default_rng(0)
    store = tmp_path / "target.zarr"
    write_store(store, rng.integers(0, 256, (7, 8, 8, 3), dtype=np.uint8), np.arange(7) % 5, 4, {})
    return str(store), str(weights), str(checkpoint)


def _gda(job_inputs, tiny_adm_spec, output, shard, num_shards, images=None, store_images=True):
    """GDA's job into `output`, its adapted images into `<output>-images` (the workflow's other folder)."""
    store, weights, checkpoint = job_inputs
    per_image_job(
        "gda",
        [store],
        str(output),
        weights={"checkpoint": checkpoint, "classifier": weights},
        model={"timm_name": "resnet10t", "timm_kwargs": {}},
        num_classes=5,
        settings={"method": {"steps": 3, "views": 4, "vgg_weight": 0, "clip_weight": 0}, "spec": tiny_adm_spec},
        preprocess={"resize": 8, "crop": 8},
        images=images,
        batch_size=2,
        shard=shard,
        num_shards=num_shards,
        stream="gda/test",
        seed=0,
        device=torch.device("cpu"),
        images_output=f"{output}-images" if store_images else None,
    )


def _adapted(*outputs):
    """The adapted images and labels the jobs into `outputs` stored."""
    stores = StoreSequence([f"{output}-images" for output in outputs])
    return stores.read(0, len(stores))


def test_gda_stage_does_not_depend_on_the_shard_count_and_resumes(tmp_path, job_inputs, tiny_adm_spec, monkeypatch):
    _gda(job_inputs, tiny_adm_spec, tmp_path / "one.zarr", 0, 1)
    for k in range(2):
        _gda(job_inputs, tiny_adm_spec, tmp_path / f"two-{k}.zarr", k, 2)
    one = read_predictions([tmp_path / "one.zarr"])
    two = read_predictions([tmp_path / f"two-{k}.zarr" for k in range(2)])
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], StoreSequence([job_inputs[0]]).read(0, 7)[1])
    adapted, labels = _adapted(tmp_path / "one.zarr")
    assert adapted.shape == (7, 8, 8, 3) and adapted.dtype == np.uint8
    np.testing.assert_array_equal(labels, one[1])
    for got, expected in zip(_adapted(*(tmp_path / f"two-{k}.zarr" for k in range(2))), (adapted, labels)):
        np.testing.assert_array_equal(got, expected)
    _gda(job_inputs, tiny_adm_spec, tmp_path / "three.zarr", 0, 1, images=3)  # images 0, 2, 4
    np.testing.assert_array_equal(read_predictions([tmp_path / "three.zarr"])[0], one[0][[0, 2, 4]])
    np.testing.assert_array_equal(_adapted(tmp_path / "three.zarr")[0], adapted[[0, 2, 4]])

    real, calls = gda_module.GdaAdapter.adapt, []

    def killed_on_third_chunk(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(gda_module.GdaAdapter, "adapt", killed_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        _gda(job_inputs, tiny_adm_spec, tmp_path / "killed.zarr", 0, 1)
    calls.clear()
    monkeypatch.setattr(gda_module.GdaAdapter, "adapt", lambda self, *a: (calls.append(1), real(self, *a))[1])
    _gda(job_inputs, tiny_adm_spec, tmp_path / "killed.zarr", 0, 1)
    assert len(calls) == 2  # 4 chunks of 2 images, two finished before the kill
    np.testing.assert_array_equal(read_predictions([tmp_path / "killed.zarr"])[0], one[0])
    np.testing.assert_array_equal(_adapted(tmp_path / "killed.zarr")[0], adapted)

    # killed between the renames of its two outputs, the images' then deleted by Snakemake's rerun: the
    # complete predictions alone are no reason to skip a chunk whose images are gone
    shutil.rmtree(tmp_path / "killed.zarr-images")
    os.replace(tmp_path / "killed.zarr", tmp_path / "killed.zarr.partial")
    calls.clear()
    _gda(job_inputs, tiny_adm_spec, tmp_path / "killed.zarr", 0, 1)
    assert len(calls) == 4
    np.testing.assert_array_equal(_adapted(tmp_path / "killed.zarr")[0], adapted)


def test_adapted_images_are_the_quantised_x0_estimates_the_predictions_classify(
    tmp_path, job_inputs, tiny_adm_spec, monkeypatch
):
    """Stored as guided-diffusion quantises (truncation): every stored pixel is floor((x + 1) * 127.5) of
    the image GDA classified; its predictions classify the unquantised estimate, as GDA's code does."""
    real, classified = gda_module.GdaAdapter.adapt, []
    monkeypatch.setattr(
        gda_module.GdaAdapter, "adapt", lambda self, *a: classified.append(real(self, *a)) or classified[-1]
    )
    _gda(job_inputs, tiny_adm_spec, tmp_path / "q.zarr", 0, 1)
    x0 = torch.cat(classified).permute(0, 2, 3, 1).numpy()
    expected = np.clip(np.floor((x0 + np.float32(1)) * np.float32(127.5)), 0, 255)
    np.testing.assert_array_equal(_adapted(tmp_path / "q.zarr")[0], expected)


def test_a_gda_job_without_its_images_output_is_refused(tmp_path, job_inputs, tiny_adm_spec):
    with pytest.raises(ValueError, match="adapted images is needed"):
        _gda(job_inputs, tiny_adm_spec, tmp_path / "x.zarr", 0, 1, store_images=False)


def test_a_nan_from_the_denoiser_stops_the_stage_naming_it(tmp_path, job_inputs, tiny_adm_spec, monkeypatch):
    monkeypatch.setattr(gda_module.GdaAdapter, "adapt", lambda self, x, g: torch.full_like(x, float("nan")))
    with pytest.raises(Exception, match="GDA gda/test, images 0..1 .*denoiser"):
        _gda(job_inputs, tiny_adm_spec, tmp_path / "nan.zarr", 0, 1)
    assert not (tmp_path / "nan.zarr").exists()

"""GDA: guided diffusion-driven adaptation (Tsai et al., CVPR 2024), as its public code runs it.

The unconditional ADM, respaced to `respacing` (50) steps, runs its last `steps` (5): the target image
is noised to index steps - 1 (original timestep 82 of 1000) and denoised by ancestral steps whose mean
is moved by guided-diffusion's conditioning, mu + Sigma * (-dL/dx_t) (Dhariwal & Nichol, alg. 1), with
the x0 estimate unclipped. The loss is taken on the blend

    b = fac * x0_hat + (1 - fac) * x_t,    fac = sqrt(1 - abar_t)

    L = 100 H(b) + 5000 L_clip(b) + 100 L_vgg(b, x) + 100 L_pixel(b, x)    (x: the target image)

- H: the marginal entropy of the source classifier over 16 AugMix views of b ("marginal"), or that
  mixed in log space with the classifier's prediction of x, each weighted by the other's entropy
  ("weighted_marginal", the code's test-time variant that uses the raw image);
- L_clip: 1 - the CLIP cosine similarity of 32 random cut-outs of b to the prompt "photo realistic";
- L_vgg: the mean squared difference of VGG-19's relu4_2 and relu5_2 features of b and x;
- L_pixel: the mean squared difference of b and x.
The code's fifth term, a patch-contrastive loss on the UNet's features (weight 1000), is computed on
detached features and so contributes no gradient: leaving it out changes no step.

The adapted image is the last step's x0 estimate; the prediction is the source classifier's on it.
Every loss is per sample and summed over the batch, so each image's gradient is the one it gets alone
(the code runs one image at a time). docs/baselines.md#gda says where this differs from the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from sda_core.augmix import augmix_views, crop_boxes, resized_crops
from sda_core.diffusion.adapt import check_denoiser, reverse_diffusion
from sda_core.diffusion.schedule import DiffusionOutput, DiffusionSchedule
from sda_core.external_inputs import HOW_TO_OBTAIN
from sda_core.memo import marginal_entropy, mean_log_probs
from sda_core.models.classifiers import IMAGENET_MEAN, IMAGENET_STD, Preprocess, normalise
from sda_core.rng import randn_per_sample

OBJECTIVES = ("weighted_marginal", "marginal")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# torchvision's vgg19().features: the outputs of the ReLUs after conv4_2 and conv5_2. GDA's code reads
# layer 21 (conv4_2, which the in-place ReLU 22 then overwrites) and layer 31 (the ReLU after conv5_2).
VGG_LAYERS = (22, 31)


@dataclass(frozen=True)
class GdaSettings:
    """The public code's settings (docs/baselines.md#gda); a weight of 0 leaves its term out."""

    respacing: int = 50
    steps: int = 5  # the last `steps` of the respaced schedule (the code's skip_timesteps 45 of 50)
    objective: str = "weighted_marginal"
    views: int = 16
    entropy_weight: float = 100.0
    pixel_weight: float = 100.0
    vgg_weight: float = 100.0
    clip_weight: float = 5000.0
    clip_cutouts: int = 32
    clip_prompt: str = "photo realistic"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"GDA objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if not 1 <= self.steps <= self.respacing or self.views < 1 or self.clip_cutouts < 1:
            raise ValueError(f"GDA needs 1 <= steps <= respacing and at least one view and cut-out, got {self}")
        if not any(self.weights().values()):
            raise ValueError("GDA with every loss weight 0 has no guidance; it would be DiffPure from t = 82")

    def weights(self) -> dict[str, float]:
        """Each term's weight, by the name GdaGuidance.terms gives it."""
        return {
            "entropy": self.entropy_weight,
            "pixel": self.pixel_weight,
            "vgg": self.vgg_weight,
            "clip": self.clip_weight,
        }


def weighted_marginal_entropy(view_logits: torch.Tensor, raw_log_probs: torch.Tensor) -> torch.Tensor:
    """GDA's "weighted-marginal" entropy of one image: the views' mean log-probabilities l (as in MEMO's
    marginal entropy) and the raw image's log-probabilities r fused as u = (l H(r) + r H(l)) / (H(l) + H(r)),
    then -sum(exp(u) u). The weights carry gradient through H(l), as in the code."""
    log_mean = mean_log_probs(view_logits)
    views_entropy = -(log_mean.softmax(0) * log_mean.log_softmax(0)).sum()
    raw_entropy = -(raw_log_probs.softmax(0) * raw_log_probs.log_softmax(0)).sum()
    fused = (log_mean * raw_entropy + raw_log_probs * views_entropy) / (raw_entropy + views_entropy)
    return -(fused * fused.exp()).sum()


def configure_classifier(model: nn.Module) -> nn.Module:
    """Eval mode and frozen weights: the guidance needs d loss / d image, never d loss / d weights."""
    model.eval()
    model.requires_grad_(False)
    return model


def check_classifier(model: nn.Module) -> None:
    if model.training or any(p.requires_grad for p in model.parameters()):
        raise RuntimeError("GDA's classifier must be configured with configure_classifier() (eval, frozen)")


class VggFeatures(nn.Module):
    """VGG-19's relu4_2 and relu5_2 feature maps (torchvision's layers), weights from a local file of
    torchvision's vgg19 state dict (only its `features.` tensors up to relu5_2 are read); None: random,
    for tests."""

    def __init__(self, weights: str | None = None):
        from torchvision.models.vgg import cfgs, make_layers

        from sda_core.checkpoints import load_state, read_state_dict

        super().__init__()
        self.features = make_layers(cfgs["E"])[: VGG_LAYERS[-1] + 1]
        if weights is not None:
            state = read_state_dict(weights, HOW_TO_OBTAIN["vgg"])
            prefix = "features."
            used = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            used = {k: v for k, v in used.items() if int(k.split(".")[0]) <= VGG_LAYERS[-1]}
            load_state(self.features, used, weights)
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG_LAYERS:
                outputs.append(x)
        return outputs


def load_clip(model_name: str, weights: str) -> nn.Module:
    """An open_clip model built by name (e.g. ViT-B-16-quickgelu, OpenAI's ViT-B/16) with local weights."""
    import open_clip

    from sda_core.checkpoints import load_weights

    model = open_clip.create_model(model_name, pretrained=None)
    return load_weights(model, weights, HOW_TO_OBTAIN["clip"]).requires_grad_(False).eval()


def clip_cutouts(image: torch.Tensor, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """GDA's CLIP cut-outs of one image (C, H, W) in [0, 1]: (count, C, size, size). Each is torchvision's
    RandomResizedCrop(size), RandomPerspective(0.6, p=1) (bilinear) and RandomAffine(degrees 30-70,
    translate 0.1/0.3, scale 0.5-0.75) (nearest), filled with 0, their draws from `generator`."""
    height, width = image.shape[-2:]
    boxes = crop_boxes(generator, count, height, width)
    crops = resized_crops(image, boxes, torch.zeros(count, dtype=torch.bool), size)

    def randint(low: int, high: int) -> int:
        return int(torch.randint(low, high, (1,), generator=generator))

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(1, generator=generator, dtype=torch.float64))

    cutouts = []
    for crop in crops:
        # RandomPerspective.get_params(size, size, 0.6)
        dx, dy = int(0.6 * (size // 2)), int(0.6 * (size // 2))
        end = [
            [randint(0, dx + 1), randint(0, dy + 1)],
            [randint(size - dx - 1, size), randint(0, dy + 1)],
            [randint(size - dx - 1, size), randint(size - dy - 1, size)],
            [randint(0, dx + 1), randint(size - dy - 1, size)],
        ]
        start = [[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]]
        # torchvision's fill=0 is its sampled image times its sampled coverage mask, done in place (which
        # autograd refuses); the same out of place:
        warped = TF.perspective(crop, start, end, interpolation=InterpolationMode.BILINEAR, fill=None)
        coverage = TF.perspective(torch.ones_like(crop[:1]), start, end, interpolation=InterpolationMode.BILINEAR)
        crop = warped * coverage
        # RandomAffine.get_params(degrees=(30, 70), translate=(0.1, 0.3), scale=(0.5, 0.75)); with nearest
        # sampling fill=0 is grid_sample's zero padding
        angle = uniform(30, 70)
        translate = [round(uniform(-0.1 * size, 0.1 * size)), round(uniform(-0.3 * size, 0.3 * size))]
        scale = uniform(0.5, 0.75)
        crop = TF.affine(crop, angle, translate, scale, [0.0, 0.0], interpolation=InterpolationMode.NEAREST, fill=None)
        cutouts.append(crop)
    return torch.stack(cutouts)


class ClipStyle:
    """GDA's CLIP term: per image, the mean over its cut-outs of 1 - cos(CLIP(cut-out), CLIP(prompt))."""

    def __init__(self, model: nn.Module, prompt: str, cutouts: int):
        import open_clip

        self.model = model
        self.cutouts = cutouts
        size = model.visual.image_size
        self.size = size[0] if isinstance(size, tuple | list) else size
        device = next(model.parameters()).device
        with torch.no_grad():
            text = model.encode_text(open_clip.tokenize([prompt]).to(device)).float()
        self.text = F.normalize(text, dim=-1)

    def losses(self, images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """(B,) for images (B, C, H, W) in [0, 1], image k's cut-outs drawn from generators[k]."""
        cutouts = torch.cat([clip_cutouts(x, self.cutouts, self.size, g) for x, g in zip(images, generators)])
        embeddings = F.normalize(self.model.encode_image(normalise(cutouts, CLIP_MEAN, CLIP_STD)).float(), dim=-1)
        return (1 - embeddings @ self.text.T).view(len(images), self.cutouts).mean(1)


def vgg_input(x: torch.Tensor) -> torch.Tensor:
    """GDA's code normalises images in [-1, 1] with ImageNet's [0, 1] statistics before VGG; kept as it is."""
    return normalise(x, IMAGENET_MEAN, IMAGENET_STD)


class GdaGuidance:
    """GDA's loss towards a batch of target images x in [-1, 1] (the reverse loop's Guidance): every
    step, through the denoiser, as its code does."""

    every = 1
    jacobian = "full"

    def __init__(
        self,
        settings: GdaSettings,
        schedule: DiffusionSchedule,
        classifier: nn.Module,
        preprocess: Preprocess,
        reference: torch.Tensor,
        generators: Sequence[torch.Generator],
        vgg: VggFeatures | None = None,
        clip: ClipStyle | None = None,
    ):
        check_classifier(classifier)
        for name, term, weight in (("vgg", vgg, settings.vgg_weight), ("clip", clip, settings.clip_weight)):
            if weight and term is None:
                raise ValueError(f"GDA's {name} term has weight {weight} but no model")
        self.settings, self.classifier, self.preprocess = settings, classifier, preprocess
        self.reference, self.generators, self.vgg, self.clip = reference, generators, vgg, clip
        self.fac = np.sqrt(1.0 - schedule.alphas_cumprod)
        with torch.no_grad():
            raw = classifier(preprocess(((reference + 1) / 2).clamp(0, 1))).float()
            self.raw_log_probs = raw.log_softmax(dim=1)
            self.vgg_reference = vgg(vgg_input(reference)) if vgg is not None and settings.vgg_weight else None
        self.last_terms: dict[str, float] = {}

    def entropies(self, blend: torch.Tensor) -> torch.Tensor:
        """(B,) the objective's entropy of each image's AugMix views."""
        v = self.settings.views
        views = augmix_views(((blend + 1) / 2).clamp(0, 1), v, self.preprocess.crop, self.generators, True)
        logits = self.classifier(self.preprocess.normalise(views)).float().view(len(blend), v, -1)
        if self.settings.objective == "marginal":
            return torch.stack([marginal_entropy(rows) for rows in logits])
        return torch.stack([weighted_marginal_entropy(rows, raw) for rows, raw in zip(logits, self.raw_log_probs)])

    def terms(self, blend: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each weighted term's value per image (B,)."""
        s = self.settings
        terms = {}
        if s.entropy_weight:
            terms["entropy"] = self.entropies(blend)
        if s.pixel_weight:
            terms["pixel"] = ((blend - self.reference) ** 2).flatten(1).mean(1)
        if s.vgg_weight:
            features = self.vgg(vgg_input(blend))
            terms["vgg"] = sum(((a - b) ** 2).flatten(1).mean(1) for a, b in zip(features, self.vgg_reference))
        if s.clip_weight:
            terms["clip"] = self.clip.losses((blend + 1) / 2, self.generators)
        return terms

    def loss(self, out: DiffusionOutput, x_t: torch.Tensor, i: int) -> torch.Tensor:
        fac = float(self.fac[i])
        blend = out.pred_x0 * fac + x_t * (1 - fac)
        terms = self.terms(blend)
        weights = self.settings.weights()
        self.last_terms = {name: float(value.detach().mean()) for name, value in terms.items()}
        return sum(weights[name] * value.sum() for name, value in terms.items())

    def shift(self, gradient: torch.Tensor, out: DiffusionOutput) -> torch.Tensor:
        """guided-diffusion's condition_mean: Sigma * grad log p, with grad log p = -dL/dx_t."""
        return -out.log_variance.exp() * gradient


class GdaAdapter:
    """GDA around an unconditional denoiser (configure_denoiser) and a source classifier
    (configure_classifier); VGG and CLIP where their weights are non-zero."""

    def __init__(
        self,
        denoiser: nn.Module,
        classifier: nn.Module,
        preprocess: Preprocess,
        settings: GdaSettings,
        vgg: VggFeatures | None = None,
        clip: ClipStyle | None = None,
        precision: str = "fp32",
    ):
        check_denoiser(denoiser)
        check_classifier(classifier)
        self.denoiser, self.classifier, self.preprocess = denoiser, classifier, preprocess
        self.settings, self.vgg, self.clip, self.precision = settings, vgg, clip, precision
        self.schedule = DiffusionSchedule(respacing=settings.respacing)
        self.last_terms: dict[str, float] = {}

    @property
    def start_timestep(self) -> int:
        """The original timestep the target images are noised to (82 with the code's settings)."""
        return int(self.schedule.timesteps[self.settings.steps - 1])

    def adapt(self, images: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """GDA's adapted images (the last x0 estimates, unclipped) of images (B, C, H, W) in [-1, 1] at the
        denoiser's size; image k's noise, views and cut-outs drawn from generators[k]."""
        level = self.settings.steps - 1  # noised to the level the first denoising step assumes, as the code
        guidance = GdaGuidance(
            self.settings, self.schedule, self.classifier, self.preprocess, images, generators, self.vgg, self.clip
        )
        noise = randn_per_sample(generators, images.shape[1:], device=images.device)
        x = self.schedule.q_sample(images, level, noise)
        adapted = reverse_diffusion(
            self.denoiser,
            self.schedule,
            x,
            level,
            generators,
            guidance=guidance,
            precision=self.precision,
            clip_x0=False,
            return_x0=True,
        )
        self.last_terms = guidance.last_terms
        return adapted

    def probabilities(self, adapted: torch.Tensor) -> torch.Tensor:
        """The source classifier's softmax rows on adapted images in [-1, 1] (clamped, as the code does)."""
        with torch.no_grad():
            return self.classifier(self.preprocess(((adapted + 1) / 2).clamp(0, 1))).float().softmax(dim=1)


def per_image_predictor(
    weights: dict[str, str],
    model: dict,
    num_classes: int,
    preprocess: dict,
    device: torch.device,
    method: dict,
    spec: dict,
    clip_model: str | None = None,
    precision: str = "auto",
    compile_mode: str = "none",
):
    """GDA as a per-image stage (sda_core.jobs.per_image): each image adapted by the unconditional
    denoiser (weights["checkpoint"]) under the guidance of the source classifier (weights["classifier"]),
    and classified as it is made (on the unquantised x0 estimate, as GDA's code does). method: GdaSettings'
    fields; VGG (weights["vgg"]) and CLIP (weights["clip"]) are loaded where their terms are on. The
    adapted images are kept, quantised, for the job to store (PerImagePredictor.adapted_images)."""
    from sda_core.compilation import compile_denoiser
    from sda_core.diffusion.adapt import configure_denoiser
    from sda_core.finite import check_finite
    from sda_core.methods import PerImagePredictor
    from sda_core.models.classifiers import load_classifier
    from sda_core.models.denoisers import load_denoiser
    from sda_core.pixels import from_model_range, resize, to_model_range
    from sda_core.precision import set_up_precision

    precision = set_up_precision(precision, device)  # resolved: what the fingerprint records
    settings = GdaSettings(**method)
    timm_name, timm_kwargs = model["timm_name"], model["timm_kwargs"]
    checkpoint, classifier_weights = weights["checkpoint"], weights["classifier"]
    vgg_weights, clip_weights = weights.get("vgg"), weights.get("clip")
    denoiser = compile_denoiser(configure_denoiser(load_denoiser(spec, checkpoint).to(device)), compile_mode, device)
    classifier = load_classifier(timm_name, num_classes, timm_kwargs, classifier_weights).to(device)
    vgg = VggFeatures(vgg_weights).to(device) if settings.vgg_weight else None
    clip = None
    if settings.clip_weight:
        clip = ClipStyle(load_clip(clip_model, clip_weights).to(device), settings.clip_prompt, settings.clip_cutouts)
    adapter = GdaAdapter(
        denoiser, configure_classifier(classifier), Preprocess(**preprocess), settings, vgg, clip, precision
    )

    last_adapted: list[np.ndarray] = []

    def probabilities(images: np.ndarray, generators, where: str) -> torch.Tensor:
        adapted = adapter.adapt(resize(to_model_range(images, device), spec["image_size"]), generators)
        check_finite(adapted, f"{where}, denoiser {checkpoint}, classifier {classifier_weights}")
        last_adapted[:] = [from_model_range(adapted)]  # stored as DDA's are: quantised, for f' (SDA on GDA)
        return adapter.probabilities(adapted)

    def report() -> str:
        terms = ", ".join(f"{name} {value:.4g}" for name, value in adapter.last_terms.items())
        return f"; last guided step's terms: {terms}"

    return PerImagePredictor(
        probabilities=probabilities,
        fingerprint={
            "spec": spec,
            "checkpoint": checkpoint,
            "model": [timm_name, timm_kwargs],
            "weights": classifier_weights,
            "settings": settings,
            "vgg": vgg_weights if settings.vgg_weight else None,
            "clip": [clip_model, clip_weights] if settings.clip_weight else None,
            "preprocess": preprocess,
            "precision": precision,
            "compile": compile_mode,
        },
        description=(
            f"{timm_name}, {settings.steps} of {settings.respacing} steps from t={adapter.start_timestep}, {settings}"
        ),
        checked=f"classifier {classifier_weights}",
        report=report,
        adapted_images=lambda: last_adapted[0],
        image_size=spec["image_size"],
    )

"""AugMix views of one image, as MEMO draws them at test time (docs/baselines.md#memo).

Each view: a random resized crop to the classifier's input size and a random horizontal flip (the
"original"), then three chains of one to three operations drawn uniformly from nine mild ones
(autocontrast, equalize, rotate, solarize, shear x/y, translate x/y, posterize) at severity 1, mixed
with Dirichlet(1, 1, 1) weights and blended with the original by m ~ Beta(1, 1).

The views of an image are made together, as one batch, with every random draw taken from that
image's own generator (sda_core.rng), so they depend only on (seed, stream, index). Operations work
on values in [0, 255] rounded to integers after each one, as the PIL operations of the reference do;
geometric ones resample bilinearly and fill with (128, 0, 0) where they leave the image: the reference
passes fillcolor=128 to PIL for RGB images, which PIL takes as red 128, green and blue 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

OPERATIONS = (
    "autocontrast",
    "equalize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "posterize",
)
WIDTH = 3  # chains per view
MAX_DEPTH = 3  # operations per chain: uniform in 1..MAX_DEPTH
SEVERITY = 1  # the reference's setting: every magnitude below is drawn at it
CROP_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults
CROP_RATIO = (3 / 4, 4 / 3)
FILL = (128.0, 0.0, 0.0)  # PIL's reading of the reference's fillcolor=128 on an RGB image


def _uniform(generator: torch.Generator, n: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def crop_boxes(generator: torch.Generator, n: int, height: int, width: int) -> torch.Tensor:
    """(n, 4) boxes (top, left, h, w) drawn as torchvision's RandomResizedCrop.get_params does: ten
    tries of an area fraction and a log-uniform aspect ratio, the first that fits, else the centre crop
    clamped to the ratios. All ten tries are drawn for every box, so the draws never depend on the image."""
    tries = 10
    target = height * width * _uniform(generator, n * tries, *CROP_SCALE).view(n, tries)
    ratio = torch.exp(_uniform(generator, n * tries, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))).view(n, tries)
    position = _uniform(generator, 2 * n * tries).view(n, tries, 2)
    w = torch.round(torch.sqrt(target * ratio))
    h = torch.round(torch.sqrt(target / ratio))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(1, keepdim=True)  # the first try that fits (0 if none does)
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    top = torch.floor(position[:, :, 0].gather(1, first)[:, 0] * (height - h + 1))
    left = torch.floor(position[:, :, 1].gather(1, first)[:, 0] * (width - w + 1))
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        fallback_w, fallback_h = width, round(width / CROP_RATIO[0])
    elif in_ratio > CROP_RATIO[1]:
        fallback_h, fallback_w = height, round(height * CROP_RATIO[1])
    else:
        fallback_w, fallback_h = width, height
    fallback = torch.tensor(
        [(height - fallback_h) // 2, (width - fallback_w) // 2, fallback_h, fallback_w], dtype=torch.float64
    )
    return torch.where(fits.any(1, keepdim=True), torch.stack([top, left, h, w], 1), fallback)


def _resample(x: torch.Tensor, theta: torch.Tensor, size: int, fill: tuple[float, ...] | None) -> torch.Tensor:
    """Bilinear resampling of (n, C, H, W) at the points theta (n, 2, 3) maps each output point to,
    in grid_sample's normalised coordinates; outside points take `fill` (None: the edge value)."""
    grid = F.affine_grid(theta.to(x), (x.shape[0], x.shape[1], size, size), align_corners=False)
    if fill is None:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # PIL's rule: a point inside the image's extent is interpolated from the nearest pixels (edge pixels
    # repeated), a point outside it takes the fill
    inside = (grid >= -1).all(-1) & (grid < 1).all(-1)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    fill = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return torch.where(inside.unsqueeze(1), sampled, fill)


def resized_crops(x: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int) -> torch.Tensor:
    """Crop box k of image x (C, H, W), resize it to size x size (bilinear), flipped where flips[k]."""
    height, width = x.shape[-2:]
    top, left, h, w = boxes.unbind(1)
    # the box's centre and half-extent in normalised coordinates (align_corners=False)
    cx, cy = (2 * left + w) / width - 1, (2 * top + h) / height - 1
    sx, sy = w / width, h / height
    sx = torch.where(flips, -sx, sx)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1)
    views = x.unsqueeze(0).expand(len(boxes), -1, -1, -1)
    return _resample(views, theta, size, fill=None)


def _affine(x: torch.Tensor, matrices: torch.Tensor, offsets_px: torch.Tensor) -> torch.Tensor:
    """PIL's Image.transform(AFFINE) on square images: the output point u (pixel units, origin at the
    top-left corner) samples the input at A u + c; in normalised coordinates that is
    A n + (A 1 + 2 c / S - 1)."""
    size = x.shape[-1]
    ones = torch.ones(len(matrices), 2, 1, dtype=matrices.dtype, device=matrices.device)
    offset = (matrices @ ones).squeeze(2) + 2 * offsets_px / size - 1
    theta = torch.cat([matrices, offset.unsqueeze(2)], 2)
    return _resample(x, theta, size, FILL)


def apply_operation(name: str, x: torch.Tensor, level: torch.Tensor, negate: torch.Tensor) -> torch.Tensor:
    """One operation on a batch (n, C, S, S) in [0, 255] at magnitude `level` per image (U(0.1, SEVERITY)),
    scaled as the reference's int_parameter / float_parameter do (level * max / 10); `negate` flips the
    sign of a geometric magnitude (AugMix does so with probability 1/2)."""
    n, size = x.shape[0], x.shape[-1]
    sign = torch.where(negate, -1.0, 1.0).to(level)
    eye = torch.eye(2, dtype=level.dtype, device=level.device).repeat(n, 1, 1)
    zeros = torch.zeros(n, 2, dtype=level.dtype, device=level.device)
    if name == "autocontrast":  # PIL: stretch each channel's [min, max] to [0, 255], truncating
        low = x.amin(dim=(2, 3), keepdim=True)
        high = x.amax(dim=(2, 3), keepdim=True)
        # PIL's int(x * scale + offset) in float64; `scalar / tensor` would round the scale differently
        span = (high - low).clamp(min=1e-12).double()
        scale = torch.full_like(span, 255.0) / span
        stretched = torch.floor(x.double() * scale + -(low.double() * scale)).clamp(0, 255)
        return torch.where(high > low, stretched.to(x.dtype), x)
    if name == "equalize":  # torchvision's equalize follows PIL's ImageOps.equalize
        return TF.equalize(x.round().to(torch.uint8)).to(x.dtype)
    if name == "posterize":  # keep 4 - int(level * 4 / 10) bits: 4 at severity 1
        bits = 4 - torch.floor(level * 4 / 10).long()
        step = (2 ** (8 - bits)).to(x.dtype).view(n, 1, 1, 1)
        return torch.floor(x / step) * step
    if name == "solarize":  # invert the values at or above 256 - int(level * 256 / 10)
        threshold = (256 - torch.floor(level * 256 / 10)).to(x.dtype).view(n, 1, 1, 1)
        return torch.where(x >= threshold, 255 - x, x)
    if name == "rotate":  # int(level * 30 / 10) degrees about the centre
        radians = sign * torch.floor(level * 30 / 10) * math.pi / 180
        cos, sin = torch.cos(radians), torch.sin(radians)
        theta = torch.stack([torch.stack([cos, -sin, 0 * cos], 1), torch.stack([sin, cos, 0 * cos], 1)], 1)
        return _resample(x, theta, size, FILL).round()
    if name in ("shear_x", "shear_y"):  # level * 0.3 / 10
        row, column = (0, 1) if name == "shear_x" else (1, 0)
        eye[:, row, column] = sign * level * 0.3 / 10
        return _affine(x, eye, zeros).round()
    if name in ("translate_x", "translate_y"):  # int(level * (S / 3) / 10) pixels
        zeros[:, 0 if name == "translate_x" else 1] = sign * torch.floor(level * (size / 3) / 10)
        return _affine(x, eye, zeros).round()
    raise ValueError(f"unknown AugMix operation {name!r}; valid: {', '.join(OPERATIONS)}")


@dataclass(frozen=True)
class AugMixDraws:
    """Every random draw of the views of one image, in a fixed order from its generator: crop boxes,
    flips, chain weights, m, then per chain its depths and per position the operation, level and sign."""

    boxes: torch.Tensor  # (V, 4) top, left, height, width
    flips: torch.Tensor  # (V,)
    weights: torch.Tensor  # (V, WIDTH), Dirichlet(1, ..., 1)
    m: torch.Tensor  # (V,), Beta(1, 1)
    depth: torch.Tensor  # (WIDTH, V) in 1..MAX_DEPTH
    choice: torch.Tensor  # (WIDTH, MAX_DEPTH, V) indices into OPERATIONS
    level: torch.Tensor  # (WIDTH, MAX_DEPTH, V) in [0.1, SEVERITY]
    negate: torch.Tensor  # (WIDTH, MAX_DEPTH, V)

    @classmethod
    def draw(cls, generator: torch.Generator, views: int, height: int, width: int) -> AugMixDraws:
        boxes = crop_boxes(generator, views, height, width)
        flips = _uniform(generator, views) < 0.5
        exp = -torch.log1p(-_uniform(generator, views * WIDTH).view(views, WIDTH))  # Exp(1)
        m = _uniform(generator, views)
        depth = torch.randint(1, MAX_DEPTH + 1, (WIDTH, views), generator=generator)
        choice = torch.randint(0, len(OPERATIONS), (WIDTH, MAX_DEPTH, views), generator=generator)
        level = _uniform(generator, WIDTH * MAX_DEPTH * views, 0.1, SEVERITY).view(WIDTH, MAX_DEPTH, views)
        negate = (_uniform(generator, WIDTH * MAX_DEPTH * views) > 0.5).view(WIDTH, MAX_DEPTH, views)
        return cls(boxes, flips, exp / exp.sum(1, keepdim=True), m, depth, choice, level, negate)

    def to(self, device: torch.device) -> AugMixDraws:
        return AugMixDraws(*(getattr(self, f.name).to(device) for f in fields(self)))

    @classmethod
    def stack(cls, draws: Sequence[AugMixDraws]) -> AugMixDraws:
        """The draws of several images as one set of views (the views axis concatenated)."""
        return cls(
            *(
                torch.cat([getattr(d, f.name) for d in draws], dim=-1 if f.name in _CHAIN_FIELDS else 0)
                for f in fields(cls)
            )
        )


_CHAIN_FIELDS = ("depth", "choice", "level", "negate")


def _chain(x: torch.Tensor, draws: AugMixDraws, chain: int) -> torch.Tensor:
    """Chain `chain` of every view of x: its operations applied in order, each batched over the views
    that drew it."""
    for position in range(MAX_DEPTH):
        choice = draws.choice[chain, position]
        active = draws.depth[chain] > position
        out = x.clone()
        for k, name in enumerate(OPERATIONS):
            members = torch.nonzero(active & (choice == k)).flatten()
            if len(members):
                out[members] = apply_operation(
                    name, x[members], draws.level[chain, position, members], draws.negate[chain, position, members]
                )
        x = out
    return x


def augmix_views(
    images: torch.Tensor,
    views: int,
    size: int,
    generators: Sequence[torch.Generator],
    differentiable: bool = False,
) -> torch.Tensor:
    """`views` AugMix views of each image of (B, C, H, W) in [0, 1], image k's from generators[k]:
    (B * views, C, size, size) in [0, 1], image k's views at rows k * views ... (k + 1) * views - 1.
    Made together so each operation runs once over every view that drew it, on the images' device (the
    draws are made on the CPU, so a GPU run draws the same views up to float rounding).

    MEMO's views (the default) start from the crop rounded to 8 bits, as PIL images are. differentiable:
    GDA's views, whose gradient flows to the images through the crop's share m of the blend, as in GDA's
    code: the crop is blended as it is, and the chains run on its 8-bit copy (truncated, as ToPILImage
    does) and are constants for the gradient."""
    height, width = images.shape[-2:]
    draws = AugMixDraws.stack([AugMixDraws.draw(g, views, height, width) for g in generators]).to(images.device)
    crops = torch.cat(
        [
            resized_crops(
                image.float() * 255,
                draws.boxes[k * views : (k + 1) * views],
                draws.flips[k * views : (k + 1) * views],
                size,
            )
            for k, image in enumerate(images)
        ]
    )
    if differentiable:
        originals = crops.detach().floor().clamp(0, 255)
        blended = crops
    else:
        originals = blended = crops.round().clamp(0, 255)
    weights = draws.weights.to(originals.dtype)
    mixed = sum(weights[:, i].view(-1, 1, 1, 1) * _chain(originals, draws, i) for i in range(WIDTH))
    m = draws.m.to(originals.dtype).view(-1, 1, 1, 1)
    return ((m * blended + (1 - m) * mixed) / 255).to(images.dtype)

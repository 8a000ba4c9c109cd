"""ADM UNet: the denoiser of Dhariwal & Nichol (2021), OpenAI's guided-diffusion `UNetModel`.

Written from scratch, but the module tree and parameter names are exactly the reference ones, so the
official checkpoints (e.g. ``256x256_diffusion_uncond.pt``) load with ``strict=True`` and compute the
same function. Only 2-D images are supported. There are no fp16-conversion or gradient-checkpointing
helpers: use ``torch.autocast`` and ``torch.utils.checkpoint`` from the outside when needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from sda_core.models.specs import resolve_spec


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos | sin] of (possibly fractional) timesteps, shape (N, dim)."""
    half = dim // 2
    # The frequencies are computed on the CPU in float32 and then moved, as the reference does, so
    # that the checkpoint sees bit-identical frequencies on every device.
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back: half-precision statistics are unstable."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int, groups: int = 32) -> GroupNorm32:
    """The reference uses 32 groups everywhere; fewer let tiny models have fewer than 32 channels."""
    return GroupNorm32(groups, channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero-initialise a layer that closes a residual branch, so every block starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class TimestepBlock(nn.Module):
    """Marker for layers whose forward takes the timestep embedding as a second argument."""


class TimestepEmbedSequential(nn.Sequential):
    """Sequential that hands the timestep embedding to the layers that take it."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling, optionally followed by a 3x3 conv (`conv`)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """2x downsampling (`op`): a strided 3x3 conv, or 2x2 average pooling without parameters."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        if use_conv:
            self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(TimestepBlock):
    """Residual block conditioned on the timestep embedding, optionally resampling (resblock_updown).

    With `use_scale_shift_norm` the embedding gives a FiLM scale and shift applied after the output
    norm; otherwise it is added to the features before it.
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_conv: bool = False,
        use_scale_shift_norm: bool = False,
        up: bool = False,
        down: bool = False,
        norm_groups: int = 32,
    ):
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm

        self.in_layers = nn.Sequential(
            normalization(channels, norm_groups),
            nn.SiLU(),
            nn.Conv2d(channels, self.out_channels, 3, padding=1),
        )

        # Resampling happens between the activation and the conv of `in_layers` (cheaper conv on the
        # downsampled side), and the skip path is resampled the same way.
        self.updown = up or down
        if up:
            self.h_upd = Upsample(channels, False)
            self.x_upd = Upsample(channels, False)
        elif down:
            self.h_upd = Downsample(channels, False)
            self.x_upd = Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()

        self.emb_layers = nn.Sequential(
            nn.SiLU(),
            nn.Linear(emb_channels, 2 * self.out_channels if use_scale_shift_norm else self.out_channels),
        )
        self.out_layers = nn.Sequential(
            normalization(self.out_channels, norm_groups),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1)),
        )

        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        elif use_conv:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 3, padding=1)
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:
            in_rest, in_conv = self.in_layers[:-1], self.in_layers[-1]
            h = in_conv(self.h_upd(in_rest(x)))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)

        emb_out = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.use_scale_shift_norm:
            out_norm, out_rest = self.out_layers[0], self.out_layers[1:]
            scale, shift = emb_out.chunk(2, dim=1)
            h = out_rest(out_norm(h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention on channel-first (B, C, T) tensors, returning (B, C, T).

    The reference scales q and k each by 1/sqrt(sqrt(C)) before the dot product; that is the
    1/sqrt(C) scaling that scaled_dot_product_attention applies by default.
    """
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class QKVAttention(nn.Module):
    """Multi-head attention over a qkv tensor of shape (B, 3*H*C, T).

    legacy_order=True splits heads first, then q/k/v (QKVAttentionLegacy, the order of the released
    checkpoints); False splits q/k/v first, then heads (guided-diffusion's `use_new_attention_order`).
    """

    def __init__(self, n_heads: int, legacy_order: bool = True):
        super().__init__()
        self.n_heads = n_heads
        self.legacy_order = legacy_order

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        bs, width, length = qkv.shape
        ch = width // (3 * self.n_heads)
        if self.legacy_order:
            q, k, v = qkv.reshape(bs * self.n_heads, 3 * ch, length).split(ch, dim=1)
        else:
            q, k, v = (t.reshape(bs * self.n_heads, ch, length) for t in qkv.chunk(3, dim=1))
        return _attention(q, k, v).reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    """Residual self-attention over all spatial positions.

    Heads: `num_head_channels` channels each when given (it wins), otherwise `num_heads` heads.
    `qkv` and `proj_out` are 1x1 Conv1d layers, as in the checkpoints.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_new_attention_order: bool = False,
        norm_groups: int = 32,
    ):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"channels {channels} not divisible by num_head_channels {num_head_channels}")
            self.num_heads = channels // num_head_channels
        if channels % self.num_heads:
            raise ValueError(f"channels {channels} not divisible by num_heads {self.num_heads}")
        self.norm = normalization(channels, norm_groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.attention = QKVAttention(self.num_heads, legacy_order=not use_new_attention_order)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = self.proj_out(self.attention(self.qkv(self.norm(x))))
        return (x + h).reshape(b, c, *spatial)


class ADMUNet(nn.Module):
    """The guided-diffusion UNet: timestep (and optional class) embedding, an encoder of ResBlocks
    (+ attention at the downsample rates in `attention_resolutions`), a middle block, and a decoder
    that concatenates the encoder's skip features.

    Arguments and defaults are those of guided-diffusion's `UNetModel` (minus use_checkpoint and
    use_fp16). `attention_resolutions` holds downsample *rates* (image_size // resolution), see
    `attention_downsample_rates`. `num_heads_upsample=-1` means `num_heads` in the decoder.
    `norm_groups` (not in the reference, which fixes 32) only changes GroupNorm's grouping, not the
    parameter names or shapes. `mask_classes` (not in the reference) conditions the model on a label
    map instead of a class: its one-hot channels (none for IGNORE_INDEX pixels) are concatenated to
    the input, as guided-diffusion's super-resolution model concatenates its low-resolution image;
    only the first convolution grows. `image_size` is informational: the network runs on any size divisible by
    2**(len(channel_mult)-1).
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Iterable[int],
        dropout: float = 0.0,
        channel_mult: tuple[int, ...] = (1, 2, 4, 8),
        conv_resample: bool = True,
        dims: int = 2,
        num_classes: int | None = None,
        num_heads: int = 1,
        num_head_channels: int = -1,
        num_heads_upsample: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        use_new_attention_order: bool = False,
        norm_groups: int = 32,
        mask_classes: int | None = None,
    ):
        super().__init__()
        if num_classes is not None and mask_classes is not None:
            raise ValueError("a model is conditioned on a class (num_classes) or a label map (mask_classes), not both")
        if dims != 2:
            raise ValueError(f"only 2-D images are supported (dims=2), got dims={dims}")
        if num_heads_upsample == -1:
            num_heads_upsample = num_heads
        attention_resolutions = tuple(attention_resolutions)

        self.image_size = image_size
        self.in_channels = in_channels
        self.model_channels = model_channels
        self.out_channels = out_channels
        self.num_classes = num_classes
        self.mask_classes = mask_classes

        time_embed_dim = 4 * model_channels
        self.time_embed = nn.Sequential(
            nn.Linear(model_channels, time_embed_dim),
            nn.SiLU(),
            nn.Linear(time_embed_dim, time_embed_dim),
        )
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, time_embed_dim)

        def res_block(ch_in: int, ch_out: int, **updown) -> ResBlock:
            return ResBlock(
                ch_in,
                time_embed_dim,
                dropout,
                out_channels=ch_out,
                use_scale_shift_norm=use_scale_shift_norm,
                norm_groups=norm_groups,
                **updown,
            )

        def attn_block(ch_: int, heads: int) -> AttentionBlock:
            return AttentionBlock(
                ch_,
                num_heads=heads,
                num_head_channels=num_head_channels,
                use_new_attention_order=use_new_attention_order,
                norm_groups=norm_groups,
            )

        # Encoder. `skip_chans` records the channels of every encoder output; the decoder consumes
        # them in reverse, one per block.
        ch = int(channel_mult[0] * model_channels)
        first_in = in_channels + (mask_classes or 0)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(first_in, ch, 3, padding=1))])
        skip_chans = [ch]
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn_block(ch, num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                down = res_block(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample)
                self.input_blocks.append(TimestepEmbedSequential(down))
                skip_chans.append(ch)
                ds *= 2

        # The middle block always has attention, whatever `attention_resolutions` says.
        self.middle_block = TimestepEmbedSequential(
            res_block(ch, ch),
            attn_block(ch, num_heads),
            res_block(ch, ch),
        )

        # Decoder: one block more per level than the encoder, to also consume the resampling skips.
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + skip_chans.pop(), int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn_block(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res_block(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(
            normalization(ch, norm_groups),
            nn.SiLU(),
            zero_module(nn.Conv2d(ch, out_channels, 3, padding=1)),
        )

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, in_channels, H, W); timesteps: (N,) or a scalar broadcast over the batch;
        y: (N,) class labels, given iff the model is class-conditional, or (N, H, W) label maps, given
        iff it is mask-conditional. Returns (N, out_channels, H, W)."""
        conditional = self.num_classes is not None or self.mask_classes is not None
        assert (y is not None) == conditional, "y must be given if and only if the model is conditional"
        timesteps = torch.as_tensor(timesteps, device=x.device).expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        if self.num_classes is not None:
            assert y.shape == (x.shape[0],), f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}"
            emb = emb + self.label_emb(y)
        h = x
        if self.mask_classes is not None:
            assert y.shape == (x.shape[0], *x.shape[2:]), f"y must be label maps {(x.shape[0], *x.shape[2:])}"
            h = torch.cat([x, mask_channels(y, self.mask_classes).to(x.dtype)], dim=1)

        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


def mask_channels(label_maps: torch.Tensor, mask_classes: int) -> torch.Tensor:
    """(N, mask_classes, H, W) one-hot float channels of (N, H, W) label maps; a pixel of any other value
    (IGNORE_INDEX: no label) has none set."""
    maps = label_maps.long()
    classes = torch.arange(mask_classes, device=maps.device).view(1, -1, 1, 1)
    return (maps.unsqueeze(1) == classes).float()


def attention_downsample_rates(image_size: int, resolutions: str | int | Iterable[int]) -> tuple[int, ...]:
    """Convert attention resolutions ("32,16,8", as in the guided-diffusion flags) to the downsample
    rates the UNet expects (image_size // resolution), keeping their order."""
    if isinstance(resolutions, str):
        resolutions = [int(r) for r in resolutions.split(",") if r.strip()]
    elif isinstance(resolutions, int):
        resolutions = [resolutions]
    rates = []
    for res in resolutions:
        if res <= 0 or image_size % res:
            raise ValueError(f"attention resolution {res} does not divide image_size {image_size}")
        rates.append(image_size // res)
    return tuple(rates)


def create_adm(config: str | Mapping = "adm-256-uncond", **overrides) -> ADMUNet:
    """Build an ADMUNet from an ADM preset's name (sda_core.models.specs) or a kwargs mapping, with keyword
    overrides.

    A string `attention_resolutions` is read as resolutions ("32,16,8") and converted to downsample
    rates with the final image_size; a sequence of ints is taken as rates, as by ADMUNet itself.
    """
    if isinstance(config, str):
        config = resolve_spec(config)
        if config.pop("arch") != "adm":
            raise ValueError(f"{config} is not an ADM preset")
    kwargs = {**config, **overrides}
    if isinstance(kwargs.get("attention_resolutions"), str):
        kwargs["attention_resolutions"] = attention_downsample_rates(
            kwargs["image_size"], kwargs["attention_resolutions"]
        )
    return ADMUNet(**kwargs)

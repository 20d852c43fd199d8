"""Clip preprocessing: uint8 (B, T, H, W, 3) clips -> the normalised input a backbone sees.

Frames are sampled evenly in each clip (``frames_per_clip_2d`` for a 2D backbone, ``clip_frames`` for a 3D one),
resized (antialiased) so that their shorter side is ``resize_side``, center-cropped to ``input_size`` and
normalised with ``mean``/``std`` (0..1 pixel units), as the backbone's :class:`BackboneSpec` (or its torchvision
weights' own transforms) say.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from divita.backbones.registry import BackboneSpec


def sample_frame_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over ``num_frames`` (segment centres; repeats when count > frames)."""
    if num_frames < 1 or count < 1:
        raise ValueError(f"need at least one frame and one sample, got {num_frames} frames, {count} samples")
    return [min(num_frames - 1, int((i + 0.5) * num_frames / count)) for i in range(count)]


def frame_transform(spec: BackboneSpec, overrides: dict | None = None) -> dict[str, Any]:
    """The spec's resize/crop/normalisation as a dict (``resize_side``, ``input_size``, ``interpolation``,
    ``mean``, ``std``), with ``overrides`` (e.g. from torchvision weights' transforms) applied."""
    t = {
        "resize_side": spec.resize_side,
        "input_size": tuple(spec.input_size),
        "interpolation": spec.interpolation,
        "mean": tuple(spec.mean),
        "std": tuple(spec.std),
    }
    t.update(overrides or {})
    return t


def normalisation(transform: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (1, 3, 1, 1) float32 on ``device``: ``x * scale + shift`` normalises 0..255 pixels."""
    std = torch.tensor(transform["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    mean = torch.tensor(transform["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return (1.0 / std).to(device), (-mean / std).to(device)


def as_clip_batch(clips: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) or one (T, H, W, 3) clip -> a uint8 (B, T, H, W, 3) tensor; ValueError otherwise."""
    x = torch.as_tensor(clips)
    if x.dim() == 4:
        x = x[None]
    if x.dim() != 5 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"clips must be uint8 (B, T, H, W, 3) RGB, got {x.dtype} {tuple(x.shape)}")
    return x


def resize_crop(frames: torch.Tensor, transform: dict[str, Any]) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float (N, 3, h, w): shorter side to resize_side (antialiased), center crop."""
    side = transform["resize_side"]
    ch, cw = transform["input_size"]
    h, w = frames.shape[-2:]
    if min(h, w) != side:
        size = (side, int(side * w / h)) if h <= w else (int(side * h / w), side)
        mode = transform["interpolation"]
        x = F.interpolate(frames.float(), size=size, mode=mode, antialias=True, align_corners=False)
        if mode == "bicubic":
            x = x.clamp_(0, 255)
    else:
        x = frames  # already at the decode size: crop first, convert after
    h, w = x.shape[-2:]
    if h < ch or w < cw:  # frames narrower than the crop: pad symmetrically with black
        ph, pw = max(0, ch - h), max(0, cw - w)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = x.shape[-2:]
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return x[..., top : top + ch, left : left + cw].float()


def network_layout(frames: torch.Tensor, clips: int, per_clip: int, kind: str, channels_last: bool) -> torch.Tensor:
    """Normalised (B·n, 3, h, w) frames, n = ``per_clip`` per clip -> the network's input: 2D (B·n, 3, h, w),
    3D (B, 3, n, h, w); in the channels-last memory format when asked."""
    if kind == "2d":
        return frames.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    ch, cw = frames.shape[-2:]
    video = frames.reshape(clips, per_clip, 3, ch, cw).transpose(1, 2)
    return video.contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)

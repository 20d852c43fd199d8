"""The clip encoder: a registered backbone wrapped to map uint8 clips to one feature vector per clip.

A 2D backbone's clip feature is the mean of its frame features over ``frames_per_clip_2d`` frames sampled
evenly in the clip; a 3D backbone sees the clip resampled to ``clip_frames`` frames. The feature is the
globally pooled penultimate activation (the classifier's input). Preprocessing is in
:mod:`divita.backbones.preprocess`, weights in :mod:`divita.backbones.weights`, precision (``"auto"``: batch
norms folded, reduced precision where it keeps the features) in :mod:`divita.backbones.precision`; all of it
runs inside :func:`torch.inference_mode`. The network runs in torch or, with ``runtime``, exported to ONNX Runtime
or OpenVINO (:mod:`divita.backbones.runtime`, float32). Thread counts are left to the caller.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from divita.backbones import precision as _precision
from divita.backbones import runtime as _runtime
from divita.backbones.preprocess import (
    as_clip_batch,
    frame_transform,
    network_layout,
    normalisation,
    resize_crop,
    sample_frame_indices,
)
from divita.backbones.registry import BackboneEntry, BackboneSpec, get_entry
from divita.backbones.weights import RANDOM_SEED, check_fit, resolve_weights, transform_from_torchvision
from divita.errors import DivitaError
from divita.hardware import resolve_device


class ClipEncoder(nn.Module):
    """A backbone wrapped to map uint8 clips (B, T, H, W, 3) to float32 features (B, num_features) on CPU."""

    def __init__(
        self,
        spec: BackboneSpec,
        model: nn.Module,
        device: torch.device,
        frames_per_clip_2d: int = 3,
        clip_frames: int | None = None,
        transform: dict | None = None,
        provenance: dict | None = None,
    ):
        super().__init__()
        self.spec = spec
        self.model = model.eval().to(device)
        self.device = device
        self.frames_per_clip_2d = int(frames_per_clip_2d)
        self.clip_frames = int(clip_frames or spec.clip_frames or 0) or None
        self.transform = frame_transform(spec, transform)
        self.min_side = int(self.transform["resize_side"])
        scale, shift = normalisation(self.transform, device)
        self.register_buffer("_scale", scale, persistent=False)
        self.register_buffer("_shift", shift, persistent=False)
        self.provenance = dict(provenance or {})
        self.precision = "float32"
        self.autocast_dtype: torch.dtype | None = None
        self.channels_last = False
        self.precision_check: dict[str, Any] = {}
        self.bn_folded = False
        self.cast_dtype: torch.dtype | None = None
        self._fp32_backup: list[nn.Module] = []  # a list: not registered as a submodule
        self.runtime = "torch"
        self.network: _runtime.RuntimeNetwork | None = None  # the exported network, when not run by torch

    # -- precision ------------------------------------------------------------------------------------

    def set_precision(self, precision: str, channels_last: bool = False, cast_weights: bool = False) -> None:
        """Switch to ``"float32"``, or ``"bfloat16"``/``"float16"`` by autocast (or, with ``cast_weights``, by
        casting the whole network, whose float32 weights are kept until :meth:`_drop_backup`); optionally
        channels-last."""
        if precision not in _precision.DTYPES:
            _precision.check_precision(precision)  # "auto" or a spelling of none
            raise DivitaError(None, f"set_precision takes float32, bfloat16 or float16, not {precision!r}")
        if self._fp32_backup:  # undo a previous cast
            self.model = self._fp32_backup.pop()
        dtype = _precision.DTYPES[precision]
        self.precision = precision
        self.autocast_dtype = dtype if not cast_weights else None
        self.cast_dtype = dtype if cast_weights else None
        if self.cast_dtype is not None:
            self._fp32_backup.append(self.model)
            self.model = copy.deepcopy(self.model).to(self.cast_dtype)
        self.channels_last = bool(channels_last)
        fmt = torch.channels_last_3d if self.spec.kind == "3d" else torch.channels_last
        self.model.to(memory_format=fmt if channels_last else torch.contiguous_format)

    def _drop_backup(self) -> None:
        self._fp32_backup.clear()

    def fold_batchnorm(self) -> int:
        """Fold the network's conv + batch-norm pairs (exact up to float rounding); returns how many."""
        if self.bn_folded or not _precision.has_batchnorm(self.model):
            return 0
        example = _precision.example_input(self.spec.kind, self.transform["input_size"], self.clip_frames, self.device)
        with torch.inference_mode(False):
            self.model, n = _precision.fold_batchnorm(self.model, example)
        self.bn_folded = n > 0
        return n

    def _fast_precision(self, requested: str, channels_last: bool, cast_weights: bool) -> None:
        """Reduced precision (+ channels-last for conv nets, BN folded); ``"auto"`` checks it against float32."""
        candidate = requested
        if requested == "auto":
            candidate = _precision.reduced_precision_for(self.device)
            if candidate is None:
                reason = f"no fast reduced precision on {self.device.type}"
                self.precision_check = {"chosen": "float32", "reason": reason}
                return
        clip = None
        if requested == "auto":
            clip = _precision.smooth_test_clip(24, self.min_side, self.min_side * 16 // 9)[None]
        reference = self.encode(clip) if clip is not None else None
        self.fold_batchnorm()
        self.set_precision(candidate, channels_last=channels_last, cast_weights=cast_weights)
        if clip is None:
            self._drop_backup()
            return
        cosine = _precision.cosine(self.encode(clip), reference)
        ok = _precision.precision_ok(cosine)
        self.precision_check = {
            "candidate": candidate,
            "cosine_to_float32": round(cosine, 6),
            "min_cosine": _precision.PRECISION_COSINE_MIN,
            "chosen": candidate if ok else "float32",
        }
        if not ok:  # BN stays folded: float32 with folded BN matches the plain network to ~1e-6
            self.set_precision("float32")
        self._drop_backup()

    # -- runtime --------------------------------------------------------------------------------------

    def use_runtime(self, runtime: str, threads: int | None = None) -> str:
        """Run the network in ``runtime`` (:data:`divita.backbones.runtime.RUNTIMES`) from now on: torch, or
        the float32 network exported to ONNX (cached on disk) and run by ONNX Runtime or OpenVINO on the CPU.

        Args:
            runtime: ``"torch"``, ``"onnxruntime"`` or ``"openvino"``; one not installed falls back to torch
                (one line on stderr).
            threads: the runtime's intra-op threads (default: ``torch.get_num_threads()``).

        Returns:
            The runtime that runs.

        Raises:
            DivitaError: an unknown runtime, a device other than the CPU, a network in reduced precision, or an
                export that fails.
        """
        runtime = _runtime.resolve_runtime(runtime)
        if runtime == "torch":
            self.runtime, self.network = "torch", None
            return runtime
        if self.device.type != "cpu":
            raise DivitaError(None, f"runtime {runtime} runs on the CPU, not {self.device}; use --runtime torch")
        if self.precision != "float32":
            raise DivitaError(None, f"runtime {runtime} runs float32 networks, not {self.precision}")
        example = _precision.example_input(self.spec.kind, self.transform["input_size"], self.clip_frames, self.device)
        example = torch.cat([example, example.flip(0)])  # batch 2: the export keeps the batch dimension free
        self.network = _runtime.compile_network(runtime, self.model, example, self.spec.name, threads)
        self.runtime = runtime
        return runtime

    # -- inference ------------------------------------------------------------------------------------

    def preprocess(self, clips: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) -> the normalised network input on the device.

        2D: (B·k, 3, h, w), the k = ``frames_per_clip_2d`` sampled frames of each clip in order;
        3D: (B, 3, clip_frames, h, w).
        """
        x = as_clip_batch(clips)
        b, t, h, w, _ = x.shape
        n = self.clip_frames if self.spec.kind == "3d" else self.frames_per_clip_2d
        x = x[:, sample_frame_indices(t, n)]
        frames = x.to(self.device, non_blocking=True).reshape(b * n, h, w, 3).permute(0, 3, 1, 2)
        frames = resize_crop(frames, self.transform)
        frames = frames * self._scale + self._shift
        return network_layout(frames, b, n, self.spec.kind, self.channels_last)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network input (as from :meth:`preprocess`) -> float32 features on the device."""
        if self.network is not None:
            return self.network(inputs)
        if self.autocast_dtype is not None:
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype):
                out = self.model(inputs)
        elif self.cast_dtype is not None:
            out = self.model(inputs.to(self.cast_dtype))
        else:
            out = self.model(inputs)
        return out.float()

    def encode(self, clips: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 (B, T, H, W, 3) RGB clips -> float32 (B, num_features) clip features on CPU.

        2D: the mean of the frame features of ``frames_per_clip_2d`` frames sampled evenly in each clip
        (all B·k frames go through the network as one batch); 3D: each clip resampled to ``clip_frames``.
        """
        with torch.inference_mode():
            x = torch.as_tensor(clips)
            b = 1 if x.dim() == 4 else x.shape[0]
            if b == 0:
                return torch.zeros(0, self.spec.num_features)
            if self.model.training:  # inference only: BN statistics must not move
                self.model.eval()
            feats = self.features(self.preprocess(x))
            if self.spec.kind == "2d":
                feats = feats.reshape(b, self.frames_per_clip_2d, -1).mean(dim=1)
            return feats.cpu()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.encode(clips)

    def settings(self) -> dict[str, Any]:
        """JSON-able description of how features are made (recorded in the store)."""
        spec = self.spec
        reduced_by = "autocast" if self.autocast_dtype else ("cast network" if self.cast_dtype else None)
        out: dict[str, Any] = {
            "name": spec.name,
            "architecture": spec.architecture,
            "kind": spec.kind,
            "num_features": spec.num_features,
            "pretraining": spec.pretraining,
            **self.provenance,
            "precision": self.precision,
            "reduced_precision_by": reduced_by,
            "channels_last": self.channels_last,
            "batchnorm_folded": self.bn_folded,
            "device": str(self.device),
            "input_size": list(self.transform["input_size"]),
            "resize_side": self.transform["resize_side"],
            "interpolation": self.transform["interpolation"],
            "mean": list(self.transform["mean"]),
            "std": list(self.transform["std"]),
            "feature": "globally pooled penultimate activations (classifier input)",
            "torch": torch.__version__,
        }
        if spec.kind == "2d":
            out["frames_per_clip_2d"] = self.frames_per_clip_2d
            out["clip_representation"] = "mean of frame features over frames sampled evenly in the clip"
        else:
            out["clip_frames"] = self.clip_frames
            out["clip_representation"] = "clip resampled evenly to clip_frames frames"
        if self.precision_check:
            out["precision_check"] = dict(self.precision_check)
        return out


def build_network(entry: BackboneEntry) -> nn.Module:
    """The backbone's network with seeded random weights (the same in every process) and its classifier replaced
    by an identity, so that it outputs the pooled penultimate features."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = entry.build()
    setattr(model, entry.classifier, nn.Identity())
    return model


def load_encoder(
    name: str,
    weights: str | Path | None = "default",
    device: str | torch.device = "cpu",
    precision: str = "auto",
    frames_per_clip_2d: int = 3,
    clip_frames: int | None = None,
    runtime: str = _runtime.DEFAULT_RUNTIME,
) -> ClipEncoder:
    """Build the clip encoder of backbone ``name``.

    weights: "default", "random" (explicit, untrained, seeded), a checkpoint PATH, or a torchvision weights
    name (e.g. "ResNet50_Weights.IMAGENET1K_V2"). precision: "auto", "float32", "bfloat16", "float16".
    clip_frames: 3D only, overrides the spec's frames per clip. runtime: "torch", "onnxruntime" or "openvino"
    (:meth:`ClipEncoder.use_runtime`; the exported runtimes compute in float32 whatever ``precision`` asks,
    on the CPU; one not installed falls back to torch).
    """
    entry = get_entry(name)
    spec = entry.spec
    _precision.check_precision(precision)
    _runtime.check_runtime(runtime)
    if int(frames_per_clip_2d) < 1:
        raise DivitaError(None, f"frames per clip must be at least 1, got {frames_per_clip_2d}")
    if clip_frames is not None and int(clip_frames) < 1:
        raise DivitaError(None, f"clip frames must be at least 1, got {clip_frames}")
    dev = resolve_device(device)
    resolved = resolve_weights(name, weights)
    model = build_network(entry)
    if resolved.state_dict is not None:
        state = check_fit(model, resolved.state_dict, entry.classifier, resolved.where, name)
        model.load_state_dict(state, strict=True)
    tv = resolved.torchvision
    transform = transform_from_torchvision(tv) if tv is not None and str(tv) != spec.default_weights else None
    enc = ClipEncoder(
        spec, model, dev, frames_per_clip_2d, clip_frames if spec.kind == "3d" else None, transform, resolved.provenance
    )
    if _runtime.resolve_runtime(runtime) != "torch":
        enc.use_runtime(runtime)
    elif precision != "float32":
        enc._fast_precision(precision, entry.channels_last, entry.cast_weights)
    return enc

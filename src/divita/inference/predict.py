"""Predict the genres of trailer files with a trained DIViTA checkpoint.

The checkpoint records how its features were made (the ``extraction`` attribute of the stores it was
trained on: backbones and their weights, fps, frames per clip, shot detector). :class:`GenreClassifier`
rebuilds exactly that extraction, runs it on a new video (one decode for shots and every backbone), cuts
the clip features into the same 30-clip snippets as evaluation does, and averages the head's
probabilities over snippets.

    clf = GenreClassifier.from_checkpoint("runs/split0/best.ckpt")
    result = clf.predict("trailer.mp4")   # {"video", "genres", "predicted", "snippets", ...}
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from divita.errors import DivitaError
from divita.fileio import atomic_write_bytes, is_output_fault
from divita.genres import GENRES

_SAME_ACROSS_STREAMS = ("fps", "fpc", "min_clip_frames", "detector")


@dataclass
class ExtractionPlan:
    """One extraction (shared by the checkpoint's streams) and the backbone of each stream."""

    fps: float
    fpc: int
    min_clip_frames: int | None
    detector: dict
    backbones: dict[str, dict]  # modality -> backbone settings as recorded in the store

    @classmethod
    def from_checkpoint(cls, ckpt: dict, path: str | Path) -> ExtractionPlan:
        features = ckpt.get("features") or {}
        plans = {}
        for modality, info in features.items():
            ext = info.get("extraction")
            if not ext:
                raise DivitaError(
                    path,
                    f"the {modality} stream was trained on {info.get('store')!r}, a store without extraction settings "
                    "(e.g. the published Trailers12k features, whose frame sampling and preprocessing were not "
                    "released): "
                    "no matching extractor is known, so predicting on video files would give garbage; "
                    "train on stores written by `divita extract` to predict",
                )
            plans[modality] = ext
        if not plans:
            raise DivitaError(path, "checkpoint records no feature streams")
        first = next(iter(plans.values()))
        for _modality, ext in plans.items():
            for key in _SAME_ACROSS_STREAMS:
                if ext.get(key) != first.get(key):
                    raise DivitaError(
                        path,
                        f"streams were extracted with different {key} ({first.get(key)!r} vs {ext.get(key)!r}): "
                        "cannot extract both in one pass",
                    )
        return cls(
            fps=float(first["fps"]),
            fpc=int(first["fpc"]),
            min_clip_frames=first.get("min_clip_frames"),
            detector=dict(first.get("detector") or {"name": "transnetv2"}),
            backbones={m: dict(ext["backbone"]) for m, ext in plans.items()},
        )


def _weights_argument(settings: dict, overrides: dict[str, str]) -> str:
    """The `load_encoder(weights=...)` value that rebuilds the recorded backbone weights."""
    name = settings["name"]
    if name in overrides:
        return overrides[name]
    recorded = str(settings.get("weights", "default"))
    if recorded == "random":
        return "random"  # seeded: the same random network every time
    if recorded.startswith(("torchvision:", "package:")):
        return "default"
    return recorded  # a checkpoint file


def _detector_from(params: dict, fpc: int, fps: float, device: str, runtime: str = "torch"):
    """The checkpoint's recorded detector, rebuilt through the shot-detector registry."""
    from divita.shots import ShotDetector

    return ShotDetector.from_params(params, device=device, fps=fps, segment_frames=fpc, runtime=runtime)


def snippet_spans(num_clips_total: int, num_clips: int) -> list[tuple[int, int]]:
    """Consecutive windows of ``num_clips`` clips (the last one shorter): inclusive clip index spans."""
    return [(s, min(s + num_clips, num_clips_total) - 1) for s in range(0, num_clips_total, num_clips)]


@dataclass
class GenreClassifier:
    """The genres of trailer files, from a trained checkpoint. Available as `divita.GenreClassifier`.

    Build it with `from_checkpoint`: it rebuilds the extraction the checkpoint's features were made with
    (backbones and their weights, fps, frames per clip, shot detector), so that `predict` runs it on a new video
    (one decode for shots and every backbone), cuts the clip features into the same ``num_clips``-clip snippets
    as evaluation does, and averages the head's probabilities over snippets.

    Example:
        ```python
        clf = divita.GenreClassifier.from_checkpoint("runs/split0/best.ckpt")
        result = clf.predict("trailer.mp4")  # {"video", "genres", "predicted", "snippets", ...}
        ```

    Attributes:
        model: the DIViTA model (``divita.model.DIViTA``), on ``device``.
        checkpoint: the checkpoint's dict.
        plan: how the features are extracted (``ExtractionPlan``, read from the checkpoint).
        encoders: modality (``"image"``, ``"video"``) -> its backbone's clip encoder.
        detector: the ``divita.shots.ShotDetector`` the features were made with.
        thresholds: (10,) per-genre decision thresholds (tuned on validation, or one given threshold).
        num_clips: clips per snippet.
        device: where the networks run.
        path: the checkpoint's path.
    """

    model: Any  # divita.model.DIViTA
    checkpoint: dict
    plan: ExtractionPlan
    encoders: dict[str, Any]  # modality -> ClipEncoder
    detector: Any
    thresholds: np.ndarray  # (10,)
    num_clips: int = 30
    device: str = "cpu"
    path: str = ""
    timings: dict = field(default_factory=dict)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str = "cpu",
        weights: dict[str, str] | None = None,
        precision: str | None = None,
        threshold: float | None = None,
        runtime: str = "torch",
    ) -> GenreClassifier:
        """Load a checkpoint and the extractors its features need.

        Args:
            path: a checkpoint written by training (``best.ckpt``).
            device: where the backbones, TransNetV2 and the model run (``"cpu"``, ``"cuda"``, ...).
            weights: backbone name -> weights argument (a checkpoint PATH, or ``"default"``), for backbones
                whose recorded weights are not reachable from this machine.
            precision: the backbones' precision (default: the one each was extracted at).
            threshold: one decision threshold for every genre instead of the per-genre thresholds tuned on
                validation.
            runtime: what runs the backbones and TransNetV2: ``"torch"``, ``"onnxruntime"`` or ``"openvino"``
                (``divita.backbones.runtime``; one not installed falls back to torch).

        Returns:
            The classifier, its networks loaded.

        Raises:
            DivitaError: a checkpoint that cannot be read or records no extraction, backbone weights that
                cannot be found, or weights other than the ones the features were extracted with (sha256).
        """
        from divita.backbones import load_encoder
        from divita.training import load_checkpoint

        model, ckpt = load_checkpoint(path)
        plan = ExtractionPlan.from_checkpoint(ckpt, path)
        encoders = {}
        for modality, settings in plan.backbones.items():
            encoders[modality] = load_encoder(
                settings["name"],
                weights=_weights_argument(settings, weights or {}),
                device=device,
                precision=precision or settings.get("precision", "auto"),
                frames_per_clip_2d=int(settings.get("frames_per_clip_2d", 3)),
                runtime=runtime,
            )
            got = encoders[modality].settings().get("weights_sha256")
            want = settings.get("weights_sha256")
            if want and got and want != got:
                raise DivitaError(
                    path,
                    f"{settings['name']} weights differ from the ones the features were extracted with "
                    f"(sha256 {got[:12]}… vs {want[:12]}…)",
                )
        detector = _detector_from(plan.detector, plan.fpc, plan.fps, device, runtime).load()
        thr = ckpt.get("thresholds") or [0.5] * len(GENRES)
        if threshold is not None:
            thr = [threshold] * len(GENRES)
        return cls(
            model.to(device),
            ckpt,
            plan,
            encoders,
            detector,
            np.asarray(thr, dtype=np.float32),
            int(ckpt.get("num_clips", 30)),
            device,
            str(path),
        )

    def extract(self, video: str | os.PathLike, feed=None):
        """Shots, clips and every stream's clip features of one video.

        Args:
            video: a video file.
            feed: its decoding, already started (:func:`divita.inference.early.prefetch`); optional.

        Returns:
            VideoResult: ``divita.features.engine.VideoResult``, its ``shots``, ``clips`` (inclusive frame spans
            at the plan's fps) and ``features`` (backbone name -> (clips, F) float32).

        Raises:
            DivitaError: a video that cannot be decoded.
        """
        from divita.features.engine import process_video

        return process_video(
            video,
            list(self.encoders.values()),
            self.detector,
            fps=self.plan.fps,
            fpc=self.plan.fpc,
            min_clip_frames=self.plan.min_clip_frames,
            feed=feed,
        )

    @torch.inference_mode()
    def classify(self, features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The genre probabilities of one trailer's clip features.

        Args:
            features: one (clips, F_m) array per stream, in the order of ``encoders``.

        Returns:
            tuple[np.ndarray, np.ndarray]: the trailer's probabilities (10,), the mean of its W snippets', and the
            snippets' probabilities (W, 10); genres in the order of ``divita.GENRES``.
        """
        from divita.features.snippets import SnippetSet
        from divita.features.tables import FeatureTable

        tables = [
            FeatureTable(["video"], np.ascontiguousarray(f, np.float32), np.array([0]), np.array([len(f)]))
            for f in features
        ]
        snippets = SnippetSet(tables, np.zeros((1, len(GENRES)), np.float32), self.num_clips)
        probs = []
        self.model.eval()
        for batch in snippets.eval_batches(256):
            batch = batch.to(self.device)
            probs.append(torch.sigmoid(self.model(batch.xs, batch.masks).float()).cpu())
        per_snippet = torch.cat(probs).numpy()
        return per_snippet.mean(0), per_snippet

    def predict(self, video: str | os.PathLike, limits=None, feed=None) -> dict:
        """The genres of one trailer file: probabilities, the predicted set, and per-snippet evidence.

        Args:
            video: a video file.
            limits: the :class:`divita.video.VideoLimits` its decoding obeys (default: those in effect,
                :func:`divita.video.video_limits`).
            feed: its decoding, already started (:func:`divita.inference.early.prefetch`, under the limits in
                effect where it was started); optional.

        Returns:
            dict: JSON-able, with ``video``; ``genres`` (genre -> probability, most likely first); ``predicted``
            (the genres at or above their threshold); ``thresholds``; ``snippets`` (each with
            ``start_frame``/``end_frame``, inclusive, ``start_s``/``end_s`` and its ``genres``); ``shots``
            (inclusive frame spans ``[start, end]`` at ``fps``; they held seconds before); ``shot_seconds`` (the
            same shots as ``[start_s, end_s]`` in seconds, end exclusive); ``fps``; ``num_frames``; ``timings``.
            See docs/outputs.md.

        Raises:
            DivitaError: a video that cannot be decoded, or one too short for a clip.
            VideoLimitError: a video over one of the limits.
        """
        from divita.video.limits import video_limits

        t0 = time.perf_counter()
        with video_limits(limits):
            result = self.extract(video, feed)
        t_extract = time.perf_counter() - t0
        feats = [result.features[enc.spec.name] for enc in self.encoders.values()]
        if not len(feats[0]):
            raise DivitaError(video, "no clips could be cut from this video")
        t1 = time.perf_counter()
        probs, per_snippet = self.classify(feats)
        t_head = time.perf_counter() - t1
        seconds = result.clip_seconds()
        spans = snippet_spans(len(seconds), self.num_clips)
        clips = result.clips
        order = np.argsort(-probs)
        return {
            "video": str(video),
            "genres": {GENRES[i]: round(float(probs[i]), 4) for i in order},
            "predicted": [GENRES[i] for i in order if probs[i] >= self.thresholds[i]],
            "thresholds": {g: round(float(t), 4) for g, t in zip(GENRES, self.thresholds)},
            "snippets": [
                {
                    "start_s": seconds[a][0],
                    "end_s": seconds[b][1],
                    "start_frame": clips[a][0],
                    "end_frame": clips[b][1],
                    "genres": {g: round(float(p), 4) for g, p in zip(GENRES, row)},
                }
                for (a, b), row in zip(spans, per_snippet)
            ],
            "shots": [
                list(s) for s in result.shots
            ],  # frame spans; earlier releases gave seconds here, now in shot_seconds
            "shot_seconds": result.shot_seconds(),
            "fps": result.fps,
            "num_frames": result.num_frames,
            "timings": {
                "extract_s": round(t_extract, 3),
                "head_s": round(t_head, 4),
                **{k: round(v, 3) for k, v in result.timings.items()},
            },
        }


def predict_many(
    classifier: GenreClassifier,
    videos: Sequence[str | os.PathLike],
    on_result: Callable[[dict], None],
    on_failure: Callable[[str, str], None],
    progress: bool = True,
    feed=None,
) -> tuple[int, int]:
    """Predict every video; a failing one is reported to ``on_failure(video, reason)`` and the rest go on
    (a full disk or an unwritable output raises: every later video would fail the same way). ``feed``: the
    decoding of one of them already started (:func:`divita.inference.early.prefetch`).

    Returns (succeeded, failed).
    """
    ok = failed = 0
    bar = None
    if progress and len(videos) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(videos), desc="predict", unit="video")
    for v in videos:
        try:
            early = feed if feed is not None and feed.path == str(v) else None
            on_result(classifier.predict(v, feed=early) if early is not None else classifier.predict(v))
            ok += 1
        except DivitaError as e:
            on_failure(str(v), e.problem)
            failed += 1
        except Exception as e:  # an odd file nobody foresaw: record it, go on
            if os.environ.get("DIVITA_DEBUG") or is_output_fault(e):
                raise  # a full disk or an unwritable --plot would fail every later video the same way
            on_failure(str(v), f"{type(e).__name__}: {e}".splitlines()[0][:300])
            failed += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return ok, failed


def thumbnails(video: str | os.PathLike, times: Sequence[float], height: int = 72) -> list[np.ndarray]:
    """One small RGB frame (height, W, 3) near each time (seconds), by seeking: for timeline pictures."""
    import av

    out = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for t in times:
            frame = None
            try:
                container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
                for f in container.decode(stream):
                    frame = f
                    if f.time is not None and f.time >= t:
                        break
            except (av.error.FFmpegError, ValueError):
                pass
            if frame is None:
                out.append(np.zeros((height, int(height * 16 / 9), 3), np.uint8))
                continue
            w = max(1, int(round(frame.width * height / frame.height)))
            out.append(frame.to_ndarray(format="rgb24", width=w, height=height))
    return out


def plot_timeline(
    result: dict, out_png: str | os.PathLike, thumbs: int = 10, video: str | os.PathLike | None = None
) -> Path:
    """Timeline picture: thumbnails, shot boundaries, per-snippet genre probabilities (heat map) and the
    trailer-level probabilities with their decision thresholds. ``video``: the file to take the thumbnails
    from when it is not ``result["video"]`` (which titles the picture)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration = result["num_frames"] / result["fps"]
    times = [(i + 0.5) * duration / thumbs for i in range(thumbs)]
    frames = thumbnails(video if video is not None else result["video"], times)
    snippets = result["snippets"]
    edges = [s["start_s"] for s in snippets] + [snippets[-1]["end_s"]]
    heat = np.array([[s["genres"][g] for s in snippets] for g in GENRES])  # (10, W)

    fig = plt.figure(figsize=(13, 6.2), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, width_ratios=[5, 1.3], height_ratios=[1, 2.4])
    ax_strip = fig.add_subplot(grid[0, 0])
    ax_heat = fig.add_subplot(grid[1, 0], sharex=ax_strip)
    ax_bar = fig.add_subplot(grid[1, 1])
    fig.add_subplot(grid[0, 1]).axis("off")

    step = duration / thumbs
    for t, im in zip(times, frames):
        ax_strip.imshow(im, extent=(t - step / 2, t + step / 2, 0, 1), aspect="auto")
    ax_strip.set_xlim(0, duration)
    ax_strip.set_ylim(0, 1)
    ax_strip.set_yticks([])
    ax_strip.tick_params(labelbottom=False)
    plural = lambda n, w: f"{n} {w}{'' if n == 1 else 's'}"  # noqa: E731
    ax_strip.set_title(
        f"{Path(result['video']).name}: {plural(len(result['shots']), 'shot')}, {plural(len(snippets), 'snippet')}",
        loc="left",
    )

    mesh = ax_heat.pcolormesh(edges, np.arange(len(GENRES) + 1), heat, cmap="magma", vmin=0, vmax=1, shading="flat")
    ax_heat.set_yticks(np.arange(len(GENRES)) + 0.5, GENRES)
    ax_heat.invert_yaxis()
    ax_heat.set_xlabel("time (s)")
    for start, _ in result["shot_seconds"][1:]:
        for ax in (ax_strip, ax_heat):
            ax.axvline(start, color="cyan", lw=0.6, alpha=0.7)
    fig.colorbar(mesh, ax=ax_heat, location="left", fraction=0.03, pad=0.08, label="snippet probability")

    probs = np.array([result["genres"][g] for g in GENRES])
    thr = np.array([result["thresholds"][g] for g in GENRES])
    colors = ["tab:orange" if g in result["predicted"] else "tab:gray" for g in GENRES]
    y = np.arange(len(GENRES))
    ax_bar.barh(y, probs, color=colors)
    ax_bar.scatter(thr, y, marker="|", s=200, color="black", label="threshold")
    ax_bar.set_yticks(y, GENRES)
    ax_bar.invert_yaxis()
    ax_bar.set_xlim(0, 1)
    ax_bar.set_title("trailer", loc="left")
    ax_bar.legend(loc="lower right", fontsize=8)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    try:
        fmt = out_png.suffix[1:].lower() or "png"
        atomic_write_bytes(out_png, lambda f: fig.savefig(f, format=fmt, dpi=110))  # whole or absent
    finally:
        plt.close(fig)
    return out_png

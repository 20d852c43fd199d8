"""Start decoding a trailer before the checkpoint's networks are loaded (torch-free).

Importing torch and torchvision and building the backbones and TransNetV2 takes seconds of one core; decoding
needs none of it, only the frame sizes, which the checkpoint records (each stream's backbone ``resize_side``,
the fps, the shot detector). :func:`recorded_extraction` reads those from the checkpoint file without torch (its
pickle, with every torch object left out), and :func:`prefetch` starts a :class:`DecodeFeed` with them.
:func:`divita.features.engine.process_video` uses the feed only when it decodes exactly what the loaded
networks need; otherwise it decodes again, so a wrong guess costs time, never a different result.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any

FRAME_BUDGET_BYTES = 384 * 1024 * 1024  # decoded frames held ahead of the consumer while the networks load


class _Omitted:
    """Stands for any torch object in the checkpoint (tensors, storages): not needed to read its settings."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return self


_ALLOWED = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "slice"),
    ("_codecs", "encode"),
}


class _SettingsUnpickler(pickle.Unpickler):
    """Unpickles a ``torch.save`` checkpoint's ``data.pkl`` with tensors and other non-builtin objects omitted."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        return _Omitted

    def persistent_load(self, pid):
        return _Omitted()


def recorded_extraction(checkpoint: str | os.PathLike) -> dict[str, Any] | None:
    """The extraction a checkpoint records (``fps``, ``decode sides``, ``detector``), read without torch.

    Returns:
        ``{"fps": float, "sides": [int, ...], "detector": str}``, or None when the file cannot be read that
        way (loading it properly reports why).
    """
    try:
        with zipfile.ZipFile(checkpoint) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            ckpt = _SettingsUnpickler(io.BytesIO(z.read(name))).load()
        streams = [info["extraction"] for info in ckpt["features"].values()]
        return {
            "fps": float(streams[0]["fps"]),
            "sides": sorted({int(s["backbone"].get("resize_side") or 0) for s in streams}),
            "detector": str((streams[0].get("detector") or {"name": "transnetv2"})["name"]),
        }
    except Exception:  # noqa: BLE001 - a guess only: anything unexpected means no early start
        return None


def prefetch(checkpoint: str | os.PathLike, video: str | os.PathLike):
    """Start decoding ``video`` at the sizes ``checkpoint`` needs, under the video limits in effect.

    Returns:
        A started :class:`divita.features.engine.DecodeFeed`, or None when the checkpoint's settings cannot be
        read without torch or the video fails its header checks (predicting it reports the reason).
    """
    plan = recorded_extraction(checkpoint)
    if plan is None:
        return None
    from divita.errors import DivitaError
    from divita.features.engine import CHUNK_FRAMES, DecodeFeed, decode_outputs
    from divita.shots.detector import ShotDetector

    try:
        detector = ShotDetector(plan["detector"])
    except DivitaError:  # an unknown detector: loading the checkpoint reports it
        return None
    outputs = decode_outputs(plan["sides"], detector.looks_at_frames)
    try:
        feed = DecodeFeed(video, plan["fps"], outputs)
    except DivitaError:
        return None
    info = feed.decoder.info
    per_frame = sum(3 * w * h for w, h in (o.resolve(info.width, info.height) for o in outputs.values()))
    feed.queue.maxsize = max(feed.queue.maxsize, FRAME_BUDGET_BYTES // max(1, per_frame) // CHUNK_FRAMES)
    return feed.start()


__all__ = ["prefetch", "recorded_extraction"]

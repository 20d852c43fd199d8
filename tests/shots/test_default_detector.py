"""The default shot detector (``transnetv2-vetted``) and what changing it from ``transnetv2`` must not break:
stores extracted with the old default refuse a resume with the new one, and a checkpoint trained on
``transnetv2`` features keeps replaying ``transnetv2``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import divita.shots as S
from builders import videos
from divita.errors import DivitaError
from divita.features.plan import ExtractionSettings
from divita.shots.base import TransitionRuns
from divita.shots.registry import DEFAULT_DETECTOR
from divita.shots.vetted import CheckedCuts, VettedStream


class MeanEncoder:
    """Mean colour of each clip's first frame (3 features)."""

    def __init__(self):
        self.spec = SimpleNamespace(name="mean", kind="3d", num_features=3, store_prefix="k")
        self.min_side = 16

    def encode(self, clips):
        return np.asarray(clips, np.float32)[:, 0].mean((1, 2)) / 255.0

    def settings(self):
        return {"name": "mean", "weights": "test"}


def test_the_default_is_transnetv2_vetted_everywhere():
    assert DEFAULT_DETECTOR == "transnetv2-vetted"
    assert S.ShotDetector().name == DEFAULT_DETECTOR and ExtractionSettings().detector == DEFAULT_DETECTOR


def test_a_store_of_the_old_default_refuses_a_resume_with_the_new_one(tmp_path):
    from divita.features.extract import extract

    videos.cuts_video(tmp_path / "v" / "a.mp4", shots=(20, 20), size=(64, 36))
    out = tmp_path / "out"
    quiet = dict(progress=False, log=lambda m: None)
    s = extract([tmp_path / "v"], [MeanEncoder()], out, detector="transnetv2", **quiet)
    assert s.done == ["a"]
    with pytest.raises(DivitaError) as e:
        extract([tmp_path / "v"], [MeanEncoder()], out, **quiet)  # the default detector
    message = str(e.value)
    assert "\n" not in message
    assert "detector transnetv2 (store) vs transnetv2-vetted (this run)" in message, message
    assert "use another --out" in message


def test_a_checkpoint_trained_on_transnetv2_features_replays_transnetv2():
    from divita.inference.predict import ExtractionPlan, _detector_from

    recorded = S.ShotDetector("transnetv2", threshold=0.4).params(implementation=False)
    extraction = {"fps": 24.0, "fpc": 24, "min_clip_frames": 12, "detector": recorded, "backbone": {"name": "b"}}
    ckpt = {"features": {"image": {"store": "s.zarr", "extraction": extraction}}}
    plan = ExtractionPlan.from_checkpoint(ckpt, "best.ckpt")
    det = _detector_from(plan.detector, plan.fpc, plan.fps, "cpu")
    assert det.name == "transnetv2" != DEFAULT_DETECTOR and det.threshold == 0.4
    assert det.params(implementation=False) == recorded
    # stores from before the detector was recorded were all made with transnetv2
    legacy = {k: v for k, v in extraction.items() if k != "detector"}
    plan = ExtractionPlan.from_checkpoint({"features": {"image": {"store": "s", "extraction": legacy}}}, "old.ckpt")
    assert _detector_from(plan.detector, 24, 24.0, "cpu").name == "transnetv2"


class ProbabilityReplay(S.ShotStream):
    """A stand-in for the network stream: given per-frame probabilities, released 50 frames at a time."""

    def __init__(self, probs, threshold=0.5):
        super().__init__()
        self.all, self.runs, self.preds = np.asarray(probs, np.float32), TransitionRuns(threshold), []

    def _release(self, upto):
        p = self.all[self.final : upto]
        self.preds.append(p)
        self.runs.feed(p)
        self.final = upto
        self.gaps, self.pending = list(self.runs.gaps), self.runs.open_gap

    def push(self, frames):
        self.n += len(frames)
        while self.final + 50 <= self.n:
            self._release(self.final + 50)

    def finish(self, num_frames=None):
        self._release(self.n)
        self.runs.close(self.n)
        self.gaps, self.pending, self.finished = list(self.runs.gaps), None, True


def _vetted(probs, **overrides):
    spec = S.DETECTORS.get("transnetv2-vetted")
    kw = {p.key: p.default for p in spec.params} | overrides
    net = ProbabilityReplay(probs, kw.pop("threshold"))
    tolerance = kw.pop("tolerance")
    return VettedStream(net, CheckedCuts(net, **kw), tolerance)


def _flat_shots(rng, colours, lengths):
    """48x27 frames: textured shots of the given mean colours and lengths."""
    out = []
    for c, n in zip(colours, lengths):
        base = np.clip(np.asarray(c, np.float32) + rng.normal(0, 12, (27, 48, 3)), 0, 255)
        out += [np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]
    return np.stack(out)


def _shots(stream, frames, chunk=None):
    for i in range(0, len(frames), chunk or len(frames)):
        stream.push(frames[i : i + (chunk or len(frames))])
    stream.finish()
    return stream.shots()


def test_flashes_within_a_shot_are_not_cuts_but_a_cut_behind_a_flash_is():
    rng = np.random.default_rng(0)
    frames = _flat_shots(rng, [(40, 120, 200), (200, 60, 40)], [60, 60])
    frames[20:22] = 255  # a two-frame flash inside the first shot: the picture comes back
    frames[59] = np.clip(frames[59].astype(np.int16) + 100, 0, 255)  # a flash (not uniform) right before the cut
    probs = np.zeros(len(frames), np.float32)
    veto, threshold = S.param_default("transnetv2-vetted", "veto"), S.param_default("transnetv2-vetted", "threshold")
    probs[57:62] = (veto + threshold) / 2  # the network sees something at the cut, below its threshold
    assert _shots(_vetted(probs), frames) == [(0, 58), (60, 119)]
    assert _shots(_vetted(np.zeros(len(frames))), frames) == [(0, 119)]  # the network vetoes the candidate
    for chunk in (1, 7, 50):
        assert _shots(_vetted(probs), frames, chunk) == [(0, 58), (60, 119)], chunk


def test_a_dip_between_two_shots_is_a_transition_and_a_white_flash_is_not():
    rng = np.random.default_rng(1)
    frames = _flat_shots(rng, [(40, 120, 200), (200, 60, 40)], [60, 60])
    for i, level in zip(range(56, 64), (0.5, 0.2, 0, 0, 0, 0, 0.2, 0.5)):  # a fade through black between the shots
        frames[i] = (frames[i] * level).astype(np.uint8)
    frames[30] = 250  # a one-frame white flash inside the first shot
    probs = np.zeros(len(frames), np.float32)  # the network misses the fade
    shots = _shots(_vetted(probs), frames)
    assert len(shots) == 2 and shots[0][0] == 0 and 55 <= shots[0][1] <= 58 and 61 <= shots[1][0] <= 64, shots

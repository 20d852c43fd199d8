"""End-to-end latency of `divita predict` on one generated 2-minute 1280x720 24-fps trailer.

Builds a shufflenet + r2plus1d late-fusion checkpoint (a short training on a store extracted from three
tiny generated videos; backbone weights ``random`` so it runs offline, with the same compute as the
pretrained ones), then measures on the trailer:

- each stage alone: decode (every size the run needs), shot detection (TransNetV2), each backbone on the
  trailer's clips, and the DIViTA head;
- the whole prediction (stages overlapped: decode in a thread, shots and backbones as clips become final),

and prints the split, the wall time against the slowest stage alone, on the CPU and, when there is one,
on the GPU.

    python benchmarks/predict_latency.py [--seconds 120] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402


def best_of(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def make_checkpoint(work: Path) -> Path:
    """A shufflenet + r2plus1d late-fusion checkpoint trained on `divita extract` stores of tiny videos."""
    import pandas as pd

    from builders import videos
    from divita.cli import main as divita
    from divita.genres import GENRES

    rows = []
    for i in range(3):
        videos.shots_video(work / "tiny" / f"v{i}.mp4", shots=(24, 30), size=(96, 64), seed=i)
        rows.append({"mid": f"v{i}", **{g: int(g == GENRES[i]) for g in GENRES}, "split0": i, "split1": i, "split2": i})
    pd.DataFrame(rows).to_csv(work / "labels.csv", index=False)
    data = work / "data"
    assert (
        divita(
            [
                "extract",
                str(work / "tiny"),
                "--backbone",
                "shufflenet,r2plus1d",
                "--weights",
                "random",
                "--out",
                str(data),
                "--labels",
                str(work / "labels.csv"),
                "--no-progress",
            ]
        )
        == 0
    )
    stores = {p.name.split("_")[1]: p.name for p in data.iterdir() if p.suffix == ".zarr"}
    run = work / "run"
    assert (
        divita(
            [
                "train",
                "--data-dir",
                str(data),
                "--ix",
                stores["i"],
                "--vx",
                stores["k"],
                "--split",
                "0",
                "--out",
                str(run),
                "--max-epochs",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    return run / "best.ckpt"


def measure(ckpt: Path, video: Path, device: str, repeat: int) -> dict:
    import torch

    from divita.clips import clip_frame_indices, partition_shots
    from divita.inference.predict import GenreClassifier
    from divita.shots import TRANSNET_SIZE, detect
    from divita.video import OutputSize, VideoDecoder

    clf = GenreClassifier.from_checkpoint(ckpt, device=device)
    encoders = list(clf.encoders.values())
    outputs = {f"side{e.min_side}": OutputSize(min_side=e.min_side) for e in encoders}
    outputs["small"] = OutputSize(exact=TRANSNET_SIZE)

    def decode_all():
        keep = {k: [] for k in outputs}
        for f in VideoDecoder(video, clf.plan.fps, outputs):
            for k, v in f.items():
                keep[k].append(v)
        return {k: np.stack(v) for k, v in keep.items()}

    stages = {}
    stages["decode"], frames = best_of(decode_all, repeat)
    n = len(frames["small"])
    stages["shots"], shots = best_of(lambda: detect(frames["small"], clf.detector), repeat)
    end_to_end, result = best_of(lambda: clf.predict(video), repeat)
    clips = partition_shots(shots, clf.plan.fpc, min_frames=clf.plan.min_clip_frames, num_frames=n)
    feats = []
    for e in encoders:
        imgs = frames[f"side{e.min_side}"]

        def run(e=e, imgs=imgs):
            out = []
            for i in range(0, len(clips), 16):
                out.append(e.encode(np.stack([imgs[clip_frame_indices(c, clf.plan.fpc)] for c in clips[i : i + 16]])))
            return np.concatenate([np.asarray(o, dtype=np.float32) for o in out])

        stages[e.spec.name], f = best_of(run, repeat)
        feats.append(f)
    stages["head"], _ = best_of(lambda: clf.classify(feats), repeat)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    slowest = max(stages, key=stages.get)
    return {
        "device": device,
        "frames": n,
        "clips": len(clips),
        "snippets": len(result["snippets"]),
        "stages": stages,
        "end_to_end": end_to_end,
        "slowest": slowest,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "divita-bench"))
    args = ap.parse_args()

    import torch

    from builders import videos

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    video = cache / f"trailer_{int(args.seconds)}s_1280x720_24fps.mp4"
    if not video.is_file():
        tmp = video.with_suffix(".tmp.mp4")
        videos.streamed_shots_video(tmp, seconds=args.seconds, size=(1280, 720), fps=24, mean_shot=2.5)
        os.replace(tmp, video)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    with tempfile.TemporaryDirectory(dir=cache) as work:
        ckpt = make_checkpoint(Path(work))
        print(
            f"trailer: {video.name}; checkpoint: shufflenet + r2plus1d late fusion (random backbone weights); "
            f"{os.cpu_count()} cores, torch {torch.__version__}"
        )
        for device in devices:
            r = measure(ckpt, video, device, args.repeat)
            s = r["stages"]
            print(f"\n[{device}] {r['frames']} frames, {r['clips']} clips, {r['snippets']} snippets")
            for k, v in s.items():
                print(
                    f"  {k:<12} alone {v:7.2f} s"
                    + (f"  ({r['frames'] / v:.0f} frames/s)" if k not in ("head",) else "")
                )
            print(
                f"  end to end   {r['end_to_end']:7.2f} s = {r['end_to_end'] / s[r['slowest']]:.2f}x the slowest stage "
                f"({r['slowest']}); stages in series {sum(s.values()):.2f} s"
            )


if __name__ == "__main__":
    main()

"""docs/extending.md's examples, run for real: each module the guide marks ``<!-- example NAME: PATH -->`` is written
into a temporary directory (joined to the package it belongs to), each registration marked ``<!-- example NAME -->``
runs against the real registry (restored after the test), and what the guide promises is checked."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from divita.errors import DivitaError

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
BLOCK = re.compile(r"<!-- example ([\w-]+)(?:: (\S+))? -->\n```python\n(.*?)\n```", re.S)


def examples() -> dict[str, tuple[str | None, str]]:
    """name -> (path or None, code) of every marked python block of the guide."""
    out = {}
    for name, path, code in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        assert name not in out, f"example {name} marked twice"
        out[name] = (path or None, code + "\n")
    return out


EXAMPLES = examples()


def test_the_guide_marks_every_example_it_promises():
    stages = ("detector", "backbone", "aggregator", "study")
    expected = {f"{s}-{part}" for s in stages for part in ("module", "register")} | {"plugin-package", "plugin-script"}
    assert set(EXAMPLES) == expected
    for stage in stages:
        path, _ = EXAMPLES[f"{stage}-module"]
        assert path and path.startswith("src/divita/") and path.endswith(".py"), path
        # the guide's list of touched files is the module and the stage's registry
        assert f"Files touched: `{path}` (new), `src/divita/{path.split('/')[2]}/registry.py`" in GUIDE.read_text()


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(stage)``: writes the guide's module of ``stage`` into tmp_path as part of its divita package and runs
    the guide's registration in the stage's registry module; the registries, the study instances and the imported
    example modules are restored afterwards."""
    from divita.backbones import registry as backbones
    from divita.model import registry as model
    from divita.shots import registry as shots
    from divita.studies import registry as studies

    for registry in (shots.DETECTORS, backbones.BACKBONES, model.AGGREGATORS, studies.STUDIES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(studies, "_INSTANCES", dict(studies._INSTANCES))
    added: list[str] = []

    def _install(stage: str):
        path, code = EXAMPLES[f"{stage}-module"]
        parts = Path(path).parts  # src, divita, <package>, <module>.py
        package_name = ".".join(parts[1:-1])
        package = importlib.import_module(package_name)
        folder = tmp_path / parts[2]
        folder.mkdir(exist_ok=True)
        (folder / parts[-1]).write_text(code, encoding="utf-8")
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
        module = f"{package_name}.{Path(parts[-1]).stem}"
        added.append(module)
        registry_module = importlib.import_module(f"{package_name}.registry")
        _, registration = EXAMPLES[f"{stage}-register"]
        exec(compile(registration, f"{GUIDE}:{stage}-register", "exec"), dict(vars(registry_module)))
        return importlib.import_module(module)

    yield _install
    for module in added:
        sys.modules.pop(module, None)
        package, _, name = module.rpartition(".")
        if hasattr(sys.modules[package], name):
            delattr(sys.modules[package], name)


def shot_frames(levels=(40, 200, 90, 230), length=20, seed=0) -> np.ndarray:
    """48x27 uint8 frames (N, 27, 48, 3): shots of uniform brightness ``levels`` with noise, hard cuts between."""
    rng = np.random.default_rng(seed)
    frames = [np.full((length, 27, 48, 3), v, np.int16) for v in levels]
    noisy = np.concatenate(frames) + rng.integers(-8, 9, (len(levels) * length, 27, 48, 3))
    return noisy.clip(0, 255).astype(np.uint8)


def test_detector_example_streams_as_one_push_and_is_a_command_line_choice(install, capsys):
    from divita import shots as S
    from divita.cli import build_parser
    from divita.features.plan import ExtractionSettings
    from divita.features.store import _settings_fingerprint

    install("detector")
    assert "luma" in S.list_detectors()
    frames = shot_frames()
    det = S.ShotDetector("luma")
    whole = det.stream()
    whole.push(frames)
    whole.finish()
    assert whole.shots() == [(0, 19), (20, 39), (40, 59), (60, 79)]
    chunked = det.stream()
    for i in range(0, len(frames), 7):
        chunked.push(frames[i : i + 7])
        assert chunked.final <= min(len(frames), i + 7) and set(chunked.gaps) <= set(whole.gaps)
    chunked.finish()
    assert chunked.shots() == whole.shots()
    assert S.detect(frames, "luma") == whole.shots()
    # its parameter: recorded, replayed, in the store fingerprint, checked against its minimum
    recorded = json.loads(json.dumps(det.params()))
    assert recorded == {"name": "luma", "luma": {"jump": 40.0}}
    assert S.ShotDetector.from_params(recorded).params() == recorded
    other = S.ShotDetector("luma", options={"luma": {"jump": 300}})
    assert other.stream().shots() == [] and other.params()["luma"]["jump"] == 300.0
    assert _settings_fingerprint({"detector": other.params()}) != _settings_fingerprint({"detector": recorded})
    with pytest.raises(DivitaError, match="luma jump must be at least 0"):
        S.ShotDetector("luma", options={"luma": {"jump": -1}})
    # the command line: a choice of --detector, listed in the help
    parser = build_parser()
    args = parser.parse_args(["shots", "v.mp4", "--detector", "luma"])
    assert args.detector == "luma" and S.ShotDetector.from_args(args).name == "luma"
    assert ExtractionSettings(detector="luma").detector_fingerprint()["luma"] == {"jump": 40.0}
    with pytest.raises(SystemExit):
        parser.parse_args(["shots", "--help"])
    assert "luma = cuts where the mean brightness" in " ".join(capsys.readouterr().out.split())


def test_backbone_example_builds_and_encodes_clips_to_its_declared_size(install):
    import torch

    from divita import backbones as B

    install("backbone")
    assert B.list_backbones()[-1] == "tiny_cnn" and B.weights_status("tiny_cnn") == "needs --weights PATH"
    spec = B.get_spec("tiny_cnn")
    enc = B.load_encoder("tiny_cnn", weights="random", precision="float32")
    clips = torch.stack([B.smooth_test_clip(8, 96, 128, seed=s) for s in (1, 2)])  # (2, 8, 96, 128, 3) uint8
    assert enc.preprocess(clips).shape == (2 * enc.frames_per_clip_2d, 3, *spec.input_size)
    out = enc.encode(clips)
    assert out.shape == (2, spec.num_features) == (2, 256) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(DivitaError, match="tiny_cnn"):
        B.load_encoder("tiny_cnn")  # no default weights: a one-line error that says what to pass


def test_backbone_example_is_listed_by_divita_backbones(install, capsys):
    from divita.cli import main

    install("backbone")
    assert main(["backbones", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in listed][-1] == "tiny_cnn"


def test_detector_and_backbone_examples_extract_a_video_from_the_command_line(install, tmp_path, capsys):
    """``divita extract --backbone tiny_cnn --weights random --detector luma``: a store named as the guide says,
    (clips, 256) features, the detector and its parameter recorded, the shots of ``divita.detect_shots``."""
    import divita
    from builders import videos
    from divita.cli import main
    from divita.features.store import open_store

    install("detector")
    install("backbone")
    frames = shot_frames((40, 200, 90)).repeat(2, axis=1).repeat(2, axis=2)  # (60, 54, 96, 3): cuts at 20 and 40
    video = videos.write_video(tmp_path / "v" / "trailer.mp4", frames)
    out = tmp_path / "out"
    argv = ["extract", str(video), "--backbone", "tiny_cnn", "--weights", "random", "--detector", "luma"]
    assert main([*argv, "--fpc", "8", "--out", str(out), "--no-progress"]) == 0
    group = open_store(out / "trailers_i_tiny_cnn_fps24_fpc8.zarr")
    assert group.attrs["num_features"] == 256
    extraction = group.attrs["extraction"]
    assert extraction["detector"] == {"name": "luma", "luma": {"jump": 40.0}}
    assert extraction["backbone"]["name"] == "tiny_cnn"
    features = group["trailer"]
    assert features.shape[1] == 256 and features.shape[0] == len(features.attrs["clips"]) >= 1
    shots = divita.detect_shots(video, detector="luma")
    assert [tuple(s) for s in features.attrs["shots"]] == shots == [(0, 19), (20, 39), (40, 59)]


def test_aggregator_example_trains_a_tiny_model_one_step(install):
    import torch

    from divita.model import DIViTA, ModelConfig
    from divita.training.config import TrainConfig

    install("aggregator")
    assert TrainConfig(data_dir=".", image_store="s", video_store=None, aggregator="max").aggregator == "max"
    from divita.cli import build_parser

    args = build_parser().parse_args(
        [
            "train",
            "--data-dir",
            ".",
            "--image-store",
            "s",
            "--video-store",
            "none",
            "--split",
            "0",
            "--out",
            "r",
            "--aggregator",
            "max",
        ]
    )
    assert args.aggregator == "max"  # a choice of the command line too, registered after import
    torch.manual_seed(0)
    model = DIViTA(ModelConfig([16, 12], ["image", "video"], aggregator="max", dropout=0.0))
    xs = [torch.randn(4, 6, 16), torch.randn(4, 6, 12)]
    masks = [torch.ones(4, 6, dtype=torch.bool) for _ in xs]
    masks[0][0, 2:] = False  # a snippet with padded clips
    garbage = [x.clone() for x in xs]
    garbage[0][0, 2:] = 1e3
    model.eval()
    torch.testing.assert_close(model(xs, masks), model(garbage, masks))  # padding never changes the output
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    labels = (torch.rand(4, 10) > 0.5).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xs, masks), labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_study_example_is_listed_by_the_study_command_and_builds_its_rows(install, tmp_path, capsys):
    from divita.cli import build_parser
    from divita.studies import get_study
    from divita.studies.options import StudyOptions
    from divita.studies.variants import variant_key

    install("study")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["study", "--help"])
    assert "length clip lengths compared" in " ".join(capsys.readouterr().out.split())
    args = build_parser().parse_args(
        ["study", "length", "videos", "--labels", "l.csv", "--out", "o", "--lengths", "8", "16"]
    )
    study = get_study("length")
    extra = study.configure(args)
    assert extra == {"lengths": [8, 16]}
    opts = StudyOptions(out=tmp_path, backbones=("shufflenet", "r2plus1d"), extra=extra)
    rows = study.rows(opts)
    assert [(r.variant, r.backbone) for r in rows] == [
        ("8 frames", "shufflenet"),
        ("16 frames", "shufflenet"),
        ("8 frames", "r2plus1d"),
        ("16 frames", "r2plus1d"),
    ]
    assert len({r.run.path for r in rows}) == 4
    keys = [variant_key(s.features) for r in rows for s in r.run.streams]
    assert len(set(keys)) == 2 and "_fpc8_" in keys[0] and "_fpc16_" in keys[1]  # one variant per length
    assert [s.features.fpc for r in rows for s in r.run.streams] == [8, 16, 8, 16]
    with pytest.raises(DivitaError, match="distinct positive"):
        study.rows(StudyOptions(out=tmp_path, extra={"lengths": [8, 8]}))


def test_plugin_example_adds_a_detector_from_outside_the_package(tmp_path):
    """The guide's own package (its module: the detector example's code) and script, run as a user would."""
    package = tmp_path / "my_divita_plugins"
    package.mkdir()
    (package / "__init__.py").write_text(EXAMPLES["plugin-package"][1], encoding="utf-8")
    (package / "luma.py").write_text(EXAMPLES["detector-module"][1], encoding="utf-8")
    script = tmp_path / EXAMPLES["plugin-script"][0]
    script.write_text(EXAMPLES["plugin-script"][1], encoding="utf-8")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {"PYTHONPATH": f"{tmp_path}:{src}", "PATH": "/usr/bin:/bin"}
    probe = (
        "import my_divita_plugins, numpy as np, divita\n"
        "from divita.shots.registry import DETECTORS\n"
        "f = np.concatenate([np.full((10, 27, 48, 3), v, np.uint8) for v in (20, 220)])\n"
        "print(DETECTORS.names()[-1], divita.detect_shots(f, detector='luma'))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "luma [(0, 9), (10, 19)]"
    helped = subprocess.run(
        [sys.executable, str(script), "shots", "--help"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert helped.returncode == 0, helped.stderr
    assert "luma = cuts where the mean brightness" in " ".join(helped.stdout.split())

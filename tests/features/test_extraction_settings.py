"""ExtractionSettings is the one source of the extraction's options: the flags of `divita extract`, `divita shots`
and `divita study`, the Python API (`divita.extract_features`), the Ray driver and the studies all read its
defaults, the detector defaults come from the shot-detector registry, and a study's feature variant is keyed by the
registry's fingerprint of its detector (so a newly registered parameter enters the key by itself)."""

from __future__ import annotations

import dataclasses

import pytest

import divita
from divita.cli import build_parser
from divita.features.plan import ExtractionSettings
from divita.shots import ShotDetector
from divita.shots.registry import DETECTORS, DetectorSpec, Param, param_default
from divita.studies import StudyOptions, variant_key
from divita.studies.variants import variant_settings

SETTINGS = [f for f in dataclasses.fields(ExtractionSettings) if f.name != "backbones"]
DEFAULTS = {f.name: f.default for f in SETTINGS}

# what users' scripts pass today: flag -> default, per command
EXTRACT_FLAGS = {
    "--weights": "default",
    "--detector": "transnetv2-vetted",
    "--threshold": 0.5,
    "--content-threshold": 27.0,
    "--fps": 24.0,
    "--fpc": 24,
    "--min-clip-frames": None,
    "--frames-per-clip-2d": 3,
    "--precision": "auto",
    "--batch-size": 16,
}
SHOTS_FLAGS = {"--detector": "transnetv2-vetted", "--threshold": 0.5, "--content-threshold": 27.0, "--fps": 24.0}
STUDY_FLAGS = {
    **{k: v for k, v in EXTRACT_FLAGS.items() if k not in ("--precision", "--batch-size")},
    "--extract-precision": "auto",
    "--extract-batch-size": 16,
}


def subparser(*names: str):
    """The argparse parser of ``divita NAME [SUBNAME]``."""
    p = build_parser()
    for name in names:
        action = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
        p = action.choices[name]
    return p


def flags(parser) -> dict:
    return {s: a for a in parser._actions for s in a.option_strings}


COMMANDS = {
    "extract": (("extract",), ["v.mp4", "--backbone", "shufflenet", "--out", "o"], EXTRACT_FLAGS),
    "shots": (("shots",), ["v.mp4"], SHOTS_FLAGS),
    "study": (("study", "segmentation"), ["v", "--labels", "l.csv", "--out", "o"], STUDY_FLAGS),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_flags_keep_their_names_and_defaults_and_are_the_settings(command):
    names, argv, expected = COMMANDS[command]
    parser = subparser(*names)
    have = flags(parser)
    for flag, default in expected.items():
        assert flag in have, flag
        assert have[flag].default == default, flag
        if have[flag].dest in DEFAULTS:
            assert have[flag].default == DEFAULTS[have[flag].dest], flag
    args = build_parser().parse_args([*names, *argv])
    for name, default in DEFAULTS.items():
        if hasattr(args, name) and not (command == "study" and name == "weights"):
            assert getattr(args, name) == default, name


def test_changing_a_settings_default_changes_every_commands_flag(monkeypatch):
    by_name = {f.name: f for f in dataclasses.fields(ExtractionSettings)}
    monkeypatch.setattr(by_name["fpc"], "default", 12)
    monkeypatch.setattr(by_name["fps"], "default", 12.5)
    monkeypatch.setattr(by_name["content_threshold"], "default", 20.0)
    for names, argv, _ in COMMANDS.values():
        args = build_parser().parse_args([*names, *argv])
        assert args.fps == 12.5 and args.content_threshold == 20.0
        if names[0] != "shots":
            assert args.fpc == 12
        assert "(default: 12.5)" in subparser(*names).format_help()
    assert flags(subparser("study", "cost"))["--frames-per-clip-2d"].default == 3


def test_the_detector_defaults_are_the_registrys():
    assert DEFAULTS["threshold"] == param_default("transnetv2", "threshold")
    assert DEFAULTS["content_threshold"] == param_default("content", "threshold")
    d = ShotDetector()
    assert (d.threshold, d.content_threshold, d.segment_frames) == (
        param_default("transnetv2", "threshold"),
        param_default("content", "threshold"),
        param_default("fixed", "segment_frames"),
    )
    assert flags(subparser("shots"))["--segment-frames"].default == param_default("fixed", "segment_frames")


def test_precision_choices_are_the_backbones():
    from divita.backbones import PRECISIONS
    from divita.features.plan import PRECISION_CHOICES

    assert tuple(PRECISION_CHOICES) == tuple(PRECISIONS)
    assert flags(subparser("extract"))["--precision"].choices == list(PRECISIONS)


class Taken(Exception):
    """Raised once a driver has built its settings: carries them."""


@pytest.fixture
def taken(monkeypatch):
    """Every driver checks its final settings with require_backbones(): record them there, and stop."""

    def take(self):
        raise Taken(self)

    monkeypatch.setattr(ExtractionSettings, "require_backbones", take)


def _settings_of(call) -> ExtractionSettings:
    with pytest.raises(Taken) as e:
        call()
    return e.value.args[0]


def test_the_python_api_the_ray_driver_the_cli_and_the_studies_read_the_same_defaults(taken, tmp_path, monkeypatch):
    from divita.cli import main
    from divita.distributed.extract import extract_ray
    from divita.studies import get_study

    reference = ExtractionSettings(("shufflenet",))
    api = _settings_of(lambda: divita.extract_features([tmp_path], ["shufflenet"], tmp_path / "o"))
    ray = _settings_of(lambda: extract_ray([tmp_path], ["shufflenet"], tmp_path / "o"))
    cli = _settings_of(lambda: main(["extract", str(tmp_path), "--backbone", "shufflenet", "--out", str(tmp_path)]))
    assert api == ray == cli == reference
    for f in SETTINGS:
        assert getattr(api, f.name) == f.default, f.name

    opts = StudyOptions(out=tmp_path)
    assert opts.extraction == ExtractionSettings()
    variant = opts.variant("shufflenet")
    assert variant == ExtractionSettings() and variant_key(variant) == variant_key(ExtractionSettings())

    def run(options):
        raise Taken(options)

    monkeypatch.setattr(get_study("segmentation"), "run", run)
    argv = ["study", "segmentation", str(tmp_path), "--labels", "l.csv", "--out", str(tmp_path / "s")]
    options = _settings_of(lambda: main(argv))
    assert options.extraction == ExtractionSettings() and options.weights_for("shufflenet") == DEFAULTS["weights"]


def test_keywords_over_settings_and_unknown_keywords(taken, tmp_path):
    from divita.distributed.extract import extract_ray

    base = ExtractionSettings(("shufflenet",), fpc=12)
    got = _settings_of(lambda: divita.extract_features([tmp_path], None, tmp_path, settings=base, fps=12.0))
    assert got == dataclasses.replace(base, fps=12.0)
    got = _settings_of(lambda: extract_ray([tmp_path], None, tmp_path, settings=base, detector="fixed", retries=0))
    assert got == dataclasses.replace(base, detector="fixed")
    for driver in (divita.extract_features, extract_ray):
        with pytest.raises(TypeError, match="not an extraction setting: fpz"):
            driver([tmp_path], ["shufflenet"], tmp_path, fpz=1)


def test_a_new_detector_parameter_enters_the_study_variant_key(monkeypatch):
    content = ExtractionSettings(detector="content")
    before = variant_key(content)
    assert variant_settings(content)["detector"] == {
        "name": "content",
        "content": {"threshold": 27.0, "min_scene_len": 15},
    }
    spec = DETECTORS.get("content")
    monkeypatch.setitem(
        DETECTORS._entries, "content", dataclasses.replace(spec, params=(*spec.params, Param("knob", 1.5)))
    )
    after = variant_key(content)
    assert after != before and after.startswith("content_fps24_fpc24_")
    assert variant_settings(content)["detector"]["content"]["knob"] == 1.5
    # a ready detector with another value of it is another variant; the combination carries it too
    tuned = ExtractionSettings(detector=ShotDetector("content", options={"content": {"knob": 2.0}}))
    assert variant_key(tuned) not in (before, after) and variant_key(tuned).startswith("content_fps24_")
    assert len({tuned: 1, content: 2}) == 2  # a variant with a ready detector is a dictionary key as well
    assert variant_settings(ExtractionSettings(detector="transnetv2+content"))["detector"]["content"]["knob"] == 1.5

    # a detector registered after import: its parameters key its variants, its name is a --detector choice
    monkeypatch.setitem(
        DETECTORS._entries,
        "strobe",
        DetectorSpec("strobe", "divita.shots.dips:DipStream", "flashes", (Param("level", 3),)),
    )
    strobe = ExtractionSettings(detector="strobe")
    assert variant_settings(strobe)["detector"] == {"name": "strobe", "strobe": {"level": 3}}
    assert variant_key(strobe).startswith("strobe_fps24_fpc24_")
    assert "strobe" in flags(subparser("extract"))["--detector"].choices
    lower = ShotDetector("strobe", options={"strobe": {"level": 1}})
    assert variant_key(ExtractionSettings(detector=lower)) != variant_key(strobe)

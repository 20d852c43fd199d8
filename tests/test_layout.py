"""The package layout's public surface: the top-level API, and a cheap ``import divita``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import divita


def test_top_level_api_resolves_to_the_stage_packages():
    from divita.features.extract import extract
    from divita.inference.predict import GenreClassifier
    from divita.shots import detect
    from divita.training import TrainConfig, train_model

    assert divita.detect_shots is detect
    assert divita.extract_features is extract
    assert divita.train is train_model
    assert divita.TrainConfig is TrainConfig
    assert divita.GenreClassifier is GenreClassifier
    assert set(divita._API) <= set(dir(divita))
    with pytest.raises(AttributeError):
        divita.no_such_name  # noqa: B018


def test_import_divita_and_the_parser_stay_free_of_torch():
    code = (
        "import sys, divita, divita.cli; divita.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'lightning', 'zarr', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_registry_lists_its_names_without_torch():
    code = (
        "import sys\n"
        "from divita.shots import list_detectors\n"
        "from divita.backbones import list_backbones, get_spec\n"
        "from divita.model import AGGREGATORS\n"
        "from divita.studies import list_studies\n"
        "print(len(list_detectors()), len(list_backbones()), get_spec('resnet').num_features, len(AGGREGATORS),\n"
        "      len(list_studies()), sorted(m for m in ('torch', 'lightning', 'zarr', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "9 7 2048 7 6 []"


def test_the_four_registries_share_one_class_and_one_unknown_name_error():
    from divita.backbones.registry import BACKBONES
    from divita.errors import DivitaError
    from divita.model.registry import AGGREGATORS
    from divita.registry import Registry, load_ref
    from divita.shots.registry import DETECTORS
    from divita.studies.registry import STUDIES

    cases = [
        (DETECTORS, "shot detector"),
        (BACKBONES, "backbone"),
        (AGGREGATORS, "clip aggregation"),
        (STUDIES, "study"),
    ]
    for registry, kind in cases:
        assert isinstance(registry, Registry) and registry.kind == kind and list(registry) == registry.names()
        first = registry.names()[0]
        assert first in registry and registry.get(first).name == first and "nope" not in registry
        with pytest.raises(DivitaError) as e:
            registry.get("nope")
        assert str(e.value) == f"unknown {kind} 'nope'; choose from: {', '.join(registry.names())}"
        with pytest.raises(ValueError, match="registered twice"):
            registry.register(registry.get(first))
    assert load_ref("divita.errors:DivitaError") is DivitaError
    with pytest.raises(ValueError, match="module:attr"):
        load_ref("divita.errors.DivitaError")


def test_a_registry_adds_and_removes_entries_in_order():
    from dataclasses import dataclass

    from divita.registry import Registry

    @dataclass(frozen=True)
    class Entry:
        name: str

    r = Registry("thing")
    a, b = r.register(Entry("a")), r.register(Entry("b"))
    assert r.names() == ["a", "b"] and r.entries() == [a, b] and len(r) == 2
    with pytest.raises(ValueError, match="empty"):
        r.register(Entry(""))
    assert r.unregister("a") is a and r.names() == ["b"]


def test_package_facades_are_lazy():
    code = (
        "import sys, divita.shots, divita.backbones, divita.model, divita.training, divita.studies, divita.clips, "
        "divita.video, divita.metrics\n"
        "print(sorted(m for m in sys.modules if m.count('.') > 1 and m.startswith('divita.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

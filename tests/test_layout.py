"""The package layout's public surface: the top-level API, the old module paths kept as aliases, and a
cheap ``import divita``."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import divita
from divita import _legacy


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


@pytest.mark.parametrize("old", sorted(_legacy.ALIASES))
def test_old_module_paths_still_import_and_warn(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    targets = [importlib.import_module(t) for t in _legacy.ALIASES[old]]
    public = [n for t in targets for n in vars(t) if not n.startswith("_")]
    assert public, old
    for name in public:
        assert hasattr(module, name), f"{old}.{name}"
    if len(targets) == 1:
        assert module is targets[0]  # the very module: a monkeypatch through the old path reaches the code


def test_old_names_give_the_same_objects():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from divita.commands.train import run
        from divita.data import SnippetSet, read_labels
    from divita.cli.train import run as new_run
    from divita.datasets.labels import read_labels as new_read_labels
    from divita.features.snippets import SnippetSet as NewSnippetSet

    assert (SnippetSet, read_labels, run) == (NewSnippetSet, new_read_labels, new_run)

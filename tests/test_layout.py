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

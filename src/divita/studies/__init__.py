"""The paper's studies beyond Table 6, rerun on any folder of labelled trailer videos (``divita study NAME``).

One module per study plus one registration in :mod:`.registry` (:data:`~divita.studies.registry.STUDIES`), in
registry order:

- :mod:`.segmentation`: clips inside shots vs fixed-length clips that ignore shots;
- :mod:`.fps`: the frame rate the trailers are decoded at;
- :mod:`.extension`: clips per snippet, and all snippets vs one central snippet at evaluation;
- :mod:`.aggregation`: the clip aggregators (the authors' savg, GRU, convolution; divita's transformer);
- :mod:`.fusion`: image only, video only, late and early fusion;
- :mod:`.cost`: parameters, FLOPs per clip and speed of every backbone and the DIViTA head (no training).

What they share: :mod:`.base` (the :class:`Study` base class), :mod:`.variants` (feature variants, each an
:class:`~divita.features.plan.ExtractionSettings` without backbones keyed by the settings that change its
features; the runs and rows made of them), :mod:`.options` (:class:`StudyOptions`), :mod:`.running` (the
extraction, the study's labels, one resumable training run per row and split) and :mod:`.tables`; :mod:`.plots`
the pictures, :mod:`.demo_videos` the generated videos of ``divita demo --study``. Importing this package needs
no torch.

From Python::

    from divita.features.plan import ExtractionSettings
    from divita.studies import StudyOptions, run_study
    run_study("segmentation", StudyOptions(out="results/studies", videos=["trailers/"], labels="labels.csv",
                                           backbones=["shufflenet", "r2plus1d"],
                                           extraction=ExtractionSettings(fps=12)))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from divita.lazy import lazy_exports

if TYPE_CHECKING:
    from divita.studies.options import StudyOptions
    from divita.studies.tables import StudyResult

_EXPORTS = {
    "STUDIES": "registry",
    "StudySpec": "registry",
    "get_study": "registry",
    "list_studies": "registry",
    "Row": "variants",
    "RunSpec": "variants",
    "Stream": "variants",
    "variant_key": "variants",
    "Study": "base",
    "StudyResult": "tables",
    "StudyOptions": "options",
    "parse_weights": "options",
}
__getattr__, __dir__, _lazy_all = lazy_exports(__name__, _EXPORTS)
__all__ = [*_lazy_all, "run_study"]


def run_study(name: str, options: StudyOptions, log=None) -> StudyResult:
    """Run the study ``name`` with ``options`` (its own options in ``options.extra``, defaults filled in).
    Raises :class:`~divita.errors.DivitaError` for an unknown name."""
    from divita.studies.registry import get_study

    study = get_study(name)
    options.extra = {**study.defaults(), **options.extra}
    return study.run(options, log)

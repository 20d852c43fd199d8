"""The paper's studies beyond Table 6, rerun on any folder of labelled trailer videos (``divita study NAME``).

One module per study, each registering itself (:func:`register_study`), in registry order:

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

# isort: off
# The study modules register their studies as they are imported: this order is the registry order (the order
# above, the order `divita study --help` lists them in), so it is kept by hand.
from divita.studies import segmentation  # noqa: F401
from divita.studies import fps  # noqa: F401
from divita.studies import extension  # noqa: F401
from divita.studies import aggregation  # noqa: F401
from divita.studies import fusion  # noqa: F401
from divita.studies import cost  # noqa: F401

# isort: on
from divita.studies._registry import get_study, list_studies, register_study
from divita.studies.base import Study, StudyResult
from divita.studies.options import StudyOptions, parse_weights
from divita.studies.variants import Row, RunSpec, Stream, variant_key


def run_study(name: str, options: StudyOptions, log=None) -> StudyResult:
    """Run the study ``name`` with ``options`` (its own options in ``options.extra``, defaults filled in)."""
    study = get_study(name)
    options.extra = {**study.defaults(), **options.extra}
    return study.run(options, log)


__all__ = [
    "Row",
    "RunSpec",
    "Stream",
    "Study",
    "StudyOptions",
    "StudyResult",
    "get_study",
    "list_studies",
    "parse_weights",
    "register_study",
    "run_study",
    "variant_key",
]

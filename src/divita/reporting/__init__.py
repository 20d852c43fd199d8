"""Reporting: pictures and a markdown page for a run or a results directory.

:mod:`.report` (:func:`make_report`, what ``divita report`` runs) puts the page together from :mod:`.readers`
(the directories, checked), :mod:`.matrices`, :mod:`.figures` and :mod:`.markdown`.
"""

from divita.lazy import lazy_exports

_EXPORTS = {
    "make_report": "report",
    "classify_directory": "readers",
    "load_run": "readers",
    "RunData": "readers",
    "cooccurrence_matrix": "matrices",
    "prediction_error_matrix": "matrices",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

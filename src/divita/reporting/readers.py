"""What a report reads: run directories (``divita train``) and results directories (``divita reproduce`` /
``divita demo``), checked, each problem a one-line :class:`DivitaError` naming the file.

* :func:`classify_directory`: is a path a run directory, a results directory, or neither;
* :func:`load_run`: a run directory's metrics, test (and validation) predictions, thresholds, history,
  hparams (a :class:`RunData`);
* :func:`read_results`: a results directory's Table-6 test table, its finished run directories, the grid config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.genres import GENRES

METRICS = ("uap", "map", "wap", "sap")
LABELS = {"uap": "μAP", "map": "mAP", "wap": "wAP", "sap": "sAP"}
RUN_FILES = ("metrics.csv", "predictions_tst.npz")


@dataclass
class RunData:
    """What a report needs from one run directory."""

    run_dir: Path
    metrics: object  # pandas DataFrame of metrics.csv
    selection: str  # "loss" or "uap": the checkpoint the predictions come from
    mids: np.ndarray
    y_true: np.ndarray  # (N, 10) test labels
    y_prob: np.ndarray  # (N, 10) test probabilities
    thresholds: np.ndarray  # (10,) decision thresholds
    threshold_source: str  # where the thresholds came from, for captions
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # mids, y_true, y_prob of validation
    history: object | None = None  # DataFrame of history.csv
    hparams: dict = field(default_factory=dict)

    def row(self, subset: str, convention: str):
        """The metrics.csv row of ``subset`` ("val"/"tst") in ``convention`` for the selected checkpoint, or None."""
        m = self.metrics
        sel = m[(m.subset == subset) & (m.convention == convention) & (m.selection == self.selection)]
        return sel.iloc[0] if len(sel) else None

    def epoch(self, selection: str) -> int | None:
        """The epoch of the checkpoint selected by ``selection`` ("loss"/"uap"), or None when metrics.csv has none."""
        m = self.metrics
        sel = m[m.selection == selection]
        if "epoch" not in m.columns or not len(sel):
            return None
        return int(sel["epoch"].iloc[0])


def read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``predictions_*.npz`` file -> mids (N,) str, y_true (N, G) int8 0/1 labels, y_prob (N, G) float64.

    Raises DivitaError naming ``path`` when it is unreadable, lacks an array, has other shapes, holds no trailer,
    labels other than 0/1 or non-finite probabilities.
    """
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = [k for k in ("mids", "y_true", "y_prob") if k not in d.files]
            if missing:
                raise DivitaError(path, f"predictions file lacks array(s) {', '.join(missing)}")
            mids, y_true, y_prob = d["mids"], d["y_true"], d["y_prob"]
    except DivitaError:
        raise
    except Exception as e:  # zip/npy errors
        raise DivitaError(path, f"not a readable predictions file ({type(e).__name__})") from None
    g = len(GENRES)
    if y_true.ndim != 2 or y_true.shape[1] != g or y_prob.shape != y_true.shape or len(mids) != len(y_true):
        raise DivitaError(
            path,
            f"expected y_true and y_prob of shape (N, {g}) and N mids, got {y_true.shape}, {y_prob.shape}, {len(mids)}",
        )
    if len(y_true) == 0:
        raise DivitaError(path, "no trailers in the predictions file")
    if not np.isin(y_true, (0, 1)).all():
        raise DivitaError(path, "y_true must hold 0/1 labels")
    if not np.isfinite(y_prob).all():
        raise DivitaError(path, "y_prob holds non-finite values")
    return mids.astype(str), y_true.astype(np.int8), y_prob.astype(np.float64)


def read_metrics(path: Path):
    """A run's ``metrics.csv`` as a pandas DataFrame; DivitaError naming ``path`` when it is unreadable, lacks a
    column or has no test-set row."""
    import pandas as pd

    try:
        m = pd.read_csv(path)
    except Exception as e:
        raise DivitaError(path, f"not a readable CSV ({type(e).__name__})") from None
    need = ["subset", "convention", "selection", *METRICS, *GENRES]
    missing = [c for c in need if c not in m.columns]
    if missing:
        raise DivitaError(path, f"not a divita metrics file: missing column(s) {', '.join(missing)}")
    if not (m.subset == "tst").any():
        raise DivitaError(path, "no test-set rows (subset 'tst')")
    return m


def _read_thresholds(run_dir: Path, val) -> tuple[np.ndarray, str]:
    """Thresholds from best.ckpt; else tuned on the validation predictions as training does; else 0.5."""
    ckpt = run_dir / "best.ckpt"
    if ckpt.is_file():
        try:
            import torch

            payload = torch.load(ckpt, map_location="cpu", weights_only=True)
            t = np.asarray(payload["thresholds"], dtype=np.float64)
            if t.shape == (len(GENRES),) and np.isfinite(t).all():
                return t, "F1-optimal on validation, from best.ckpt"
        except Exception:
            pass
    if val is not None:
        from divita.training import tune_thresholds

        return np.asarray(
            tune_thresholds(val[1], val[2])
        ), "F1-optimal on the validation predictions (recomputed: best.ckpt unreadable or missing)"
    return np.full(len(GENRES), 0.5), "0.5 (no checkpoint and no validation predictions)"


def load_run(run_dir: str | Path) -> RunData:
    """Read and check a finished run directory; DivitaError naming the file when one is missing or damaged."""
    import pandas as pd

    run_dir = Path(run_dir)
    for name in RUN_FILES:
        if not (run_dir / name).is_file():
            raise DivitaError(run_dir, f"not a finished run directory: {name} missing")
    metrics = read_metrics(run_dir / "metrics.csv")
    mids, y_true, y_prob = read_predictions(run_dir / "predictions_tst.npz")
    val = read_predictions(run_dir / "predictions_val.npz") if (run_dir / "predictions_val.npz").is_file() else None
    hparams: dict = {}
    if (run_dir / "hparams.json").is_file():
        try:
            hparams = json.loads((run_dir / "hparams.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            hparams = {}
    selection = hparams.get("select_by") if hparams.get("select_by") in set(metrics.selection) else None
    if selection is None:
        selection = "loss" if "loss" in set(metrics.selection) else str(metrics.selection.iloc[0])
    thresholds, source = _read_thresholds(run_dir, val)
    history = None
    if (run_dir / "history.csv").is_file():
        try:
            history = pd.read_csv(run_dir / "history.csv")
            if "epoch" not in history.columns or history.empty:
                history = None
        except Exception:
            history = None
    return RunData(run_dir, metrics, selection, mids, y_true, y_prob, thresholds, source, val, history, hparams)


def _find_transfer(path: Path) -> Path | None:
    """The ``transfer/`` directory ``path`` is or holds (itself, its child, or its one grandchild), or None."""
    if (path / "tst.csv").is_file() or ((path / "runs").is_dir() and path.name == "transfer"):
        return path
    if (path / "transfer").is_dir():
        return path / "transfer"
    below = sorted(p for p in path.glob("*/transfer") if p.is_dir())
    if len(below) == 1:
        return below[0]
    if len(below) > 1:
        raise DivitaError(
            path, f"holds several results directories ({', '.join(str(p.parent.name) for p in below)}); name one"
        )
    return None


def classify_directory(path: str | Path) -> tuple[str, Path]:
    """What a report is drawn from: ("run", run_dir) or ("results", transfer_dir).

    Raises DivitaError naming ``path`` when it is missing, not a directory, or neither kind (or holds several
    results directories).
    """
    path = Path(path)
    if not path.exists():
        raise DivitaError(path, "no such directory")
    if not path.is_dir():
        raise DivitaError(path, "not a directory (give a run directory or a results directory)")
    if (path / "metrics.csv").is_file():
        return "run", path
    transfer = _find_transfer(path)
    if transfer is not None:
        return "results", transfer
    raise DivitaError(
        path,
        "neither a run directory (metrics.csv, predictions_tst.npz from `divita train`) nor a results directory "
        "(transfer/tst.csv, transfer/runs/ from `divita reproduce` or `divita demo`)",
    )


def read_results(transfer: Path):
    """A results directory's ``transfer/`` -> (test table in percent indexed by row name, {row name: {split:
    run_dir}} of its finished runs, the select_by of its grid, its grid.json config).

    Without a ``tst.csv`` (an interrupted reproduce) the table is summarised from the finished runs. Raises
    DivitaError naming ``tst.csv`` when it is unreadable, lacks columns or rows, or ``transfer`` when there is
    neither a table nor a finished run.
    """
    import pandas as pd

    from divita.datasets.release import TABLE6_BY_NAME
    from divita.evaluation.reproduce import slug, summarise

    grid = {}
    if (transfer / "grid.json").is_file():
        try:
            grid = json.loads((transfer / "grid.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            grid = {}
    select_by = (grid.get("config") or {}).get("select_by", "loss")
    runs: dict[str, dict[int, Path]] = {}
    runs_dir = transfer / "runs"
    by_slug = {}
    tst = None
    if (transfer / "tst.csv").is_file():
        try:
            tst = pd.read_csv(transfer / "tst.csv", index_col="model")
        except Exception as e:
            raise DivitaError(transfer / "tst.csv", f"not a readable results table ({type(e).__name__}: {e})") from None
        need = [f"{k}_{s}" for k in (*METRICS, *GENRES) for s in ("mean", "std")]
        missing = [c for c in need if c not in tst.columns]
        if missing:
            raise DivitaError(
                transfer / "tst.csv",
                "not a divita results table: missing column(s) "
                f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}",
            )
        if tst.empty:
            raise DivitaError(transfer / "tst.csv", "the results table has no rows")
        by_slug = {slug(str(n)): str(n) for n in tst.index}
    else:
        by_slug = {slug(n): n for n in TABLE6_BY_NAME}
    if runs_dir.is_dir():
        for d in sorted(runs_dir.glob("*/split*")):
            name = by_slug.get(d.parent.name)
            if name is None or not all((d / f).is_file() for f in RUN_FILES):
                continue
            try:
                split = int(d.name.removeprefix("split"))
            except ValueError:
                continue
            runs.setdefault(name, {})[split] = d
    if tst is None:
        if not runs:
            raise DivitaError(transfer, "no tst.csv and no finished runs under runs/: nothing to report")
        # an interrupted reproduce: summarise the finished runs as reproduce would
        rows = [TABLE6_BY_NAME[n] for n in TABLE6_BY_NAME if n in runs]
        flat = {(n, s): d for n in runs for s, d in runs[n].items()}
        tst = summarise(flat, rows, "tst", "paper", select_by)
    return tst, runs, select_by, grid


def representative_split(run_dirs: dict[int, Path], mean_uap: float, select_by: str) -> tuple[int, float] | None:
    """(split, test μAP in %) of the run whose test μAP (paper convention, checkpoint selected by ``select_by``)
    is closest to the row mean ``mean_uap``; None when no run has a readable metrics.csv with that row."""
    best = None
    for split, d in sorted(run_dirs.items()):
        try:
            m = read_metrics(d / "metrics.csv")
        except DivitaError:
            continue
        r = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == select_by)]
        if not len(r):
            continue
        u = 100 * float(r["uap"].iloc[0])
        if best is None or abs(u - mean_uap) < abs(best[1] - mean_uap):
            best = (split, u)
    return best


def read_selection(path: Path):
    """A reproduce's ``selection.csv`` (test μAP per model by checkpoint selection) as a DataFrame, or None when
    it is missing, unreadable or lacks its columns (the report then has no such section)."""
    import pandas as pd

    if not path.is_file():
        return None
    try:
        sel = pd.read_csv(path)
    except Exception:
        return None
    return sel if {"model", "selected_by", "tst_uap_mean", "tst_uap_std"} <= set(sel.columns) else None


def labels_of_run(run: RunData) -> tuple[np.ndarray, str]:
    """The true labels (N, G) of a run's distinct validation and test trailers (test only without validation
    predictions), and what they are, for captions."""
    if run.val is None:
        return run.y_true, f"{len(run.y_true)} test trailers"
    mids = np.r_[run.val[0], run.mids]
    y = np.r_[run.val[1], run.y_true]
    _, first = np.unique(mids, return_index=True)
    return y[np.sort(first)], f"{len(first)} validation and test trailers"


def labels_of_runs(runs: dict[str, dict[int, Path]]) -> np.ndarray | None:
    """The true labels (N, G) of every distinct validation and test trailer any of ``runs`` saw (the splits' test
    sets overlap: one row per trailer id, the last read winning), or None when there is none."""
    labels: dict[str, np.ndarray] = {}
    for _name, by_split in runs.items():
        for _split, d in by_split.items():
            for f in ("predictions_val.npz", "predictions_tst.npz"):
                if (d / f).is_file():
                    mids, y, _ = read_predictions(d / f)
                    labels.update(zip(mids, y))
    return np.stack(list(labels.values())) if labels else None

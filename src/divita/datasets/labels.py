"""Labels of a release-format dataset (``mtgc.csv``: ``mid``, the 10 genres, ``split0..2``) and its splits.

Each split column assigns every trailer to ``0`` (training), ``1`` (validation) or ``2`` (test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from divita.errors import DivitaError
from divita.genres import GENRES

SPLIT_COLUMNS = ("split0", "split1", "split2")
LABEL_COLUMNS = ("mid", *GENRES, *SPLIT_COLUMNS)
SUBSETS = {"trn": 0, "val": 1, "tst": 2}


def read_labels_csv(path: Path, not_found: str):
    """A labels CSV as a pandas DataFrame, ``mid`` kept as text; a DivitaError naming the file when it
    is missing (with the message ``not_found``) or is not a readable CSV. Columns are not checked."""
    import pandas as pd

    if not path.is_file():
        raise DivitaError(path, not_found)
    try:
        return pd.read_csv(path, dtype={"mid": str})
    except Exception as e:
        raise DivitaError(path, f"not a readable CSV ({e})") from None


def read_labels(path: str | Path):
    """Read and validate an mtgc.csv: ``mid``, the 10 genre columns (0/1), ``split0..2`` (0/1/2).

    Returns a pandas DataFrame with exactly those columns, in that order.
    """
    import pandas as pd

    path = Path(path)
    df = read_labels_csv(path, "labels file not found (`divita download` fetches mtgc.csv)")
    cols = list(df.columns)
    missing = [c for c in LABEL_COLUMNS if c not in cols]
    extra = [c for c in cols if c not in LABEL_COLUMNS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(map(str, extra))}")
        raise DivitaError(path, "; ".join(parts) + f" (expected: {', '.join(LABEL_COLUMNS)})")
    df = df[list(LABEL_COLUMNS)]
    if df["mid"].isna().any():
        raise DivitaError(path, "empty mid")
    dup = df["mid"][df["mid"].duplicated()]
    if len(dup):
        raise DivitaError(path, f"duplicate mid {dup.iloc[0]!r}")
    for cols_, allowed, what in ((GENRES, {0, 1}, "labels"), (SPLIT_COLUMNS, {0, 1, 2}, "splits")):
        block = df[list(cols_)]
        numeric = block.apply(pd.to_numeric, errors="coerce")
        bad = numeric.isna() | ~numeric.isin(allowed)
        if bad.to_numpy().any():
            r, c = np.argwhere(bad.to_numpy())[0]
            raise DivitaError(
                path,
                f"{what} must be in {sorted(allowed)}: row {r + 2} (mid {df['mid'].iloc[r]}), "
                f"column {cols_[c]!r} has {block.iloc[r, c]!r}",
            )
        df[list(cols_)] = numeric.astype(np.int64)
    return df


def split_subset(df, split: int, subset: str, path: str | Path = "mtgc.csv") -> tuple[list[str], np.ndarray]:
    """Trailer ids and (N, 10) float32 labels of one subset ('trn'/'val'/'tst') of one split."""
    if split not in (0, 1, 2):
        raise DivitaError(path, f"split must be 0, 1 or 2, got {split}")
    rows = df[df[f"split{split}"] == SUBSETS[subset]]
    if len(rows) == 0:
        raise DivitaError(path, f"split{split} has no {subset} trailers (empty split)")
    return rows["mid"].tolist(), rows[list(GENRES)].to_numpy(np.float32)

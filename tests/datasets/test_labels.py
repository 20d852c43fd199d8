"""The labels file (mtgc.csv): the release layout accepted, bad files refused naming the file, split subsets."""

import pandas as pd
import pytest

from divita.datasets.labels import LABEL_COLUMNS, read_labels, split_subset
from divita.errors import DivitaError


def write_csv(tmp_path, df):
    p = tmp_path / "mtgc.csv"
    df.to_csv(p, index=False)
    return p


def good_frame(n=6):
    df = pd.DataFrame({"mid": [f"tt{i}" for i in range(n)]})
    for c in LABEL_COLUMNS[1:]:
        df[c] = 0
    df["drama"] = 1
    df["split0"] = [0, 0, 0, 0, 1, 2][:n]
    return df


def test_read_labels_accepts_the_release_layout(tmp_path):
    df = read_labels(write_csv(tmp_path, good_frame()))
    assert list(df.columns) == list(LABEL_COLUMNS)
    mids, y = split_subset(df, 0, "val")
    assert mids == ["tt4"] and y.shape == (1, 10)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.drop(columns=["horror"]), "missing column(s) horror"),
        (lambda d: d.assign(year=2000), "unexpected column(s) year"),
        (lambda d: d.assign(action=[0, 2, 0, 0, 0, 0]), "labels must be in [0, 1]"),
        (lambda d: d.assign(split1=[0, 0, 3, 0, 0, 0]), "splits must be in [0, 1, 2]"),
        (lambda d: d.assign(mid=["a", "a", "b", "c", "d", "e"]), "duplicate mid 'a'"),
    ],
)
def test_read_labels_rejects_bad_files_naming_the_file(tmp_path, mutate, message):
    p = write_csv(tmp_path, mutate(good_frame()))
    with pytest.raises(DivitaError) as e:
        read_labels(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_empty_split_is_an_error(tmp_path):
    df = good_frame()
    df["split2"] = 0
    with pytest.raises(DivitaError, match="split2 has no val trailers"):
        split_subset(read_labels(write_csv(tmp_path, df)), 2, "val")

import numpy as np
import pytest
import zarr

from divita.errors import DivitaError
from divita.features.store import load_features, open_store


def make_store(path, arrays, num_features, zarr_format=2):
    g = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    if num_features is not None:
        g.attrs["num_features"] = num_features
    for k, v in arrays.items():
        g.create_array(k, shape=v.shape, dtype=v.dtype)[...] = v
    return path


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_loads_release_v2_and_divita_v3_stores_into_one_matrix(tmp_path, zarr_format):
    a, b = np.arange(12, dtype=np.float32).reshape(3, 4), np.ones((5, 4), np.float32)
    p = make_store(tmp_path / "s.zarr", {"tt1": a, "tt2": b}, 4, zarr_format)
    t = load_features(p, ["tt2", "tt1"])
    assert t.features.shape == (8, 4) and t.lengths.tolist() == [5, 3]
    np.testing.assert_array_equal(t.trailer(1), a)
    np.testing.assert_array_equal(t.subset([1]).trailer(0), a)


@pytest.mark.parametrize(
    "arrays, num_features, mids, message",
    [
        (
            {"tt1": np.ones((3, 4), np.float32)},
            4,
            ["tt1", "tt9"],
            "trailer 'tt9' listed in the labels is missing from the store",
        ),
        ({"tt1": np.ones((3, 5), np.float32)}, 4, ["tt1"], "array has 5 features but the store says num_features=4"),
        ({"tt1": np.array([[1, np.nan]], np.float32)}, 2, ["tt1"], "features contain NaN or inf"),
        ({"tt1": np.array([[1, np.inf]], np.float32)}, 2, ["tt1"], "features contain NaN or inf"),
        ({"tt1": np.ones((3, 4), np.float32)}, None, ["tt1"], "'num_features' is missing"),
    ],
)
def test_bad_stores_give_one_line_errors_naming_the_store(tmp_path, arrays, num_features, mids, message):
    p = make_store(tmp_path / "bad.zarr", arrays, num_features)
    with pytest.raises(DivitaError) as e:
        load_features(p, mids)
    assert str(p) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_missing_store_says_how_to_get_it(tmp_path):
    with pytest.raises(DivitaError, match="divita download"):
        open_store(tmp_path / "nope.zarr")

import numpy as np
import pytest
import zarr

from divita.errors import DivitaError
from divita.features.store import open_store
from divita.features.store_read import load_features


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


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_concurrent_reads_equal_reading_each_trailer_and_work_inside_a_running_event_loop(
    tmp_path, zarr_format, monkeypatch
):
    """A local store's arrays are read concurrently through zarr's asynchronous API: the same arrays as
    read_trailer's, arrays of several chunks included, in the order asked, also from a thread running an event
    loop (a server's)."""
    import asyncio

    from divita.features.store_read import read_arrays, read_trailer

    rng = np.random.default_rng(0)
    arrays = {f"tt{i}": rng.standard_normal((int(rng.integers(1, 90)), 6)).astype(np.float32) for i in range(70)}
    p = tmp_path / "s.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=zarr_format)
    g.attrs["num_features"] = 6
    for k, v in arrays.items():
        g.create_array(k, shape=v.shape, dtype=v.dtype, chunks=(16, 6))[...] = v  # several chunks per array
    mids = sorted(arrays, reverse=True)
    import divita.features.store_read as store_read

    with monkeypatch.context() as m:  # every array comes from the concurrent read, none read again one by one
        m.setattr(store_read, "read_trailer", lambda *a: pytest.fail("read again one by one"))
        got = read_arrays(p, mids)
    for mid, x in zip(mids, got):
        np.testing.assert_array_equal(x, arrays[mid])
        np.testing.assert_array_equal(x, read_trailer(p, mid))

    async def in_a_loop():
        return load_features(p, mids[:5])

    table = asyncio.run(in_a_loop())
    np.testing.assert_array_equal(table.trailer(4), arrays[mids[4]])


def test_a_damaged_array_among_good_ones_gives_the_error_of_reading_it_alone(tmp_path):
    from divita.features.store_read import read_trailer

    good = {f"tt{i}": np.ones((4, 3), np.float32) * i for i in range(40)}
    p = make_store(tmp_path / "s.zarr", {**good, "tt20": np.array([[1, np.nan, 2]], np.float32)}, 3)
    (p / "tt30" / "0.0").write_bytes((p / "tt30" / "0.0").read_bytes()[:20])  # a truncated chunk
    with pytest.raises(DivitaError) as alone:
        read_trailer(p, "tt20")
    with pytest.raises(DivitaError) as among:
        load_features(p, sorted(good))
    assert str(among.value) == str(alone.value)
    with pytest.raises(DivitaError, match="tt30.*truncated"):
        load_features(p, [m for m in sorted(good) if m != "tt20"])

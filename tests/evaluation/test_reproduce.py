import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from builders.release import IMAGE_STORE
from divita.cli import main
from divita.errors import DivitaError
from divita.evaluation.reproduce import reproduce
from divita.training import TrainConfig

ROWS = ["ShuffleNet-2D", "ShuffleNet-Fusion"]


def base(release):
    return TrainConfig(data_dir=str(release), image_store="-", video_store=None, max_epochs=2, batch_size=16, threads=1)


@pytest.fixture(scope="module")
def grid(tiny_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    result = reproduce(
        tiny_release, out, rows=ROWS, splits=(0, 1), base=base(tiny_release), progress=False, log=lambda s: None
    )
    return out, result


def test_tables_hold_mean_and_sample_std_over_splits(grid):
    out, result = grid
    tst = pd.read_csv(out / "transfer" / "tst.csv", index_col="model")
    assert list(tst.index) == ROWS and (tst["splits"] == 2).all() and (tst["protocol"] == "divita").all()
    for row, slug in zip(ROWS, ["shufflenet-2d", "shufflenet-fusion"]):
        uaps = []
        for split in (0, 1):
            m = pd.read_csv(out / "transfer" / "runs" / slug / f"split{split}" / "metrics.csv")
            m = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == "uap")]
            uaps.append(100 * m["uap"].iloc[0])
        assert tst.loc[row, "uap_mean"] == pytest.approx(np.mean(uaps), abs=0.006)
        assert tst.loc[row, "uap_std"] == pytest.approx(np.std(uaps, ddof=1), abs=0.006)
    for name in ("val.csv", "val_sklearn.csv", "tst_sklearn.csv", "selection.csv", "table6.md"):
        assert (out / "transfer" / name).is_file()
    md = (out / "transfer" / "table6.md").read_text()
    assert "| ShuffleNet-Fusion |" in md and "72.11±0.56" in md  # the paper's numbers beside ours
    assert "Training protocol: divita." in md


def test_rerun_keeps_finished_runs(tiny_release, grid):
    out, _ = grid
    logs = []
    reproduce(tiny_release, out, rows=ROWS, splits=(0, 1), base=base(tiny_release), progress=False, log=logs.append)
    assert "4 already finished, 0 to train" in logs[0]


def test_a_finished_run_with_another_configuration_is_not_silently_mixed_in(tiny_release, grid):
    out, _ = grid
    with pytest.raises(DivitaError, match="another configuration: max_epochs=2 \\(asked 3\\)"):
        reproduce(
            tiny_release,
            out,
            rows=ROWS[:1],
            splits=(0,),
            base=TrainConfig(
                data_dir=str(tiny_release), image_store="-", video_store=None, max_epochs=3, batch_size=16, threads=1
            ),
            progress=False,
            log=lambda s: None,
        )


def test_reproduce_downloads_from_a_mirror_then_trains_and_writes_the_tables(tiny_release, tmp_path):
    from builders.http_server import serve_directory
    from divita.datasets.synthetic import make_mirror

    sums = make_mirror(tiny_release, tmp_path / "mirror")
    (tmp_path / "md5sums.txt").write_text("".join(f"{v}  {k}\n" for k, v in sums.items()))
    data_dir, out = tmp_path / "data", tmp_path / "results"
    with serve_directory(tmp_path / "mirror") as mirror:
        code = main(
            [
                "reproduce",
                "--data-dir",
                str(data_dir),
                "--out",
                str(out),
                "--rows",
                "ShuffleNet-2D",
                "--splits",
                "0",
                "1",
                "--download",
                "--base-url",
                mirror.url,
                "--checksums",
                str(tmp_path / "md5sums.txt"),
                "--max-epochs",
                "2",
                "--threads",
                "1",
                "--no-progress",
            ]
        )
    assert code == 0
    assert (data_dir / IMAGE_STORE / ".zgroup").is_file() and (data_dir / "mtgc.csv").is_file()
    assert not (data_dir / "trailers_k_shufflenet_fps24_fpc24.zarr").exists()  # only what the rows need
    tst = pd.read_csv(out / "transfer" / "tst.csv")
    assert tst["model"].tolist() == ["ShuffleNet-2D"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "divita", *args], capture_output=True, text=True, timeout=120)


def test_cli_bad_inputs_are_one_line_errors_without_traceback(tiny_release, tmp_path):
    r = run_cli("reproduce", "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "data directory not found" in err[0] and "divita download" in err[0]


def test_train_cli_prints_no_lightning_banners(tiny_release, tmp_path):
    # importing lightning sets its loggers to INFO: "GPU available", "TPU available", tips, "`Trainer.fit` stopped"
    r = run_cli(
        "train",
        "--data-dir",
        str(tiny_release),
        "--image-store",
        IMAGE_STORE,
        "--video-store",
        "none",
        "--split",
        "0",
        "--out",
        str(tmp_path / "run"),
        "--max-epochs",
        "2",
        "--threads",
        "1",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr
    assert (tmp_path / "run" / "metrics.csv").is_file()


@pytest.mark.parametrize(
    "case", ["missing_labels", "bad_columns", "missing_mid", "bad_num_features", "nan", "empty_split"]
)
def test_train_cli_bad_inputs(tiny_release, tmp_path, capsys, case):
    import shutil

    import zarr

    data = tmp_path / "data"
    shutil.copytree(tiny_release, data)
    labels = pd.read_csv(data / "mtgc.csv", dtype={"mid": str})
    store = zarr.open_group(str(data / IMAGE_STORE), mode="r+")
    first = labels["mid"].iloc[0]
    expect = {
        "missing_labels": ("mtgc.csv", "labels file missing"),
        "bad_columns": ("mtgc.csv", "missing column(s) sci-fi"),
        "missing_mid": (IMAGE_STORE, "missing from the store"),
        "bad_num_features": (IMAGE_STORE, "features but the store says num_features=99"),
        "nan": (IMAGE_STORE, "NaN or inf"),
        "empty_split": ("mtgc.csv", "split0 has no val trailers"),
    }[case]
    if case == "missing_labels":
        (data / "mtgc.csv").unlink()
    elif case == "bad_columns":
        labels.drop(columns=["sci-fi"]).to_csv(data / "mtgc.csv", index=False)
    elif case == "missing_mid":
        shutil.rmtree(data / IMAGE_STORE / first)
    elif case == "bad_num_features":
        store.attrs["num_features"] = 99
    elif case == "nan":
        a = store[first]
        a[0, 0] = np.nan
    elif case == "empty_split":
        labels.loc[labels.split0 == 1, "split0"] = 0
        labels.to_csv(data / "mtgc.csv", index=False)
    code = main(
        [
            "train",
            "--data-dir",
            str(data),
            "--ix",
            IMAGE_STORE,
            "--vx",
            "none",
            "--split",
            "0",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and expect[0] in err[0] and expect[1] in err[0], err


def test_evaluate_refuses_a_checkpoint_from_another_configuration(tiny_release, grid, tmp_path, capsys):
    import shutil

    import zarr

    out, _ = grid
    ckpt = out / "transfer" / "runs" / "shufflenet-2d" / "split0" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-dir", str(tiny_release)]) == 0
    capsys.readouterr()
    other = tmp_path / "other"
    shutil.copytree(tiny_release, other)
    g = zarr.open_group(str(other / "wide.zarr"), mode="w", zarr_format=2)
    g.attrs["num_features"] = 32
    code = main(["evaluate", "--checkpoint", str(ckpt), "--data-dir", str(other), "--ix", "wide.zarr"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "checkpoint from another configuration" in err[0] and str(ckpt) in err[0]


def old_style(d: dict) -> dict:
    """``d`` as divita wrote it before image_store/video_store were named so: ix/vx keys only."""
    d = dict(d)
    d["ix"], d["vx"] = d.pop("image_store"), d.pop("video_store")
    return d


def test_a_finished_run_written_before_the_store_rename_is_still_recognised(tiny_release, grid, tmp_path):
    import json
    import shutil

    from divita.datasets.release import TABLE6_BY_NAME
    from divita.evaluation.reproduce import check_resumable, run_config

    out, _ = grid
    run = tmp_path / "split0"
    shutil.copytree(out / "transfer" / "runs" / "shufflenet-fusion" / "split0", run)
    hp = json.loads((run / "hparams.json").read_text())
    assert hp["ix"] == hp["image_store"] and hp["vx"] == hp["video_store"]  # both spellings written
    hp = {k: v for k, v in hp.items() if k not in ("image_store", "video_store")}
    (run / "hparams.json").write_text(json.dumps(hp))
    cfg = run_config(base(tiny_release), TABLE6_BY_NAME["ShuffleNet-Fusion"], 0)
    assert check_resumable(run, cfg)
    with pytest.raises(DivitaError, match="another configuration: video_store=.* \\(asked None\\)"):
        check_resumable(run, run_config(base(tiny_release), TABLE6_BY_NAME["ShuffleNet-2D"], 0))


def test_evaluate_reads_a_checkpoint_written_before_the_store_rename(tiny_release, grid, tmp_path, capsys):
    import json

    import torch

    out, _ = grid
    ckpt = out / "transfer" / "runs" / "shufflenet-2d" / "split0" / "best.ckpt"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-dir", str(tiny_release), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    payload = torch.load(ckpt, weights_only=False)
    payload["train_config"] = old_style({k: v for k, v in payload["train_config"].items() if k not in ("ix", "vx")})
    torch.save(payload, tmp_path / "old.ckpt")
    assert (
        main(["evaluate", "--checkpoint", str(tmp_path / "old.ckpt"), "--data-dir", str(tiny_release), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == rows
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--data-dir",
                str(tiny_release),
                "--json",
                "--image-store",
                IMAGE_STORE,
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == rows


def test_a_run_of_one_protocol_is_never_finished_for_the_other(tiny_release, grid, tmp_path):
    import json
    import shutil
    from dataclasses import replace

    from divita.datasets.release import TABLE6_BY_NAME
    from divita.evaluation.reproduce import check_resumable, run_config

    out, _ = grid
    paper = replace(base(tiny_release), protocol="paper")
    with pytest.raises(DivitaError, match="another configuration: protocol='divita' \\(asked 'paper'\\)"):
        reproduce(tiny_release, out, rows=ROWS[:1], splits=(0,), base=paper, progress=False, log=lambda s: None)
    # a run written before protocols existed was trained with divita's
    run = tmp_path / "old" / "split0"
    shutil.copytree(out / "transfer" / "runs" / "shufflenet-2d" / "split0", run)
    hp = json.loads((run / "hparams.json").read_text())
    (run / "hparams.json").write_text(json.dumps({k: v for k, v in hp.items() if k != "protocol"}))
    row = TABLE6_BY_NAME["ShuffleNet-2D"]
    assert check_resumable(run, run_config(base(tiny_release), row, 0))
    with pytest.raises(DivitaError, match="protocol='divita'"):
        check_resumable(run, run_config(paper, row, 0))
    # a paper grid: its tables say so, and its runs are not divita's
    logs = []
    result = reproduce(
        tiny_release, tmp_path / "p", rows=ROWS[:1], splits=(0,), base=paper, progress=False, log=logs.append
    )
    assert (result["frames"]["tst"]["protocol"] == "paper").all() and "Training protocol: paper." in result["table"]
    assert set(pd.read_csv(tmp_path / "p" / "transfer" / "selection.csv")["protocol"]) == {"paper"}
    again = []
    reproduce(tiny_release, tmp_path / "p", rows=ROWS[:1], splits=(0,), base=paper, progress=False, log=again.append)
    assert "1 already finished, 0 to train" in again[0]
    paper_run = tmp_path / "p" / "transfer" / "runs" / "shufflenet-2d" / "split0"
    with pytest.raises(DivitaError, match="protocol='paper' \\(asked 'divita'\\)"):
        check_resumable(paper_run, run_config(base(tiny_release), row, 0))

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from builders.release import tiny_config
from divita.cli import main
from divita.datasets.release import TABLE6_BY_NAME
from divita.errors import DivitaError
from divita.evaluation.reproduce import summarise
from divita.genres import GENRES
from divita.reporting import classify_directory, cooccurrence_matrix, load_run, make_report, prediction_error_matrix
from divita.training import train_model

RUN_PNGS = ("ap_per_genre.png", "pr_curves.png", "cooccurrence.png", "errors.png", "training.png")


@pytest.fixture(scope="module")
def run_dir(tiny_release, tmp_path_factory):
    cfg = tiny_config(tiny_release, max_epochs=2)
    d = tmp_path_factory.mktemp("run")
    train_model(cfg, d, progress=False)
    return d


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    return dst


@pytest.fixture(scope="module")
def results_dir(run_dir, tmp_path_factory):
    """A reproduce-layout results directory: two Table 6 rows and one row of our own, real run directories."""
    root = tmp_path_factory.mktemp("results") / "results"
    runs = {}
    for name, slug, splits in (
        ("ShuffleNet-2D", "shufflenet-2d", (0, 1, 2)),
        ("ShuffleNet-Fusion", "shufflenet-fusion", (0,)),
        ("My-Model", "my-model", (2,)),
    ):
        for k in splits:
            runs[(name, k)] = copy_run(run_dir, root / "transfer" / "runs" / slug / f"split{k}")
    # make the splits differ so mean and std are not trivial
    for split, factor in ((1, 0.9), (2, 0.95)):
        m = pd.read_csv(runs[("ShuffleNet-2D", split)] / "metrics.csv")
        m[["uap", *GENRES]] = m[["uap", *GENRES]] * factor
        m.to_csv(runs[("ShuffleNet-2D", split)] / "metrics.csv", index=False)

    class Row:  # summarise only needs .name
        def __init__(self, name):
            self.name = name

    rows = [Row(n) for n in ("ShuffleNet-2D", "ShuffleNet-Fusion", "My-Model")]
    summarise(runs, rows, "tst", "paper", "loss").to_csv(root / "transfer" / "tst.csv", float_format="%.2f")
    return root


def png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def referenced_images(md_path: Path) -> set[Path]:
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_path.read_text())
    return {(md_path.parent / r).resolve() for r in refs}


def check_pictures(out: Path, md: Path) -> list[Path]:
    pngs = sorted(out.rglob("*.png"))
    assert pngs
    assert referenced_images(md) == {p.resolve() for p in pngs}  # every picture embedded, no dangling reference
    for p in pngs:
        w, h = png_size(p)
        assert 600 <= w <= 2000 and 300 <= h <= 1400, (p, w, h)
        assert p.stat().st_size > 15_000, p  # drawn, not blank
    return pngs


def test_run_report_draws_every_figure_and_embeds_it(run_dir, tmp_path):
    d = copy_run(run_dir, tmp_path / "run")
    md = make_report(d)
    assert md == d / "report" / "report.md"
    pngs = check_pictures(d / "report", md)
    assert sorted(p.name for p in pngs) == sorted(RUN_PNGS)
    text = md.read_text()
    m = pd.read_csv(d / "metrics.csv")
    tst = m[(m.subset == "tst") & (m.convention == "paper") & (m.selection == "uap")].iloc[0]
    assert f"{100 * tst['uap']:.2f}" in text  # key numbers on the page
    assert "Prediction errors" in text and "false positive" in text
    assert not list((d / "report").glob(".*tmp*"))  # no temporary files left


def test_run_report_uses_the_checkpoint_thresholds_else_retunes_on_validation(run_dir, tmp_path):
    ckpt = torch.load(run_dir / "best.ckpt", map_location="cpu", weights_only=False)
    run = load_run(run_dir)
    np.testing.assert_allclose(run.thresholds, ckpt["thresholds"])
    assert "best.ckpt" in run.threshold_source
    d = copy_run(run_dir, tmp_path / "run")
    (d / "best.ckpt").write_bytes(b"garbage")
    again = load_run(d)
    np.testing.assert_allclose(again.thresholds, ckpt["thresholds"], rtol=1e-6)  # training tuned them the same way
    assert "recomputed" in again.threshold_source


def test_results_report_compares_with_table6_and_draws_one_run_per_row(results_dir, tmp_path):
    out = tmp_path / "rep"
    md = make_report(results_dir, out=out)
    assert md == out / "report.md"
    pngs = check_pictures(out, md)
    names = {p.relative_to(out).as_posix() for p in pngs}
    assert {"summary_vs_paper.png", "ap_per_genre_rows.png", "cooccurrence.png"} <= names
    for slug in ("shufflenet-2d-split", "shufflenet-fusion-split0", "my-model-split2"):
        assert any(n.startswith(f"runs/{slug}") and n.endswith("pr_curves.png") for n in names), slug
    text = md.read_text()
    mean, std = TABLE6_BY_NAME["ShuffleNet-Fusion"].paper["uap"]
    assert f"{mean:.2f} ± {std:.2f}" in text
    assert "reports no per-genre AP" in text
    assert re.search(r"\| My-Model \| 1 \|.*\| – \|", text)  # a row outside Table 6: no paper numbers
    # the representative of ShuffleNet-2D is the split whose μAP is closest to the mean (μAP × 1, × 0.9, × 0.95)
    assert "runs/shufflenet-2d-split2/" in text and "runs/shufflenet-2d-split0/" not in text


def test_results_dir_is_found_from_results_transfer_or_a_parent(results_dir, tmp_path):
    assert classify_directory(results_dir) == ("results", results_dir / "transfer")
    assert classify_directory(results_dir / "transfer") == ("results", results_dir / "transfer")
    assert classify_directory(results_dir.parent) == (
        "results",
        results_dir / "transfer",
    )  # e.g. results/ holding demo/transfer
    assert classify_directory(results_dir / "transfer" / "runs" / "my-model" / "split2")[0] == "run"


def test_an_interrupted_reproduce_without_tables_is_summarised_from_its_runs(results_dir, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(results_dir / "transfer" / "runs" / "shufflenet-2d", root / "transfer" / "runs" / "shufflenet-2d")
    md = make_report(root)
    text = md.read_text()
    assert "| ShuffleNet-2D | 3 |" in text and "ShuffleNet-Fusion" not in text


def test_prediction_error_matrix_by_hand():
    g = len(GENRES)
    t = np.zeros((4, g), int)
    p = np.zeros((4, g), bool)
    t[0, [0, 1]] = 1  # action+adventure; predicted action+comedy: comedy is a false positive
    p[0, [0, 2]] = True
    t[1, 0] = 1  # action; predicted comedy only: action missed, comedy false positive
    p[1, 2] = True
    t[2, 2] = 1  # comedy; predicted comedy
    p[2, 2] = True
    t[3, 1] = 1  # adventure; nothing predicted
    rates, den = prediction_error_matrix(t, p)
    assert rates.shape == (g + 1, g)
    assert rates[0, 0] == 0.5 and den[0, 0] == 2  # recall of action
    assert rates[0, 2] == 1.0 and den[0, 2] == 2  # both action trailers lack comedy and get it
    assert rates[0, 1] == 0.0 and den[0, 1] == 1  # only trailer 1 is action without adventure
    assert rates[1, 1] == 0.0 and rates[1, 2] == 0.5  # adventure: never predicted; comedy on 1 of 2
    assert rates[2, 2] == 1.0
    assert np.isnan(rates[3, 3]) and den[3, 3] == 0  # no crime trailer
    assert rates[g, 2] == pytest.approx(2 / 3)  # comedy predicted for 2 of the 3 non-comedy trailers
    assert rates[g, 0] == 0.0


def test_cooccurrence_counts_pairs_and_supports():
    t = np.zeros((3, len(GENRES)), int)
    t[0, [0, 4]] = 1
    t[1, [0, 4, 9]] = 1
    t[2, 4] = 1
    c = cooccurrence_matrix(t)
    assert c[0, 0] == 2 and c[4, 4] == 3 and c[0, 4] == c[4, 0] == 2 and c[4, 9] == 1 and c[1, 1] == 0
    assert (c == c.T).all()


def test_cli_prints_where_the_pictures_are(run_dir, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and str(out / "pr_curves.png") in printed


def test_a_directory_that_is_neither_is_a_one_line_error(tmp_path, capsys, run_dir):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "empty") in err and "neither a run directory" in err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.csv").write_text("a,b\n1,2\n")
    (bad / "predictions_tst.npz").write_bytes(b"x")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing column" in err
    d = copy_run(run_dir, tmp_path / "torn")
    (d / "predictions_tst.npz").write_bytes(b"not a zip")
    with pytest.raises(DivitaError, match="not a readable predictions file"):
        make_report(d)

"""--protocol paper|divita: divita trains as before; paper builds the authors' head and runs their protocol."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from builders.release import tiny_config
from divita.errors import DivitaError
from divita.model import DIViTA, ModelConfig
from divita.model.paper import PaperDIViTA, PaperHead, UnmaskedSnippetHead
from divita.training import TrainConfig, load_checkpoint, load_split, predict_snippets, train_model
from divita.training.protocol import build_model, parse_protocol, protocol_precision

# the history (train loss, val loss, val μAP, lr per epoch) of tiny_config(tiny_release, precision="32") as the code
# before protocols existed trains it (commit 3f90552, the branch's base)
BASE_HISTORY = [
    [0.6633656024932861, 0.6221054792404175, 0.4528827965259552, 0.0001],
    [0.6175745129585266, 0.5950062870979309, 0.4649446904659271, 0.0001],
    [0.5887827277183533, 0.5745763778686523, 0.47625574469566345, 0.0001],
]
ALL_CHANGES = "paper+masking+layer+snippet-loss+fused-adamw+bf16"


def authors_head(num_features: int, hidden: int = 128, ff_mult: int = 6, num_classes: int = 10) -> nn.ModuleDict:
    """The authors' tsfm head (DIViTASingle with build_cam_tsfm, TransformerBlock and MultiHeadAttention of
    richardtml/DIViTA 40973d6) as plain modules, made in the order their constructors make them, so that torch's
    default initialisation draws the same numbers."""
    m = nn.ModuleDict()
    m["bn"] = nn.BatchNorm1d(num_features)
    m["proj"] = nn.Linear(num_features, hidden)
    for name in ("W_q", "W_k", "W_v", "W_o"):  # MultiHeadAttention(..., bias=False)
        m[name] = nn.Linear(hidden, hidden, bias=False)
    m["norm1"] = nn.LayerNorm(hidden)
    m["ff1"] = nn.Linear(hidden, ff_mult * hidden)
    m["ff2"] = nn.Linear(ff_mult * hidden, hidden)
    m["norm2"] = nn.LayerNorm(hidden)
    m["cls"] = nn.Linear(hidden, num_classes)
    return m


def authors_forward(m: nn.ModuleDict, x_bfs: torch.Tensor, heads: int = 4) -> torch.Tensor:
    """Their head's forward on their layout (B, F, S), dropout off: BatchNorm1d over (B, F, S), MoveDim, Linear,
    d2l-style attention (queries split per head, scaled by sqrt(hidden / heads), plain softmax), add & norm twice,
    mean over every clip, Linear."""
    x = m["proj"](m["bn"](x_bfs).movedim(1, 2))
    b, s, h = x.shape

    def per_head(z):  # (B, S, H) -> (B*heads, S, H/heads)
        return z.reshape(b, s, heads, -1).movedim(1, 2).reshape(b * heads, s, -1)

    q, k, v = per_head(m["W_q"](x)), per_head(m["W_k"](x)), per_head(m["W_v"](x))
    att = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(h // heads), dim=-1)
    out = torch.bmm(att, v).reshape(b, heads, s, -1).movedim(1, 2).reshape(b, s, h)
    x = m["norm1"](m["W_o"](out) + x)
    x = m["norm2"](m["ff2"](torch.relu(m["ff1"](x))) + x)
    return m["cls"](x.mean(1))


def authors_parameter_count(f: int, hidden: int = 128, ff_mult: int = 6, classes: int = 10) -> int:
    return (
        2 * f
        + f * hidden
        + hidden
        + 4 * hidden * hidden
        + 2 * hidden
        + 2 * ff_mult * hidden * hidden
        + ff_mult * hidden
        + hidden
        + 2 * hidden
        + hidden * classes
        + classes
    )


def padded_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xi, xv = torch.randn(5, 30, 16, generator=g), torch.randn(5, 30, 12, generator=g)
    mask = torch.ones(5, 30, dtype=torch.bool)
    mask[1, 20:] = mask[3, 7:] = False  # two windows zero-padded, as the last window of a trailer is
    xi[~mask], xv[~mask] = 0.0, 0.0
    return xi, xv, mask


@pytest.mark.parametrize("training", [False, True])
def test_paper_builds_the_authors_head_with_their_initialisation_and_forward(training):
    torch.manual_seed(3)
    ref = [authors_head(16), authors_head(12)]  # late fusion: their fnet (image) then vnet (video)
    torch.manual_seed(3)
    model = build_model(ModelConfig([16, 12], ["image", "video"], dropout=0.0), "paper")
    assert isinstance(model, PaperDIViTA) and all(isinstance(h, PaperHead) for h in model.heads.values())
    for r, head, f in zip(ref, model.heads.values(), (16, 12)):
        assert sum(p.numel() for p in head.parameters()) == authors_parameter_count(f)
        assert sum(p.numel() for p in r.parameters()) == authors_parameter_count(f)
        for (name, p), q in zip(head.named_parameters(), r.parameters()):
            assert torch.equal(p, q), name  # same seed, same initial weights
    model.train(training)
    for r in ref:
        r.train(training)
    xi, xv, mask = padded_batch()
    got = model([xi, xv], [mask, mask])
    want = (authors_forward(ref[0], xi.transpose(1, 2)) + authors_forward(ref[1], xv.transpose(1, 2))) / 2
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if training:  # BatchNorm's statistics include the zero padding, as theirs do
        for r, head in zip(ref, model.heads.values()):
            torch.testing.assert_close(head.norm.running_mean, r["bn"].running_mean)
            torch.testing.assert_close(head.norm.running_var, r["bn"].running_var)


def test_paper_ignores_padding_masks_and_paper_masking_uses_them():
    torch.manual_seed(0)
    paper = build_model(ModelConfig([16], dropout=0.0), "paper").eval()
    torch.manual_seed(0)
    masking = build_model(ModelConfig([16], dropout=0.0), "paper+masking").eval()
    xi, _, mask = padded_batch()
    full = torch.ones_like(mask)
    assert torch.equal(paper([xi], [mask]), paper([xi], [full]))  # the mask changes nothing
    a, b = masking([xi], [mask]), masking([xi], [full])
    assert torch.equal(a[[0, 2, 4]], b[[0, 2, 4]]) and not torch.allclose(a[[1, 3]], b[[1, 3]])
    # a padded window scored with masks equals its real clips alone
    torch.testing.assert_close(masking([xi[3:4, :7]], [mask[3:4, :7]]), a[3:4], rtol=1e-5, atol=1e-6)


def test_the_ablations_build_the_models_they_name():
    cfg = ModelConfig([16])
    assert type(build_model(cfg, "divita")) is DIViTA and type(build_model(cfg, "paper+masking+layer")) is DIViTA
    layer = build_model(cfg, "paper+layer")
    assert isinstance(next(iter(layer.heads.values())), UnmaskedSnippetHead)
    torch.manual_seed(0)
    a = DIViTA(cfg).state_dict()
    torch.manual_seed(0)
    b = build_model(cfg, "paper+layer").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # divita's layer and weights
    assert isinstance(next(iter(build_model(ModelConfig([16], aggregator="gru"), "paper").heads.values())), nn.Module)
    for bad in ("authors", "paper+nothing", "divita+masking", "paper+masking+masking"):
        with pytest.raises(DivitaError, match="protocol must be"):
            parse_protocol(bad)
    with pytest.raises(DivitaError, match="protocol must be"):
        TrainConfig(data_dir="d", image_store="i", video_store=None, protocol="lightning")
    assert protocol_precision("paper", "auto") == "32" and protocol_precision("paper", "bf16") == "bf16"
    assert protocol_precision("divita", "auto") == "auto" and protocol_precision("paper+bf16", "auto") == "auto"


def test_divita_protocol_trains_as_the_code_before_protocols(tiny_release, tmp_path):
    run = train_model(tiny_config(tiny_release, precision="32"), tmp_path / "divita", progress=False)
    history = pd.DataFrame(run.history)[["train_loss", "val_loss", "val_uap", "lr"]].to_numpy()
    np.testing.assert_allclose(history, BASE_HISTORY, rtol=1e-5)
    hparams = json.loads((tmp_path / "divita" / "hparams.json").read_text())
    assert hparams["protocol"] == "divita" and hparams["select_by"] == "uap"
    # the checkpoint and the predictions are those of the epoch of best validation μAP (the divita default)
    m = run.metrics
    uap_epoch = int(m[m.selection == "uap"].epoch.iloc[0])
    assert uap_epoch == int(np.argmax(history[:, 2])) and run.best_epoch == uap_epoch
    _, ckpt = load_checkpoint(tmp_path / "divita" / "best.ckpt")
    assert (ckpt["epoch"], ckpt["selected_by"], ckpt["train_config"]["select_by"]) == (uap_epoch, "uap", "uap")
    # paper with every divita change added is divita, to the bit
    again = train_model(
        tiny_config(tiny_release, precision="32", protocol=ALL_CHANGES), tmp_path / "all", progress=False
    )
    assert (
        pd.DataFrame(again.history)
        .drop(columns=["train_seconds", "val_seconds", "seconds"])
        .equals(pd.DataFrame(run.history).drop(columns=["train_seconds", "val_seconds", "seconds"]))
    )
    pd.testing.assert_frame_equal(again.metrics, run.metrics)
    assert json.loads((tmp_path / "all" / "hparams.json").read_text())["select_by"] == "loss"  # paper's rule


def test_select_by_defaults_to_the_protocols_and_an_explicit_rule_wins():
    from divita.cli import build_parser
    from divita.cli._train_options import train_config

    def cfg(**kw):
        return TrainConfig(data_dir="d", image_store="i", video_store=None, **kw)

    assert parse_protocol("divita").select_by == "uap" and parse_protocol("paper+masking+layer").select_by == "loss"
    assert cfg().select_by == "uap" and cfg(protocol="paper").select_by == "loss"
    assert cfg(protocol="paper+masking").select_by == "loss"
    assert cfg(select_by="loss").select_by == "loss" and cfg(protocol="paper", select_by="uap").select_by == "uap"
    with pytest.raises(DivitaError, match="select_by"):
        cfg(select_by="map")
    with pytest.raises(DivitaError, match="protocol must be"):
        cfg(protocol="authors", select_by="loss")
    train = ["train", "--data-dir", "d", "--split", "0", "--out", "o", "--ix", "i", "--vx", "none"]
    for command in (train, ["reproduce", "--data-dir", "d"], ["demo"]):
        for extra, want in (([], "uap"), (["--protocol", "paper"], "loss"), (["--select-by", "loss"], "loss")):
            args = build_parser().parse_args([*command, *extra])
            assert train_config(args, data_dir="d", image_store="i", video_store=None, split=0).select_by == want


@pytest.fixture(scope="module")
def paper_run(tiny_release, tmp_path_factory):
    return train_model(tiny_config(tiny_release, protocol="paper"), tmp_path_factory.mktemp("paper"), progress=False)


def test_paper_run_records_its_protocol_and_its_checkpoint_builds_the_same_model(tiny_release, paper_run):
    d = paper_run.run_dir
    assert json.loads((d / "hparams.json").read_text())["protocol"] == "paper"
    model, ckpt = load_checkpoint(d / "best.ckpt")
    assert ckpt["protocol"] == "paper" and ckpt["train_config"]["protocol"] == "paper"
    assert ckpt["selected_by"] == ckpt["train_config"]["select_by"] == "loss"
    assert json.loads((d / "hparams.json").read_text())["select_by"] == "loss"
    assert isinstance(model, PaperDIViTA) and isinstance(model.heads["image"], PaperHead)
    sets, _ = load_split(tiny_config(tiny_release, protocol="paper"))
    saved = np.load(d / "predictions_tst.npz")
    np.testing.assert_allclose(predict_snippets(model, sets["tst"]), saved["y_prob"], rtol=1e-5, atol=1e-6)
    # differs from divita's run of the same data
    divita_run = train_model(tiny_config(tiny_release), d.parent / "divita", progress=False)
    assert not np.allclose(np.load(divita_run.run_dir / "predictions_tst.npz")["y_prob"], saved["y_prob"])


def test_evaluate_honours_the_checkpoint_protocol(tiny_release, paper_run, capsys):
    from divita.cli import main
    from divita.metrics import multilabel_metrics

    assert (
        main(["evaluate", "--checkpoint", str(paper_run.run_dir / "best.ckpt"), "--data-dir", str(tiny_release)]) == 0
    )
    out = capsys.readouterr().out
    saved = np.load(paper_run.run_dir / "predictions_tst.npz")
    uap = 100 * multilabel_metrics(saved["y_true"], saved["y_prob"], convention="paper")["uap"]
    assert f"tst (paper): μAP {uap:.2f}" in out


def test_paper_says_once_that_short_training_trailers_are_padded(tiny_release, tmp_path, capsys):
    from divita.training import loop

    loop._NOTED_SHORT.clear()
    cfg = tiny_config(tiny_release, protocol="paper", max_epochs=1)
    train_model(cfg, tmp_path / "a", progress=False)
    train_model(cfg, tmp_path / "b", progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shorter than a snippet (30 clips)" in err[0] and "authors' code fails" in err[0]
    train_model(tiny_config(tiny_release, max_epochs=1), tmp_path / "c", progress=False)  # divita masks: no line
    assert capsys.readouterr().err == ""


def test_paper_validation_loss_is_the_mean_of_per_batch_losses():
    from divita.training.steps import SnippetSteps

    labels = np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 4]]
    trailer = torch.tensor([0, 0, 0, 1, 2, 3, 3, 4])  # windows per trailer: 3, 1, 1, 2, 1
    logits = torch.linspace(-2, 2, 80).reshape(8, 10)
    y = torch.from_numpy(labels)[trailer]
    per_window = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1)
    for protocol, want in (
        ("paper", (per_window[:4].mean() + per_window[4:7].mean() + per_window[7:].mean()) / 3),  # batches of 2
        ("divita", per_window.mean()),
    ):
        steps = SnippetSteps(
            ModelConfig([4]).to_dict(), 1e-3, 0.0, 1, 5, labels, protocol=protocol, val_batch_trailers=2
        )
        steps._val_outputs.append((logits, y, trailer))
        loss, _ = steps.validation_metrics()
        assert float(loss) == pytest.approx(float(want), rel=1e-6)
    fused = SnippetSteps(ModelConfig([4]).to_dict(), 1e-3, 0.0, 1, 5, labels).make_optimizers()[0]
    plain = SnippetSteps(ModelConfig([4]).to_dict(), 1e-3, 0.0, 1, 5, labels, protocol="paper").make_optimizers()[0]
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]


def test_a_finished_run_is_not_taken_as_finished_for_the_other_selection(tiny_release, paper_run):
    from divita.evaluation.reproduce import check_resumable

    d = paper_run.run_dir
    assert check_resumable(d, tiny_config(tiny_release, protocol="paper"))
    assert check_resumable(d, tiny_config(tiny_release, protocol="paper", select_by="loss"))
    with pytest.raises(DivitaError, match="select_by='loss' \\(asked 'uap'\\)"):
        check_resumable(d, tiny_config(tiny_release, protocol="paper", select_by="uap"))

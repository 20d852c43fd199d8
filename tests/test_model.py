import pytest
import torch
from torch import nn

from divita.model import AGGREGATORS, DIViTA, FastDropout, ModelConfig, masked_mean


def inputs(b=4, s=30, fi=16, fv=12, short=(3, 11)):
    torch.manual_seed(0)
    xs = [torch.randn(b, s, fi), torch.randn(b, s, fv)]
    masks = [torch.ones(b, s, dtype=torch.bool) for _ in xs]
    for m in masks:
        m[0, short[0] :] = False  # a trailer shorter than one snippet
        m[1, short[1] :] = False  # a last, padded window
    return xs, masks


@pytest.mark.parametrize("aggregator", AGGREGATORS)
@pytest.mark.parametrize("training", [False, True])
def test_padding_never_changes_the_output(aggregator, training):
    model = DIViTA(ModelConfig([16, 12], ["image", "video"], aggregator=aggregator, dropout=0.0))
    model.train(training)
    xs, masks = inputs()
    torch.manual_seed(1)
    a = model(xs, masks)
    garbage = [x.clone() for x in xs]
    for g, m in zip(garbage, masks):
        g[~m] = 1e3 * torch.randn(int((~m).sum()), g.shape[-1])
    torch.manual_seed(1)
    b = model(garbage, masks)
    assert a.shape == (4, 10)
    torch.testing.assert_close(a, b)


def test_short_snippet_equals_the_same_clips_alone():
    model = DIViTA(ModelConfig([16], ["image"])).eval()
    xs, masks = inputs()
    full = model([xs[0][:1]], [masks[0][:1]])
    alone = model([xs[0][:1, :3]], [torch.ones(1, 3, dtype=torch.bool)])
    torch.testing.assert_close(full, alone, atol=1e-5, rtol=1e-5)


def test_late_fusion_is_the_mean_of_the_streams_logits():
    model = DIViTA(ModelConfig([16, 12], ["image", "video"])).eval()
    xs, masks = inputs()
    heads = list(model.heads.values())
    expected = (heads[0](xs[0], masks[0]) + heads[1](xs[1], masks[1])) / 2
    torch.testing.assert_close(model(xs, masks), expected)


def test_early_fusion_is_one_head_over_concatenated_features():
    model = DIViTA(ModelConfig([16, 12], ["image", "video"], fusion="early")).eval()
    assert list(model.heads) == ["image+video"]
    assert model.heads["image+video"].norm.num_features == 28
    xs, masks = inputs()
    assert model(xs, masks).shape == (4, 10)


def test_the_clip_aggregation_transformer_is_torchs_module_with_the_papers_sizes():
    head = DIViTA(ModelConfig([1024], ["image"])).heads["image"]
    block = head.aggregate.block
    assert isinstance(block, nn.TransformerEncoderLayer)
    assert isinstance(block.self_attn, nn.MultiheadAttention)
    assert block.self_attn.num_heads == 4 and block.self_attn.embed_dim == 128
    assert block.linear1.out_features == 6 * 128
    assert head.project.in_features == 1024 and head.classify.out_features == 10


def test_masked_mean():
    h = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(h, torch.tensor([[True, True, False]])).item() == 2.0


def test_fast_dropout_keeps_three_quarters_and_preserves_the_mean():
    torch.manual_seed(0)
    d = FastDropout(0.25)
    x = torch.ones(200_000)
    y = d(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.75) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.02
    torch.manual_seed(0)
    torch.testing.assert_close(d(x), y)  # seeded: repeatable
    assert torch.equal(d.eval()(x), x)

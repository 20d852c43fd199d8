import numpy as np
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
    torch.testing.assert_close(FastDropout(0.25)(x), y)  # its generator is seeded from torch's: repeatable
    assert not torch.equal(d(x), y)  # and it moves on
    assert torch.equal(d.eval()(x), x)
    xb = torch.randn(1000, dtype=torch.bfloat16, requires_grad=True)
    d.train()
    yb = d(xb)
    yb.sum().backward()
    kept = yb.detach() != 0
    torch.testing.assert_close(yb.detach()[kept], (xb.detach() * (4 / 3))[kept])
    torch.testing.assert_close(xb.grad, kept.to(torch.bfloat16) * (4 / 3))  # gradient through kept entries only


def reference_head(head, x, mask):
    """The head computed by torch's plain modules: BatchNorm1d over real clips, Linear, the encoder layer's
    own forward, masked mean, Linear (dropout off)."""
    normed = torch.zeros_like(x)
    normed[mask] = nn.functional.batch_norm(
        x[mask], None, None, head.norm.weight, head.norm.bias, training=True, eps=head.norm.eps
    )
    h = head.project(normed)
    h = nn.TransformerEncoderLayer.forward(head.aggregate.block, h, src_key_padding_mask=~mask)
    w = mask.float().unsqueeze(-1)
    return head.classify((h * w).sum(1) / w.sum(1))


@pytest.mark.parametrize("padded", [False, True])
def test_fused_training_path_equals_torchs_modules_values_and_gradients(padded):
    torch.manual_seed(0)
    head = DIViTA(ModelConfig([16], ["image"], dropout=0.0)).heads["image"].train()
    with torch.no_grad():
        head.norm.weight.uniform_(0.5, 1.5)
        head.norm.bias.uniform_(-0.5, 0.5)
    xs, masks = inputs()
    x, mask = xs[0] * 3 + 1, masks[0] if padded else torch.ones_like(masks[0])
    ours = head(x, mask)
    grads = torch.autograd.grad(ours.square().sum(), list(head.parameters()))
    running = head.norm.running_mean.clone(), head.norm.running_var.clone()
    theirs = reference_head(head, x, mask)
    ref_grads = torch.autograd.grad(theirs.square().sum(), list(head.parameters()))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    for (name, _), g, r in zip(head.named_parameters(), grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4, msg=name)
    real = x[mask]
    torch.testing.assert_close(running[0], 0.1 * real.mean(0), atol=1e-5, rtol=1e-5)  # BatchNorm1d's update
    torch.testing.assert_close(running[1], 0.9 + 0.1 * real.var(0), atol=1e-4, rtol=1e-4)


def test_fused_eval_path_equals_torchs_modules():
    torch.manual_seed(0)
    head = DIViTA(ModelConfig([16], ["image"])).heads["image"]
    xs, masks = inputs()
    head.train()(xs[0], masks[0])  # running statistics
    head.eval()
    normed = nn.functional.batch_norm(
        xs[0].reshape(-1, 16),
        head.norm.running_mean,
        head.norm.running_var,
        head.norm.weight,
        head.norm.bias,
        eps=head.norm.eps,
    ).view(xs[0].shape)
    h = head.aggregate.block(head.project(normed), src_key_padding_mask=~masks[0])
    w = masks[0].float().unsqueeze(-1)
    torch.testing.assert_close(head(xs[0], masks[0]), head.classify((h * w).sum(1) / w.sum(1)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_dropout_drops_attention_weights_with_the_aggregators_own_masks(dtype):
    import copy

    from divita.model import TransformerAggregator

    torch.manual_seed(0)
    agg = TransformerAggregator(hidden=16, heads=4, ff_mult=2, dropout=0.25).to(dtype).train()
    h = torch.randn(3, 7, 16).to(dtype)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 4:] = True
    rng = copy.deepcopy(agg.attention_dropout.rng)
    state = torch.get_rng_state()
    ours = agg._self_attention(h, padding)
    assert torch.equal(torch.get_rng_state(), state)  # torch's global generator untouched: threads may run heads
    agg.attention_dropout.rng = rng
    keep = torch.from_numpy(agg.attention_dropout.keep_mask((3, 4, 7, 7)))
    assert 0.65 < keep.float().mean() < 0.85
    mha = agg.block.self_attn
    weights = mha.eval()(h, h, h, key_padding_mask=padding, need_weights=True, average_attn_weights=False)[
        1
    ]  # (B, heads, S, S)
    v = nn.functional.linear(h, mha.in_proj_weight[32:], mha.in_proj_bias[32:]).view(3, 7, 4, 4).transpose(1, 2)
    dropped = weights * keep.to(dtype) / 0.75
    expected = mha.out_proj((dropped @ v).transpose(1, 2).reshape(3, 7, 16))
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 3e-2, "rtol": 3e-2}
    torch.testing.assert_close(ours, expected, **tol)
    assert (weights[1, :, :, 4:] == 0).all()  # padded keys get no attention


def test_relu_dropout_is_relu_then_dropout_with_the_scale_folded_into_the_next_layer():
    from divita.model.layers import _ReluDropout

    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        z = torch.randn(64, 48).to(dtype).requires_grad_()
        keep = np.random.default_rng(0).random((64, 48)) > 0.25
        y = _ReluDropout.apply(z, keep)
        expected = torch.relu(z.detach()) * torch.from_numpy(keep).to(dtype)
        assert torch.equal(y.detach(), expected)
        y.sum().backward()
        assert torch.equal(z.grad, ((z.detach() > 0) & torch.from_numpy(keep)).to(dtype))


def test_every_registered_aggregator_builds_its_class_and_unknown_names_are_refused():
    from divita.errors import DivitaError
    from divita.model import Aggregator
    from divita.model.aggregators import build_aggregator

    assert tuple(AGGREGATORS) == ("tsfm", "mean", "gru", "conv", "savg", "proj-gru", "proj-conv")
    widths = {"tsfm": 16, "mean": 16, "proj-gru": 16, "proj-conv": 16, "savg": 24, "gru": 115, "conv": 128}
    for spec in AGGREGATORS.entries():
        agg = build_aggregator(spec.name, hidden=16, heads=4, ff_mult=2, dropout=0.25, num_features=24)
        assert type(agg) is spec.aggregator_class() and isinstance(agg, Aggregator)
        h, mask = torch.randn(2, 5, 16 if agg.projected else 24), torch.ones(2, 5, dtype=torch.bool)
        assert agg(h, mask).shape == (2, 5, widths[spec.name]) and agg.out_features == widths[spec.name]
    with pytest.raises(
        DivitaError,
        match="^unknown clip aggregation 'lstm'; choose from: tsfm, mean, gru, conv, savg, proj-gru, proj-conv$",
    ):
        build_aggregator("lstm", 16, 4, 2, 0.25)


def test_the_aggregator_base_is_abstract():
    from divita.model import Aggregator

    class NoForward(Aggregator):
        out_features = 4

    with pytest.raises(TypeError, match="abstract"):
        NoForward()


def test_model_names_need_no_torch():
    import subprocess
    import sys

    code = "import sys\nfrom divita.model import AGGREGATORS, FUSIONS\nprint('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_training_step_with_dropout_equals_the_same_step_from_torchs_modules_given_the_same_masks(dtype):
    """The whole block in training (attention, its dropout, the feed-forward's relu+dropout, the norms) against
    the encoder layer's submodules (attention written out: softmax(q kᵀ / sqrt(d)) @ v) with the masks the
    aggregator draws, dropout applied the textbook way (mask / (1 - p)): forward and gradients."""
    import copy

    from divita.model import TransformerAggregator

    torch.manual_seed(0)
    agg = TransformerAggregator(hidden=16, heads=4, ff_mult=2, dropout=0.25).to(dtype).train()
    h = torch.randn(3, 7, 16).to(dtype).requires_grad_()
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 4:] = False
    rngs = [
        copy.deepcopy(d.rng) for d in (agg.attention_dropout, agg.block.dropout1, agg.block.dropout, agg.block.dropout2)
    ]
    ours = agg(h, mask)
    w = torch.randn(3, 7, 16)  # a loss whose gradient does not vanish through the last LayerNorm
    g_ours = torch.autograd.grad((ours.float() * w).sum(), [h, *agg.parameters()])
    # the same draws, in the order the training path makes them
    attn_keep, keep1, keep_ff, keep2 = (
        _draw(r, s) for r, s in zip(rngs, [(3, 4, 7, 7), (3, 7, 16), (3, 7, 32), (3, 7, 16)])
    )
    b = agg.block
    mha = b.self_attn
    q, k, v = nn.functional.linear(h, mha.in_proj_weight, mha.in_proj_bias).view(3, 7, 3, 4, 4).permute(2, 0, 3, 1, 4)
    scores = (q / 2.0) @ k.transpose(-2, -1)
    weights = torch.softmax(scores.float().masked_fill(~mask.view(3, 1, 1, 7), float("-inf")), -1).to(dtype)
    a = mha.out_proj(((weights * attn_keep.to(dtype) / 0.75) @ v).transpose(1, 2).reshape(3, 7, 16))
    x = b.norm1(h + a * keep1.to(dtype) / 0.75)
    f = torch.relu(b.linear1(x)) * keep_ff.to(dtype) / 0.75
    theirs = b.norm2(x + b.linear2(f) * keep2.to(dtype) / 0.75)
    g_theirs = torch.autograd.grad((theirs.float() * w).sum(), [h, *agg.parameters()])
    names = ["h", *(n for n, _ in agg.named_parameters())]
    if dtype == torch.float32:
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
        for name, g, r in zip(names, g_ours, g_theirs):
            torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
        return
    for name, g, r in [("output", ours, theirs), *zip(names, g_ours, g_theirs)]:  # bfloat16: rounding apart
        assert ((g.float() - r.float()).norm() / r.float().norm()).item() < 0.02, name


def _draw(rng, shape):
    """The keep mask a FastDropout with generator ``rng`` draws next for ``shape``."""
    d = FastDropout(0.25)
    d.rng = rng
    return torch.from_numpy(d.keep_mask(shape))

import copy

import pytest
import torch

from divita.model import DIViTA, ModelConfig
from divita.training.compute import ComputeCopy, HeadRunner, fused_loss_backward


def batch(b=8, s=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(b, s, 24, generator=g), torch.randn(b, s, 20, generator=g)]
    masks = [torch.ones(b, s, dtype=torch.bool) for _ in xs]
    masks[0][1, 7:] = False
    y = (torch.rand(b, 10, generator=g) > 0.7).float()
    return xs, masks, y


def model(seed=0, dropout=0.25):
    torch.manual_seed(seed)
    return DIViTA(ModelConfig([24, 20], ["image", "video"], dropout=dropout)).train()


def train_step(m: DIViTA, runner: HeadRunner, seed: int):
    xs, masks, y = batch(seed=seed)
    torch.manual_seed(100 + seed)  # nothing may draw from torch's global generator: a threaded run would differ
    logits = runner.forward(m, xs, masks, grad=True)
    loss = fused_loss_backward(logits, y, runner)
    return loss, {n: p.grad.clone() for n, p in m.named_parameters()}


def test_heads_in_parallel_threads_give_the_serial_results_with_dropout_on():
    serial, parallel = model(), model()
    runner = HeadRunner(threads=2)
    for step in range(3):  # dropout generators advance identically in both
        loss_s, grads_s = train_step(serial, HeadRunner(threads=1), step)
        loss_p, grads_p = train_step(parallel, runner, step)
        assert torch.equal(loss_s, loss_p)
        for name in grads_s:
            assert torch.equal(grads_s[name], grads_p[name]), name
        serial.zero_grad(), parallel.zero_grad()
    runner.close()


def test_fused_loss_backward_matches_backward_through_the_averaged_logits():
    a, b = model(dropout=0.0), model(dropout=0.0)
    xs, masks, y = batch()
    runner = HeadRunner(threads=2)
    loss = fused_loss_backward(runner.forward(a, xs, masks, grad=True), y, runner)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(b(xs, masks), y)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach())
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    runner.close()


def test_parallel_evaluation_runs_without_gradients_and_matches_the_model():
    m = model().eval()
    xs, masks, _ = batch()
    runner = HeadRunner(threads=2)
    with torch.inference_mode():
        logits = runner.forward(m, xs, masks, grad=False)
        assert not logits[0].requires_grad
        torch.testing.assert_close(torch.stack(logits).mean(0), m(xs, masks))
    runner.close()


def test_a_failing_head_raises_instead_of_leaving_the_other_waiting():
    m = model()
    xs, masks, _ = batch()
    runner = HeadRunner(threads=2)
    with pytest.raises(RuntimeError):
        runner.forward(m, [xs[0][..., :5], xs[1]], masks, grad=True)  # head 0 gets the wrong feature size
    runner.close()


def test_bfloat16_copy_runs_the_step_and_the_optimizer_keeps_float32_master_weights():
    master = model()
    compute = ComputeCopy(master, torch.bfloat16)
    assert compute.model.heads["image"].project.weight.dtype == torch.bfloat16
    assert compute.model.heads["image"].norm is master.heads["image"].norm  # BatchNorm shared, float32
    opt = torch.optim.AdamW(master.parameters(), lr=1e-3)
    before = copy.deepcopy(master.state_dict())
    runner = HeadRunner(threads=2)
    xs, masks, y = batch()
    loss = fused_loss_backward(runner.forward(compute.model, xs, masks, grad=True), y, runner)
    assert torch.isfinite(loss)
    compute.grads_to_master()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in master.parameters())
    opt.step()
    compute.weights_from_master()
    after = master.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)
    changed = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert "heads.image.project.weight" in changed and "heads.video.classify.weight" in changed
    assert "heads.image.norm.weight" in changed  # BatchNorm's gradients reach the master directly
    torch.testing.assert_close(
        compute.model.heads["video"].classify.weight,
        master.heads["video"].classify.weight.to(torch.bfloat16),
        rtol=0,
        atol=0,
    )
    runner.close()


def test_float32_compute_is_the_master_itself():
    master = model()
    compute = ComputeCopy(master, torch.float32)
    assert compute.model is master
    compute.grads_to_master()
    compute.weights_from_master()


def test_precision_choices_on_cpu():
    from divita.errors import DivitaError
    from divita.training import resolve_precision

    assert resolve_precision("32", "cpu") == ("32-true", torch.float32)
    assert resolve_precision("bf16", "cpu") == ("32-true", torch.bfloat16)  # our bf16 copy, not Lightning's autocast
    assert resolve_precision("auto", "cpu")[0] == "32-true"
    with pytest.raises(DivitaError, match="^unknown precision 'fp8'; choose from: auto, 32, bf16$"):
        resolve_precision("fp8", "cpu")
    with pytest.raises(DivitaError):
        resolve_precision("float16", "cpu")  # no float16 training (autocast would need loss scaling)


def test_one_precision_vocabulary_and_each_command_keeps_its_spellings(capsys):
    from divita.cli import build_parser
    from divita.errors import DivitaError
    from divita.hardware import PRECISIONS, TRAIN_PRECISIONS, precision_name

    assert PRECISIONS == ("auto", "float32", "bfloat16", "float16") and TRAIN_PRECISIONS == ("auto", "32", "bf16")
    assert [precision_name(p) for p in PRECISIONS] == list(PRECISIONS)
    spelled = ["auto", "32", "bf16", "fp32", "32-true", "bf16-mixed", "float32", "bfloat16"]
    assert [precision_name(p, TRAIN_PRECISIONS) for p in spelled] == [
        "auto", "float32", "bfloat16", "float32", "float32", "bfloat16", "float32", "bfloat16"
    ]  # fmt: skip
    for bad in ("32", "bf16", "fp8"):  # inference takes the canonical names only
        with pytest.raises(
            DivitaError, match=f"^unknown precision '{bad}'; choose from: auto, float32, bfloat16, float16$"
        ):
            precision_name(bad)
    parser = build_parser()
    train = ["train", "--data-dir", "d", "--ix", "i", "--vx", "v", "--split", "0", "--out", "o", "--precision"]
    extract = ["extract", "v.mp4", "--backbone", "b", "--out", "o", "--precision"]
    for p in TRAIN_PRECISIONS:
        assert parser.parse_args([*train, p]).precision == p
    for p in PRECISIONS:
        assert parser.parse_args([*extract, p]).precision == p
    for argv in ([*train, "float32"], [*extract, "32"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    capsys.readouterr()


def test_retain_freed_memory_stops_page_faults_on_reallocation():
    import resource
    import sys

    import numpy as np

    from divita.training.compute import retain_freed_memory

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert retain_freed_memory()
    for _ in range(3):  # warm: the heap grows once
        blocks = [np.ones(1 << 20) for _ in range(6)]  # 8 MB each, freed out of order below
        del blocks[::2], blocks
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        blocks = [np.ones(1 << 20) for _ in range(6)]
        del blocks[::2], blocks
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 200  # 10 x 6 x 2048 pages if unmapped

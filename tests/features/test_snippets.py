"""Snippets read back from feature tables: training and evaluation windows, the mean over a trailer's snippets."""

import numpy as np
import torch

from divita.features.snippets import SnippetSet, mean_over_snippets
from divita.features.tables import FeatureTable


def table(lengths, num_features=3, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    feats = rng.standard_normal((lengths.sum(), num_features)).astype(np.float32)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    return FeatureTable([f"m{i}" for i in range(len(lengths))], feats, offsets, lengths)


def labels(n):
    y = np.zeros((n, 10), np.float32)
    y[:, 0] = 1
    return y


def test_eval_windows_cover_every_clip_once_and_pad_the_last():
    t = table([65, 30, 7])
    s = SnippetSet([t], labels(3), num_clips=30)
    seen = {i: [] for i in range(3)}
    for b in s.eval_batches(batch_size=4):
        for x, m, tr in zip(b.xs[0], b.masks[0], b.trailer):
            seen[int(tr)].append(x[m].numpy())
            assert torch.all(x[~m] == 0)
    assert [len(v) for v in seen.values()] == [3, 1, 1]
    for i in range(3):
        np.testing.assert_array_equal(np.concatenate(seen[i]), t.trailer(i))


def test_train_windows_are_consecutive_clips_inside_the_trailer():
    t = table([100, 31, 12])
    s = SnippetSet([t], labels(3), num_clips=30)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(20):
        for b in s.train_batches(batch_size=3, rng=rng):
            for x, m, tr in zip(b.xs[0], b.masks[0], b.trailer):
                full = t.trailer(int(tr))
                n = int(m.sum())
                assert n == min(30, len(full))
                assert m[:n].all() and not m[n:].any()
                # the window is a run of consecutive clips of this trailer
                hits = [k for k in range(len(full) - n + 1) if np.array_equal(full[k : k + n], x[:n].numpy())]
                assert hits
                if int(tr) == 0:
                    starts.add(hits[0])
    assert len(starts) > 5  # random positions, not always the start


def test_modalities_with_different_clip_counts_get_windows_at_the_same_relative_position():
    image, video = table([120], seed=1), table([60], seed=2)
    s = SnippetSet([image, video], labels(1), num_clips=30)
    trailer, starts = s.eval_windows()
    assert trailer.tolist() == [0, 0, 0, 0]
    assert starts[0].tolist() == [0, 30, 60, 90]
    assert starts[1].tolist() == [0, 15, 30, 45]


def test_mean_over_snippets():
    probs = torch.tensor([[1.0], [3.0], [5.0]])
    out = mean_over_snippets(probs, torch.tensor([0, 0, 1]), 2)
    assert out.squeeze(1).tolist() == [2.0, 5.0]

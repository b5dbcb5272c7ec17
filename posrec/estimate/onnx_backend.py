"""MoveNet's network and the action recognisers on ONNX Runtime: the same weights, two to
four times as fast on a CPU.

PyTorch's eager CPU convolutions spend much of MoveNet's small MobileNetV2 in per-op overhead;
ONNX Runtime fuses the graph (conv + bias + ReLU6, depthwise kernels) and runs network and
decoding together 1.6-3.1x faster (benchmarks/RESULTS.md, "MoveNet on ONNX Runtime"). Only the network runs there: the
decoding stays in :class:`~posrec.estimate.movenet.MoveNet`, so outputs match the PyTorch path
to float32 rounding (about 1e-4 on the raw head outputs). :class:`OnnxModule` runs an action
recogniser the same way (3.7x PyTorch's speed at the labeller's batches of 3 windows).

Each graph is exported from the loaded PyTorch model once per set of weights and cached under
``$POSREC_CACHE_DIR`` (default ``$XDG_CACHE_HOME/posrec`` or ``~/.cache/posrec``), keyed by the
weights' sha256 and the exporter's version; where the cache cannot be written it is exported in
memory each time (about 2 s). The cached file is checked against the sha256 stored beside it.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from posrec.errors import PosrecError
from posrec.io.atomic import atomic_write, file_sha256

# Bump when the exported graph changes (inputs, outputs or the export itself).
EXPORT_VERSION = 1


def available() -> bool:
    """Whether ONNX Runtime and the exporter's ``onnx`` package are installed. Found, not
    imported: ``onnx`` takes about a second to import and is needed only for an export (a
    cached graph runs without it); a broken install fails at the session, which names it."""
    from importlib.util import find_spec

    return find_spec("onnx") is not None and find_spec("onnxruntime") is not None


def cache_dir() -> Path:
    env = os.environ.get("POSREC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "posrec"


class _Features(torch.nn.Module):
    """``MoveNet.features`` with its outputs as a tuple in name order (what ONNX exports)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.names = sorted(model.heads)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.features(images)
        return tuple(out[name] for name in self.names)


def export(model, size: tuple[int, int]) -> bytes:
    """The network of ``model`` as ONNX bytes; batch, height and width stay free.

    Traced at ``size`` (H, W); valid for any input whose sides are multiples of 32, where every
    stride-2 layer sees an even size and TF's 'SAME' padding is the traced (0, 1) pad.
    """
    example = torch.zeros(1, *size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on the constant pads and the exporter
        warnings.simplefilter("ignore")
        torch.onnx.export(_Features(model), (example,), buffer, dynamo=False,
                          input_names=["images"], output_names=sorted(model.heads),
                          dynamic_axes={"images": {0: "n", 1: "h", 2: "w"}}, opset_version=17)
    return buffer.getvalue()


def cached_graph(name: str, make: Callable[[], bytes]) -> bytes | str:
    """The path of the cached ONNX file ``name`` (made by ``make()`` where it is missing), or
    the graph's bytes where the cache cannot be written.

    The cache holds each graph's sha256 beside it; a file that does not match (damaged, half
    copied, altered) is made again, so a bad cache can never change a result."""
    path = cache_dir() / name
    digest = path.with_name(path.name + ".sha256")
    try:
        if path.is_file() and digest.read_text().strip() == file_sha256(path):
            return str(path)
    except OSError:
        pass
    graph = make()
    try:
        with atomic_write(path, "wb") as f:
            f.write(graph)
        with atomic_write(digest, "w") as f:
            f.write(hashlib.sha256(graph).hexdigest() + "\n")
    except (PosrecError, OSError):  # a read-only home or cache: export each time instead
        return graph
    return str(path)


def new_session(graph: bytes | str | Callable[[], bytes | str], what: str):
    """An ONNX Runtime session on the CPU with ``torch.get_num_threads()`` threads, on ``graph``
    (ONNX bytes, a file path, or a callable giving either, so that an export's failure is
    reported like the runtime's); PosrecError (one line, naming ``what``) where it fails."""
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: a busy neighbour (a training, another
        # process) then slows the model a little instead of stalling it (RESULTS).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(graph() if callable(graph) else graph, options,
                                    providers=["CPUExecutionProvider"])
    except PosrecError:
        raise
    except Exception as err:  # the exporter or the runtime: one line, not a traceback
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise PosrecError(f"cannot run {what} on ONNX Runtime ({first}); "
                          f"--backend torch runs it in PyTorch") from None


def _torch_tag() -> str:
    return f"export{EXPORT_VERSION}-torch{torch.__version__.split('+')[0]}"


class OnnxNetwork:
    """Callable: uint8 images (N, H, W, 3), H and W multiples of 32 -> the head outputs
    ``{name: float32 tensor (N, C, H/4, W/4)}``, as ``MoveNet.features`` returns them.

    Args:
        model: the loaded PyTorch MoveNet (its weights are exported).
        weights_sha256: the weight file's sha256, the cache key.

    The session is made at the first call with ``torch.get_num_threads()`` threads, so a
    ``--threads`` set after construction still counts.
    """

    def __init__(self, model, weights_sha256: str):
        self.model, self.sha256 = model, weights_sha256
        self.names = sorted(model.heads)
        self._session = None

    def cache_path(self) -> Path:
        return cache_dir() / f"movenet_{self.model.variant}-{self.sha256[:16]}-{_torch_tag()}.onnx"

    def _graph(self) -> bytes | str:
        side = self.model.input_size or 256
        return cached_graph(self.cache_path().name, lambda: export(self.model, (side, side)))

    def session(self):
        """The ONNX Runtime session, made at the first call; PosrecError if it cannot be."""
        if self._session is None:
            self._session = new_session(self._graph, "MoveNet")
        return self._session

    def __call__(self, images: np.ndarray) -> dict[str, torch.Tensor]:
        outputs = self.session().run(None, {"images": np.ascontiguousarray(images, np.uint8)})
        return {name: torch.from_numpy(o) for name, o in zip(self.names, outputs)}


class OnnxModule:
    """Callable: float32 tensor (N, ...) -> float32 tensor (N, K): a PyTorch module with one
    input and one output (an action recogniser) on ONNX Runtime, several times as fast at the
    labeller's small batches (RESULTS). The module's state and structure key the cache.

    The graph is exported at the first call, for that input's shape with the batch free, and
    checked once against the module on that input: a graph that does not reproduce it (an op
    the tracer froze) raises PosrecError, so it can never change a result.
    """

    def __init__(self, module: torch.nn.Module, what: str = "the action model"):
        self.module, self.what = module, what
        self._session, self._shape = None, None
        digest = hashlib.sha256(repr(module).encode())
        for key, value in module.state_dict().items():
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        self.key = digest.hexdigest()[:16]

    def _export(self, example: torch.Tensor) -> bytes:
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(self.module, (example,), buffer, dynamo=False, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                              opset_version=17)
        return buffer.getvalue()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape[1:])
        if self._session is None or shape != self._shape:
            example = x[:1].expand(2, *shape).contiguous()  # a batch of 2: no size-1 broadcasts
            name = f"module-{self.key}-{'x'.join(map(str, shape))}-{_torch_tag()}.onnx"
            session = new_session(lambda: cached_graph(name, lambda: self._export(example)),
                                  self.what)
            got = self._run(session, x)
            want = self.module(x.float()).numpy()
            if not np.allclose(got, want, rtol=1e-3, atol=1e-3):
                raise PosrecError(f"{self.what} on ONNX Runtime differs from PyTorch by "
                                  f"{float(np.abs(got - want).max()):.2g}; --backend torch "
                                  f"runs it in PyTorch")
            self._session, self._shape = session, shape
            return torch.from_numpy(got)
        return torch.from_numpy(self._run(self._session, x))

    @staticmethod
    def _run(session, x: torch.Tensor) -> np.ndarray:
        return session.run(None, {"x": np.ascontiguousarray(x.numpy(), np.float32)})[0]

"""Import a network (zoo name, ``.onnx`` or ``.pt2`` file) as a high-level Relax module.

The result is the module every later stage starts from: weights bound as constants,
batch-norm decomposed for inference (so it fuses into the convolutions) and bindings
canonicalised. Legalisation and fusion for tuning are *not* applied here; that is the
job of ``chameleon.tvm_glue``.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tvm
from tvm import relax

from chameleon.errors import ChameleonError, UsageError
from chameleon.models.zoo import ZOO_NAMES, build_model, canonical_name

log = logging.getLogger(__name__)

FILE_SUFFIXES: tuple[str, ...] = (".onnx", ".pt2")
"""Model file types :func:`load_network` accepts besides zoo names."""

Dim = int | str
"""One input dimension: a size, or the name of a symbolic dimension."""


@dataclass(frozen=True, eq=False)
class Network:
    """An imported network, ready for task extraction and compilation."""

    name: str
    """Zoo name, or the file's stem for ``.onnx`` / ``.pt2`` models."""
    mod: tvm.IRModule
    """High-level Relax module: params bound, DecomposeOpsForInference + CanonicalizeBindings."""
    input_shape: tuple[int, ...]
    """Static shape of the single input of ``main``."""
    input_dtype: str
    """Dtype of that input, e.g. ``"float32"``."""
    example_input: np.ndarray
    """A deterministic input of that shape and dtype."""
    torch_module: torch.nn.Module | None
    """The PyTorch module (for eager reference timings and outputs); None for ONNX models."""


def load_network(
    model: str | Path, *, batch: int = 1, image_size: int | None = None, seed: int = 0
) -> Network:
    """Import ``model``: a zoo name (see ``ZOO_NAMES``) or a path to an ``.onnx`` / ``.pt2`` file.

    ``batch`` and ``image_size`` size the zoo networks. For files they fill in symbolic
    dimensions (batch = dim 0, image size = dims 2 and 3 of an NCHW input); a file with a fixed
    batch other than ``batch`` is rejected unless ``batch`` is left at 1. ``seed`` picks the zoo
    weights and the example input.

    Raises:
        UsageError: ``model`` is neither a zoo name nor an ``.onnx``/``.pt2`` path.
        ChameleonError: the file is missing, unreadable, corrupt or cannot be converted.
    """
    if batch < 1:
        raise UsageError(f"batch must be at least 1, got {batch}")
    text = str(model)
    zoo_name = canonical_name(text)
    if zoo_name is not None and not Path(text).is_file():
        return _load_zoo(zoo_name, batch=batch, image_size=image_size, seed=seed)
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        if path.is_file():
            raise ChameleonError(f"cannot load {path}: unsupported file type; use an .onnx or .pt2 file")
        raise UsageError(
            f"unknown model {text!r}; valid names: {', '.join(ZOO_NAMES)}"
            f" (or a path to an {' / '.join(FILE_SUFFIXES)} file)"
        )
    if not path.is_file():
        raise ChameleonError(f"cannot load {path}: no such file")
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as err:
        raise ChameleonError(f"cannot load {path}: {err.strerror or err}") from err
    if suffix == ".onnx":
        return _load_onnx(path, batch=batch, image_size=image_size, seed=seed)
    return _load_pt2(path, batch=batch, image_size=image_size, seed=seed)


# --------------------------------------------------------------------------- torch paths
@contextmanager
def _quiet_torch() -> Iterator[None]:
    """Silence torch.export's harmless FutureWarning / DeprecationWarning noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _load_zoo(name: str, *, batch: int, image_size: int | None, seed: int) -> Network:
    module, example = build_model(name, batch=batch, image_size=image_size, seed=seed)
    with _quiet_torch(), torch.no_grad():
        ep = torch.export.export(module, (example,))
    mod = _import_exported_program(ep, label=name, bindings={})
    x = example.numpy()
    return Network(
        name=name,
        mod=mod,
        input_shape=tuple(x.shape),
        input_dtype=str(x.dtype),
        example_input=x,
        torch_module=module,
    )


def _load_pt2(path: Path, *, batch: int, image_size: int | None, seed: int) -> Network:
    if not zipfile.is_zipfile(path):
        raise ChameleonError(f"cannot load {path}: not a torch.export .pt2 archive (not a zip file)")
    with _captured_log("torch.export") as records:  # torch logs the real cause, then raises
        try:
            with _quiet_torch():
                ep = torch.export.load(str(path))
        except Exception as err:  # torch raises many types for a bad archive
            causes = [r.exc_info[1] for r in records if r.exc_info and r.exc_info[1] is not None]
            reason = _first_line(causes[0] if causes else err)
            raise ChameleonError(f"cannot load {path}: not a torch.export .pt2 archive ({reason})") from err
    user_inputs = list(ep.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise ChameleonError(
            f"cannot load {path}: the model takes {len(user_inputs)} inputs; only 1 is supported"
        )
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == user_inputs[0])
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise ChameleonError(f"cannot load {path}: its input {user_inputs[0]!r} is not a tensor")
    dims: list[Dim] = [d if isinstance(d, int) else str(d) for d in val.shape]
    shape, bindings = _resolve_shape(dims, batch=batch, image_size=image_size, where=path)
    mod = _import_exported_program(ep, label=str(path), bindings=bindings)
    dtype = str(val.dtype).removeprefix("torch.")
    return Network(
        name=path.stem,
        mod=mod,
        input_shape=shape,
        input_dtype=dtype,
        example_input=_random_input(shape, dtype, seed),
        torch_module=ep.module(),
    )


def _import_exported_program(
    ep: torch.export.ExportedProgram, *, label: str, bindings: dict[str, int]
) -> tvm.IRModule:
    from tvm.relax.frontend.torch import from_exported_program

    try:
        with _quiet_torch():
            mod = from_exported_program(ep, keep_params_as_input=True)
    except Exception as err:
        raise ChameleonError(f"cannot convert {label} to Relax: {_first_line(err)}") from err
    return _high_level(mod, bindings)


# --------------------------------------------------------------------------- ONNX path
def _load_onnx(path: Path, *, batch: int, image_size: int | None, seed: int) -> Network:
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path))
    except Exception as err:  # DecodeError, ValidationError, OSError, ...
        raise ChameleonError(f"cannot load {path}: not a valid ONNX model ({_first_line(err)})") from err
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ChameleonError(f"cannot load {path}: the model takes {len(inputs)} inputs; only 1 is supported")
    tensor_type = inputs[0].type.tensor_type
    dims: list[Dim] = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or f"?{axis}")
        for axis, d in enumerate(tensor_type.shape.dim)
    ]
    shape, _ = _resolve_shape(dims, batch=batch, image_size=image_size, where=path)
    dtype = str(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Renaming name", category=UserWarning)
            mod = from_onnx(
                model,
                shape_dict={inputs[0].name: list(shape)},
                dtype_dict={inputs[0].name: dtype},
                keep_params_in_input=True,
            )
    except Exception as err:
        raise ChameleonError(f"cannot convert {path} to Relax: {_first_line(err)}") from err
    return Network(
        name=path.stem,
        mod=_high_level(mod, {}),
        input_shape=shape,
        input_dtype=dtype,
        example_input=_random_input(shape, dtype, seed),
        torch_module=None,
    )


# --------------------------------------------------------------------------- shared helpers
class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _captured_log(name: str) -> Iterator[list[logging.LogRecord]]:
    """Collect logger ``name``'s records instead of letting them reach the user's handlers."""
    logger = logging.getLogger(name)
    handler = _ListHandler()
    saved = logger.propagate, logger.handlers[:]
    logger.propagate, logger.handlers[:] = False, [handler]
    try:
        yield handler.records
    finally:
        logger.propagate, logger.handlers[:] = saved[0], saved[1]


def _high_level(mod: tvm.IRModule, bindings: dict[str, int]) -> tvm.IRModule:
    """Bind weights as constants and symbolic dims to sizes; decompose ops for inference."""
    mod, params = relax.frontend.detach_params(mod)
    values = params.get("main", [])
    if values:
        names = [p.name for p in mod["main"].params[1:]]
        mod = relax.transform.BindParams("main", dict(zip(names, values, strict=True)))(mod)
    if bindings:
        mod = relax.transform.BindSymbolicVars(bindings, "main")(mod)
    passes = [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings()]
    return tvm.transform.Sequential(passes)(mod)


def _resolve_shape(
    dims: Sequence[Dim], *, batch: int, image_size: int | None, where: Path
) -> tuple[tuple[int, ...], dict[str, int]]:
    """Fill symbolic dims: dim 0 with ``batch``, dims 2-3 of a 4-D input with ``image_size``.

    Returns the static shape and the ``{symbol: size}`` bindings used.
    """
    shape: list[int] = []
    bindings: dict[str, int] = {}
    for axis, dim in enumerate(dims):
        if isinstance(dim, int):
            if axis == 0 and batch not in (1, dim):
                raise ChameleonError(
                    f"cannot use batch {batch} with {where}: its batch is fixed at {dim};"
                    " export it with a dynamic batch dimension"
                )
            if axis in (2, 3) and len(dims) == 4 and image_size not in (None, dim):
                raise ChameleonError(
                    f"cannot use image size {image_size} with {where}: its input is fixed at"
                    f" {dims[2]}x{dims[3]}; export it with dynamic spatial dimensions"
                )
            if axis == 0 and batch != dim:
                log.warning("%s has a fixed batch of %d; using it", where, dim)
            shape.append(dim)
            continue
        if axis == 0:
            size = batch
        elif axis in (2, 3) and len(dims) == 4 and image_size is not None:
            size = image_size
        else:
            raise ChameleonError(
                f"cannot load {where}: input dimension {axis} is symbolic ({dim});"
                + (" pass an image size" if axis in (2, 3) and len(dims) == 4 else " export it static")
            )
        if bindings.get(dim, size) != size:
            raise ChameleonError(f"cannot load {where}: symbol {dim} would need two different sizes")
        bindings[dim] = size
        shape.append(size)
    return tuple(shape), bindings


def _random_input(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.integers(0, 10, size=shape).astype(dtype)


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."

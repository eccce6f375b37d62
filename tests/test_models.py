"""Model zoo (plain torch) and model import (zoo name / .onnx / .pt2 -> high-level Relax)."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import tvm
from hypothesis import given, settings
from hypothesis import strategies as st
from tvm import relax

from chameleon.errors import ChameleonError, UsageError
from chameleon.models.importer import Network, _resolve_shape, load_network
from chameleon.models.zoo import ZOO_NAMES, build_model

LLVM = tvm.target.Target({"kind": "llvm"})

# Small image sizes keep the torch forward passes fast (alexnet needs at least 63); for
# bert_mini the size is the sequence length.
SMALL_SIZES = {
    "resnet18": 64,
    "vgg16": 32,
    "alexnet": 63,
    "mobilenet_v2": 64,
    "bert_mini": 16,
    "tiny_cnn": 32,
}
NUM_CLASSES = {
    "resnet18": 1000,
    "vgg16": 1000,
    "alexnet": 1000,
    "mobilenet_v2": 1000,
    "bert_mini": 2,
    "tiny_cnn": 10,
}


def vm_output(net: Network, x: np.ndarray | None = None, *, executable=None) -> np.ndarray:
    """Run ``executable`` (default: ``net.mod`` compiled for llvm) on ``x`` (default: the
    example input)."""
    ex = executable if executable is not None else tvm.compile(net.mod, target=LLVM)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(net.example_input if x is None else x, tvm.cpu()))
    return (out if hasattr(out, "numpy") else out[0]).numpy()  # torch import returns a tuple


def torch_output(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    return (out[0] if isinstance(out, tuple | list) else out).numpy()


def relax_input_shape(net: Network) -> list[int]:
    return [int(d) for d in net.mod["main"].params[0].ty.shape]


@pytest.fixture(scope="module")
def tiny() -> Network:
    return load_network("tiny_cnn", batch=2)


# --------------------------------------------------------------------------- zoo
def test_zoo_names() -> None:
    assert set(ZOO_NAMES) == {"resnet18", "vgg16", "alexnet", "mobilenet_v2", "bert_mini", "tiny_cnn"}


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_model_runs_in_torch(name: str) -> None:
    size = SMALL_SIZES[name]
    module, x = build_model(name, image_size=size)
    assert not module.training
    if name == "bert_mini":
        assert x.shape == (1, size) and x.dtype == torch.int64
    else:
        assert x.shape == (1, 3, size, size) and x.dtype == torch.float32
    with torch.no_grad():
        y = module(x)
    assert y.shape == (1, NUM_CLASSES[name])
    assert torch.isfinite(y).all() and y.std() > 0


def test_default_image_sizes() -> None:
    assert build_model("resnet18")[1].shape == (1, 3, 224, 224)
    assert build_model("tiny_cnn", batch=3)[1].shape == (3, 3, 32, 32)
    assert build_model("bert_mini", batch=2)[1].shape == (2, 128)


@settings(max_examples=10, deadline=None)
@given(batch=st.integers(1, 3), seq=st.integers(1, 40))
def test_bert_mini_any_sequence_length(batch: int, seq: int) -> None:
    module, ids = build_model("bert_mini", batch=batch, image_size=seq)
    assert ids.shape == (batch, seq) and int(ids.min()) >= 0 and int(ids.max()) < module.vocab
    with torch.no_grad():
        assert module(ids).shape == (batch, 2)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 4), size=st.integers(4, 40))
def test_tiny_cnn_any_size(batch: int, size: int) -> None:
    module, x = build_model("tiny_cnn", batch=batch, image_size=size)
    assert x.shape == (batch, 3, size, size)
    with torch.no_grad():
        assert module(x).shape == (batch, 10)


def test_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    state = torch.get_rng_state()
    m1, x1 = build_model("tiny_cnn", seed=3)
    m2, x2 = build_model("tiny_cnn", seed=3)
    m3, x3 = build_model("tiny_cnn", seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1 if s1[k].is_floating_point())


def test_batch_norm_stats_are_randomised() -> None:
    module, _ = build_model("resnet18", image_size=32)
    bns = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 20
    for bn in bns:
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
        assert not torch.allclose(bn.weight, torch.ones_like(bn.weight))


def test_zoo_names_are_forgiving() -> None:
    assert build_model("ResNet-18", image_size=32)[0].__class__.__name__ == "ResNet18"
    assert build_model("MobileNet-V2", image_size=32)[0].__class__.__name__ == "MobileNetV2"


def test_zoo_bad_arguments() -> None:
    with pytest.raises(UsageError) as err:
        build_model("resnet50")
    msg = str(err.value)
    assert "\n" not in msg and "resnet50" in msg and all(n in msg for n in ZOO_NAMES)
    with pytest.raises(UsageError, match="at least 63"):
        build_model("alexnet", image_size=62)
    with pytest.raises(UsageError, match="batch"):
        build_model("tiny_cnn", batch=0)
    with pytest.raises(UsageError, match="sequence length 513 is too large for bert_mini; use at most 512"):
        build_model("bert_mini", image_size=513)


# --------------------------------------------------------------------------- import: zoo
def test_tiny_cnn_imports_and_matches_torch(tiny: Network) -> None:
    assert tiny.name == "tiny_cnn" and tiny.input_dtype == "float32"
    assert tiny.input_shape == (2, 3, 32, 32) == tiny.example_input.shape
    assert relax_input_shape(tiny) == [2, 3, 32, 32]
    assert len(tiny.mod["main"].params) == 1  # weights are bound as constants
    script = tiny.mod.script()
    assert "batch_norm" not in script and script.count("R.nn.conv2d(") == 2
    assert tiny.torch_module is not None
    np.testing.assert_allclose(
        vm_output(tiny), torch_output(tiny.torch_module, tiny.example_input), atol=1e-4, rtol=0
    )


def test_batch_and_image_size_change_the_input_shape() -> None:
    net = load_network("tiny_cnn", batch=3, image_size=16)
    assert net.input_shape == (3, 3, 16, 16) == net.example_input.shape
    assert relax_input_shape(net) == [3, 3, 16, 16]


def test_resnet18_imports() -> None:
    net = load_network("resnet18", image_size=64)
    assert net.input_shape == (1, 3, 64, 64)
    assert len(net.mod["main"].params) == 1
    script = net.mod.script()
    assert script.count("R.nn.conv2d(") == 20 and "batch_norm" not in script


def test_bert_mini_imports_and_matches_torch() -> None:
    """Token ids in, the encoder's ops out: an embedding lookup (take), dense layers, batched
    matmuls, softmax, layer norm; compiled untuned, it matches torch."""
    net = load_network("bert_mini", batch=2, image_size=8)
    assert net.input_dtype == "int64" and net.input_shape == (2, 8) == net.example_input.shape
    script = net.mod.script()
    assert all(op in script for op in ("R.take(", "R.matmul(", "R.nn.softmax(", "R.nn.layer_norm("))
    np.testing.assert_allclose(
        vm_output(net), torch_output(net.torch_module, net.example_input), atol=1e-4, rtol=0
    )


def test_cpu_pipeline_computes_gelu_and_softmax_without_libm() -> None:
    """On LLVM the pipeline swaps erf and softmax's exp for TOPI's vectorisable polynomials
    (libm's scalar erff made BERT-mini's GELU kernels half the network's time); the network still
    matches torch. CUDA keeps its own erff and exp."""
    from chameleon.hardware.targets import resolve_target
    from chameleon.tvm_glue.pipeline import compile_tuned, extract_tasks

    net = load_network("bert_mini", batch=1, image_size=8)
    cpu_tasks = extract_tasks(net.mod, LLVM, prepack=True)
    assert any("gelu" in t.name for t in cpu_tasks)
    assert not any("T.erf(" in t.mod.script() or "T.exp(" in t.mod.script() for t in cpu_tasks)
    cuda_tasks = extract_tasks(net.mod, resolve_target("cuda").tvm_target(), prepack=False)
    assert any("T.erf(" in t.mod.script() for t in cuda_tasks)
    assert any("T.exp(" in t.mod.script() for t in cuda_tasks)
    out = vm_output(net, executable=compile_tuned(net.mod, LLVM, None, prepack=False))
    np.testing.assert_allclose(out, torch_output(net.torch_module, net.example_input), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vectorizable_math_rewrites_float32_only(dtype: str) -> None:
    from chameleon.tvm_glue.pipeline import VectorizableMath

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 8), dtype))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit_output(relax.op.nn.softmax(relax.op.nn.gelu(x), axis=-1))
        bb.emit_func_output(y)
    mod = bb.get()
    script = VectorizableMath()(mod).script()
    assert ("R.nn.softmax" in script and "R.nn.gelu" in script) == (dtype == "float64")


def test_extract_tasks_on_fused_tiny_cnn(tiny: Network) -> None:
    from tvm.s_tir import meta_schedule as ms

    passes = [
        *relax.pipeline.library_dispatch_passes(LLVM),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    with LLVM, tvm.transform.PassContext(opt_level=3):
        fused = tvm.transform.Sequential(passes)(tiny.mod)
    tasks = ms.relax_integration.extract_tasks(fused, LLVM)
    assert 3 <= len(tasks) <= 8
    assert sum("conv2d" in t.task_name for t in tasks) == 2  # batch norm fused into the convs


# --------------------------------------------------------------------------- import: files
def export_onnx(module: torch.nn.Module, x: torch.Tensor, path: Path, *, dynamic_batch: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x,),
            str(path),
            dynamo=False,  # the dynamo exporter needs onnxscript, which is not installed
            input_names=["input.1"],
            dynamic_axes={"input.1": {0: "N"}} if dynamic_batch else None,
        )


def export_pt2(module: torch.nn.Module, x: torch.Tensor, path: Path, *, dynamic_batch: bool) -> None:
    shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(module, (x,), dynamic_shapes=shapes)
    torch.export.save(ep, str(path))


def test_onnx_round_trip(tmp_path: Path) -> None:
    module, x = build_model("tiny_cnn", batch=2, image_size=16)
    path = tmp_path / "tiny.onnx"
    export_onnx(module, x, path, dynamic_batch=True)
    net = load_network(path, batch=3)
    assert net.name == "tiny" and net.torch_module is None
    assert net.input_shape == (3, 3, 16, 16) and net.input_dtype == "float32"
    assert relax_input_shape(net) == [3, 3, 16, 16]
    np.testing.assert_allclose(vm_output(net), torch_output(module, net.example_input), atol=1e-4, rtol=0)


def test_onnx_fixed_batch_is_kept_or_rejected(tmp_path: Path) -> None:
    module, x = build_model("tiny_cnn", batch=2, image_size=8)
    path = tmp_path / "fixed.onnx"
    export_onnx(module, x, path, dynamic_batch=False)
    assert load_network(str(path)).input_shape == (2, 3, 8, 8)  # batch left at its default
    with pytest.raises(ChameleonError, match="fixed at 2"):
        load_network(path, batch=4)
    with pytest.raises(ChameleonError, match="fixed at 8x8"):
        load_network(path, image_size=16)


def test_pt2_round_trip(tmp_path: Path) -> None:
    module, x = build_model("tiny_cnn", batch=1, image_size=16)
    path = tmp_path / "tiny.pt2"
    export_pt2(module, x, path, dynamic_batch=False)
    net = load_network(path)
    assert net.name == "tiny" and net.input_shape == (1, 3, 16, 16)
    assert net.torch_module is not None
    expected = torch_output(module, net.example_input)
    np.testing.assert_allclose(torch_output(net.torch_module, net.example_input), expected, atol=1e-6)
    np.testing.assert_allclose(vm_output(net), expected, atol=1e-4, rtol=0)


def test_pt2_dynamic_batch(tmp_path: Path) -> None:
    module, x = build_model("tiny_cnn", batch=2, image_size=8)
    path = tmp_path / "dyn.pt2"
    export_pt2(module, x, path, dynamic_batch=True)
    net = load_network(path, batch=3)
    assert net.input_shape == (3, 3, 8, 8) and relax_input_shape(net) == [3, 3, 8, 8]
    np.testing.assert_allclose(vm_output(net), torch_output(module, net.example_input), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- bad inputs
def assert_one_line(err: pytest.ExceptionInfo[ChameleonError], *parts: str) -> None:
    msg = str(err.value)
    assert msg and "\n" not in msg
    for part in parts:
        assert part in msg


def test_unknown_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        load_network("resnet_9000")
    assert_one_line(err, "resnet_9000", ".onnx", ".pt2", *ZOO_NAMES)


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_missing_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"absent{suffix}"
    with pytest.raises(ChameleonError) as err:
        load_network(path)
    assert type(err.value) is ChameleonError
    assert_one_line(err, str(path), "no such file")


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 8, b"PK\x03\x04 not really a zip"])
def test_garbage_file(tmp_path: Path, suffix: str, content: bytes) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(content)
    with pytest.raises(ChameleonError) as err:
        load_network(path)
    assert type(err.value) is ChameleonError
    assert_one_line(err, str(path))


def test_zip_that_is_not_an_export(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hello")
    with pytest.raises(ChameleonError) as err:
        load_network(path)
    assert_one_line(err, str(path), ".pt2 archive")


def test_other_file_type(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(b"x")
    with pytest.raises(ChameleonError) as err:
        load_network(path)
    assert_one_line(err, str(path), ".onnx", ".pt2")


# --------------------------------------------------------------------------- shape resolution
@settings(max_examples=50, deadline=None)
@given(
    batch=st.integers(1, 16),
    size=st.integers(1, 512),
    channels=st.integers(1, 8),
    sym_batch=st.booleans(),
    sym_hw=st.booleans(),
)
def test_resolve_shape_fills_symbols(
    batch: int, size: int, channels: int, sym_batch: bool, sym_hw: bool
) -> None:
    dims: list[int | str] = ["n" if sym_batch else batch, channels, "h" if sym_hw else size, size]
    shape, bindings = _resolve_shape(dims, batch=batch, image_size=size, where=Path("m.onnx"))
    assert shape == (batch, channels, size, size)
    expected = {"n": batch} if sym_batch else {}
    if sym_hw:
        expected["h"] = size
    assert bindings == expected


def test_resolve_shape_needs_image_size_for_symbolic_spatial_dims() -> None:
    with pytest.raises(ChameleonError, match="image size"):
        _resolve_shape(["n", 3, "h", "w"], batch=1, image_size=None, where=Path("m.onnx"))
    with pytest.raises(ChameleonError, match="symbolic"):
        _resolve_shape(["n", "seq"], batch=1, image_size=None, where=Path("m.onnx"))

"""Deployable libraries for Jetson boards: aarch64 host code, CUDA kernels for sm_87.

Tests that link an aarch64 ``.so`` need ``aarch64-linux-gnu-g++`` (Debian/Ubuntu package
g++-aarch64-linux-gnu, installed by ``.ci/run``); tests that compile kernels need nvcc. Each skips
with the reason when its tool is absent. No GPU is needed: nothing here launches a kernel.
"""

from __future__ import annotations

import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import te
from tvm.s_tir.schedule import Schedule

from chameleon.errors import ChameleonError
from chameleon.tvm_glue import cross

ORIN = "nvidia/jetson-orin-nano"
XAVIER = "nvidia/jetson-agx-xavier"
CROSS_CXX = "aarch64-linux-gnu-g++"

needs_cross = pytest.mark.skipif(
    shutil.which(CROSS_CXX) is None,
    reason=f"{CROSS_CXX} not installed (apt-get install g++-aarch64-linux-gnu; .ci/run installs it)",
)
needs_nvcc = pytest.mark.skipif(cross.find_nvcc() is None, reason="nvcc not installed (CUDA toolkit)")


def matmul_mod(n: int = 64) -> tvm.IRModule:
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def cuda_matmul(n: int = 64) -> tvm.IRModule:
    """The matmul with one thread per output element, in 8x8 thread blocks."""
    sch = Schedule(matmul_mod(n))
    i, j, _ = sch.get_loops(sch.get_sblock("C"))
    io, ii = sch.split(i, [None, 8])
    jo, ji = sch.split(j, [None, 8])
    sch.reorder(io, jo, ii, ji)
    sch.bind(io, "blockIdx.x")
    sch.bind(jo, "blockIdx.y")
    sch.bind(ii, "threadIdx.x")
    sch.bind(ji, "threadIdx.y")
    return sch.mod


@pytest.fixture(scope="module")
def orin_exe() -> tvm.runtime.Executable:
    return tvm.compile(cuda_matmul(), target=tvm.target.Target(ORIN))


def cubin_archs(library: Path) -> list[int]:
    """SM numbers of the CUDA ELF images (e_machine 190) inside a library's embedded fatbins."""
    header, entries = cross._split_blob(cross.library_blob(library))
    archs = []
    for kind, payload in entries:
        if kind != "cuda" or payload is None:
            continue
        pos = payload.find(b"\x7fELF")
        while pos >= 0:
            if struct.unpack_from("<H", payload, pos + 18)[0] == 190:
                flags = struct.unpack_from("<I", payload, pos + 48)[0]
                archs.append((flags >> 8) & 0xFF if (flags >> 8) & 0xFF else flags & 0xFF)
            pos = payload.find(b"\x7fELF", pos + 4)
    return archs


def hide_cross_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        cross.shutil, "which", lambda name, *a, **k: None if "aarch64" in name else real_which(name, *a, **k)
    )


def fake_nvcc(monkeypatch: pytest.MonkeyPatch, *, version: str, archs: tuple[int, ...]) -> None:
    monkeypatch.setattr(cross, "find_nvcc", lambda: "/opt/cuda/bin/nvcc")
    monkeypatch.setattr(cross, "nvcc_version", lambda _nvcc: version)
    monkeypatch.setattr(cross, "nvcc_archs", lambda _nvcc: archs)


CUDA13_ARCHS = (75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121)


# --------------------------------------------------------------------------- toolchain
def test_toolchain_for_jetson_names_aarch64_host_and_sm87(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvcc(monkeypatch, version="13.0", archs=CUDA13_ARCHS)
    tc = cross.check_toolchain(ORIN, link=False)
    assert (tc.target_name, tc.host_triple, tc.host_machine) == (ORIN, "aarch64-linux-gnu", "aarch64")
    assert tc.cross and tc.cuda and tc.arch == "sm_87" and tc.cuda_version == "13.0"
    assert tc.linker is None and tc.fcompile() is None  # link=False: no linker looked up
    assert cross.target_name(tvm.target.Target(ORIN)) == ORIN  # tag recovered from the Target


def test_toolchain_for_host_cpu_needs_no_cross_compiler() -> None:
    tc = cross.check_toolchain({"kind": "llvm"}, link=False)
    assert not tc.cross and not tc.cuda and tc.arch is None and tc.nvcc is None
    assert tc.host_machine == cross.local_machine()


def test_missing_cross_compiler_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_cross_compiler(monkeypatch)
    with pytest.raises(ChameleonError) as err:
        cross.check_toolchain(ORIN, compile_cuda=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert "install g++-aarch64-linux-gnu (Debian/Ubuntu)" in msg and ORIN in msg and ".tar" in msg


def test_missing_nvcc_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cross, "find_nvcc", lambda: None)
    with pytest.raises(ChameleonError) as err:
        cross.check_toolchain(ORIN, link=False)
    msg = str(err.value)
    assert "\n" not in msg and "nvcc" in msg and "sm_87" in msg and "cuda='source'" in msg


def test_cuda13_rejects_xavier_sm72_with_fake_nvcc(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvcc(monkeypatch, version="13.0", archs=CUDA13_ARCHS)
    with pytest.raises(ChameleonError) as err:
        cross.check_toolchain(XAVIER, link=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert "sm_72" in msg and XAVIER in msg and "JetPack" in msg and "jetson-orin-nano" in msg


def test_arch_newer_than_nvcc_asks_for_newer_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvcc(monkeypatch, version="11.4", archs=(53, 62, 72, 75, 80, 86, 87))
    assert cross.check_toolchain(XAVIER, link=False).arch == "sm_72"  # JetPack 5's CUDA is fine
    with pytest.raises(ChameleonError, match="newer CUDA toolkit"):
        cross.check_toolchain({"kind": "cuda", "arch": "sm_90"}, link=False)


@needs_nvcc
def test_real_nvcc_rejects_xavier_when_it_dropped_sm72() -> None:
    nvcc = cross.find_nvcc()
    if 72 in cross.nvcc_archs(nvcc):
        pytest.skip(f"this nvcc ({cross.nvcc_version(nvcc)}) still supports sm_72")
    with pytest.raises(ChameleonError) as err:
        cross.check_toolchain(XAVIER, link=False)
    assert "sm_72" in str(err.value) and "\n" not in str(err.value)


def test_hostless_jetson_tag_is_reported() -> None:
    with pytest.raises(ChameleonError, match="no aarch64 host"):
        cross.check_toolchain("nvidia/jetson-nano", compile_cuda=False, link=False)


# --------------------------------------------------------------------------- export
def test_elf_machine(tmp_path: Path) -> None:
    exe = tvm.compile(matmul_mod(8), target=tvm.target.Target({"kind": "llvm"}))
    lib = cross.export_library(exe, tmp_path / "host.so", {"kind": "llvm"})
    assert cross.elf_machine(lib) == cross.local_machine()
    (tmp_path / "text.so").write_text("not a library")
    with pytest.raises(ChameleonError, match="not an ELF file"):
        cross.elf_machine(tmp_path / "text.so")
    with pytest.raises(ChameleonError, match=r"use a \.so or \.tar"):
        cross.export_library(exe, tmp_path / "host.dll", {"kind": "llvm"})


def test_host_cpu_library_still_loads_and_runs(tmp_path: Path) -> None:
    exe = tvm.compile(matmul_mod(8), target=tvm.target.Target({"kind": "llvm"}))
    lib = cross.export_library(exe, tmp_path / "mm.so", {"kind": "llvm"})
    f = tvm.runtime.load_module(str(lib))["main"]
    a, b = np.random.default_rng(0).random((2, 8, 8), dtype=np.float32)
    c = tvm.runtime.tensor(np.zeros((8, 8), np.float32))
    f(tvm.runtime.tensor(a), tvm.runtime.tensor(b), c)
    np.testing.assert_allclose(c.numpy(), a @ b, rtol=1e-5)


@needs_cross
def test_cuda_kernel_for_sm87_exports_aarch64_so_with_source(
    orin_exe: tvm.runtime.Executable, tmp_path: Path
) -> None:
    lib = cross.export_library(orin_exe, tmp_path / "mm.so", ORIN, cuda="source")
    assert cross.elf_machine(lib) == "aarch64"
    assert cross.device_code_formats(lib) == ["cuda"]  # the board compiles at load time


@needs_cross
@needs_nvcc
def test_cuda_kernel_for_sm87_exports_aarch64_so_with_fatbin(
    orin_exe: tvm.runtime.Executable, tmp_path: Path
) -> None:
    lib = cross.export_library(orin_exe, tmp_path / "mm.so", ORIN)
    assert cross.elf_machine(lib) == "aarch64"
    assert cross.device_code_formats(lib) == ["fatbin"]  # no CUDA compiler needed on the board
    assert cubin_archs(lib) == [87]


def test_tar_export_needs_no_cross_compiler(
    orin_exe: tvm.runtime.Executable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_cross_compiler(monkeypatch)
    lib = cross.export_library(orin_exe, tmp_path / "mm.tar", ORIN, cuda="source")
    with tarfile.open(lib) as tar:
        assert sorted(tar.getnames()) == ["devc.o", "lib0.o"]
        assert all(cross._elf_machine_of(tar.extractfile(n).read(20), n) == "aarch64" for n in tar.getnames())
    assert cross.device_code_formats(lib) == ["cuda"]


@needs_nvcc
def test_tar_export_with_fatbin_needs_no_cross_compiler(
    orin_exe: tvm.runtime.Executable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide_cross_compiler(monkeypatch)
    lib = cross.export_library(orin_exe, tmp_path / "mm.tar", ORIN)
    assert cross.device_code_formats(lib) == ["fatbin"]
    assert cubin_archs(lib) == [87]


def test_blob_round_trip_keeps_tvms_bytes(orin_exe: tvm.runtime.Executable) -> None:
    import tvm_ffi

    blob = tvm_ffi.get_global_func("runtime.ModulePackImportsToTensor")(orin_exe.mod).numpy().tobytes()
    header, entries = cross._split_blob(blob)
    assert [kind for kind, _ in entries] == ["_lib", "cuda"]
    assert cross._join_blob(header, entries) == blob


@needs_nvcc
def test_x86_cuda_library_embeds_fatbin_for_its_arch(tmp_path: Path) -> None:
    target = tvm.target.Target({"kind": "cuda", "arch": "sm_90"}, host={"kind": "llvm"})
    exe = tvm.compile(cuda_matmul(), target=target)
    lib = cross.export_library(exe, tmp_path / "mm.so", target)
    assert cross.elf_machine(lib) == cross.local_machine()
    assert cubin_archs(lib) == [90]


@pytest.mark.slow
@needs_cross
def test_tiny_network_for_orin_exports_aarch64_so(tmp_path: Path) -> None:
    from chameleon.models.importer import load_network
    from chameleon.tvm_glue.pipeline import compile_tuned

    target = tvm.target.Target(ORIN)
    net = load_network("tiny_cnn")
    exe = compile_tuned(net.mod, target, None, prepack=False)  # untuned: dlight GPU schedules
    mode = "binary" if cross.find_nvcc() else "source"
    lib = cross.export_library(exe, tmp_path / "tiny_cnn_orin.so", target, cuda=mode)
    assert cross.elf_machine(lib) == "aarch64"
    assert cross.device_code_formats(lib) == (["fatbin"] if mode == "binary" else ["cuda"])
    if mode == "binary":
        assert set(cubin_archs(lib)) == {87}

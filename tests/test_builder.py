"""The persistent builder: workers survive rounds, failures come back as errors, CUDA builds export."""

from __future__ import annotations

import tarfile

import pytest
import tvm
from tvm import te
from tvm.s_tir.meta_schedule.builder import BuilderInput

from chameleon.tvm_glue.builder import PersistentBuilder


def _matmul(n: int = 64) -> tvm.IRModule:
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def test_workers_persist_across_rounds():
    target = tvm.target.Target({"kind": "llvm", "num-cores": 1})
    builder = PersistentBuilder(max_workers=1)
    try:
        first = builder.build([BuilderInput(_matmul(), target)] * 2)
        pool = builder._pool
        second = builder.build([BuilderInput(_matmul(32), target)])
        assert builder._pool is pool  # LocalBuilder would have started a new pool
        for result in first + second:
            assert result.error_msg is None
            assert tarfile.is_tarfile(result.artifact_path)
        assert builder.candidates == 3 and builder.seconds > 0
    finally:
        builder.shutdown()


def test_failed_build_is_an_error_result_not_an_exception():
    builder = PersistentBuilder(max_workers=1)
    try:
        # LLVM has no backend for this triple: the build fails inside the worker.
        bad = tvm.target.Target({"kind": "llvm", "mtriple": "nonexistent-unknown-none"})
        results = builder.build([BuilderInput(_matmul(), bad)])
        assert results[0].artifact_path is None
        assert results[0].error_msg
        ok = builder.build([BuilderInput(_matmul(), tvm.target.Target({"kind": "llvm"}))])
        assert ok[0].error_msg is None  # the pool survived the failure
    finally:
        builder.shutdown()


@pytest.mark.slow
def test_cuda_candidate_for_jetson_builds_to_a_tar():
    from tvm.s_tir.schedule import Schedule

    sch = Schedule(_matmul())
    i, j, _ = sch.get_loops(sch.get_sblock("C"))
    sch.bind(i, "blockIdx.x")
    sch.bind(j, "threadIdx.x")
    builder = PersistentBuilder(max_workers=1, import_tensor_intrin=True)
    try:
        result = builder.build([BuilderInput(sch.mod, tvm.target.Target("nvidia/jetson-orin-nano"))])[0]
        assert result.error_msg is None, result.error_msg
        with tarfile.open(result.artifact_path) as tar:
            assert any(name.endswith(".o") for name in tar.getnames())
    finally:
        builder.shutdown()

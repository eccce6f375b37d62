"""The shallow ``inspect.stack`` used to import TVM's tensor intrinsics parses TVMScript the same."""

from __future__ import annotations

import tvm
from tvm.script import ir as I
from tvm.script import tirx as T

from chameleon.tvm_glue.intrinsics import _shallow_stack, import_tensor_intrinsics

# ``n`` appears only in annotations, which PEP 563 turns into strings: the parser finds it by
# walking the stack to the enclosing function's frame (``resolve_closure_vars``).


def _scale(n: int):
    @T.prim_func(s_tir=True)
    def scale(a: T.Buffer((n,), "float32"), b: T.Buffer((n,), "float32")):
        for i in range(16):
            with T.sblock("b"):
                vi = T.axis.spatial(16, i)
                b[vi] = a[vi] * T.float32(2)

    return scale


def _module(n: int):
    @I.ir_module  # the inner function is left to the module's parser (``is_defined_in_class``)
    class Module:
        @T.prim_func(s_tir=True)
        def main(a: T.Buffer((n,), "float32"), b: T.Buffer((n,), "float32")):
            for i in range(16):
                with T.sblock("b"):
                    vi = T.axis.spatial(16, i)
                    b[vi] = a[vi] + T.float32(1)

    return Module


def test_shallow_stack_parses_functions_and_modules_the_same():
    plain_func, plain_mod = _scale(16), _module(16)
    with _shallow_stack():
        fast_func, fast_mod = _scale(16), _module(16)
    tvm.ir.assert_structural_equal(plain_func, fast_func)
    tvm.ir.assert_structural_equal(plain_mod, fast_mod)


def test_tensor_intrinsics_are_registered():
    import_tensor_intrinsics()
    import_tensor_intrinsics()  # a second call is a no-op
    from tvm.s_tir import TensorIntrin
    from tvm.s_tir.tensor_intrin.cuda import WMMA_SYNC_16x16x16_f16f16f32_INTRIN
    from tvm.s_tir.tensor_intrin.x86 import VNNI_DOT_16x4_INTRIN

    for name in (WMMA_SYNC_16x16x16_f16f16f32_INTRIN, VNNI_DOT_16x4_INTRIN):
        assert TensorIntrin.get(name) is not None

"""Import TVM's tensor intrinsics in seconds instead of half a minute.

``tvm.s_tir.tensor_intrin`` (imported by every ``TuneContext`` and by GPU build workers) parses a
few hundred TVMScript functions at import time. Each ``@T.prim_func`` calls ``inspect.stack()``,
which reads the source lines of every frame on the stack; during an import most frames belong to
``<frozen importlib>``, whose source file does not exist, and for each of them ``inspect`` scans
all of ``sys.modules``. On this project's 2-core machines the import took 32-40 s; with the stack
below it takes about 4 s (plus ~4 s for ``import tvm``).

The parser uses the stack for two things (TVM 0.27, ``tvm/script/parser/core/utils.py``): the
source line of frame 2 (``is_defined_in_class``) and the frame objects themselves
(``resolve_closure_vars``). The stack below keeps both: full ``FrameInfo`` for the first three
frames, and for the rest the frame with its file, line and function name but no source lines.
"""

from __future__ import annotations

import contextlib
import inspect
import sys

_FULL_FRAMES = 3


def import_tensor_intrinsics() -> None:
    """Import ``tvm.s_tir.tensor_intrin`` (a no-op once imported)."""
    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    with _shallow_stack():
        import tvm.s_tir.tensor_intrin  # noqa: F401


def _stack(context: int = 1) -> list[inspect.FrameInfo]:
    frames: list[inspect.FrameInfo] = []
    frame = sys._getframe(1)
    while frame is not None:
        if len(frames) < _FULL_FRAMES:
            info = inspect.getframeinfo(frame, context)
            frames.append(inspect.FrameInfo(frame, *info, positions=info.positions))
        else:
            code = frame.f_code
            frames.append(
                inspect.FrameInfo(
                    frame, code.co_filename, frame.f_lineno, code.co_name, None, None, positions=None
                )
            )
        frame = frame.f_back
    return frames


@contextlib.contextmanager
def _shallow_stack():
    """``inspect.stack`` is :func:`_stack` inside (process-wide, for the length of the import)."""
    original = inspect.stack
    inspect.stack = _stack
    try:
        yield
    finally:
        inspect.stack = original

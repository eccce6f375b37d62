"""Measurement inputs that cannot crash a kernel: integer tensors are zeros, the rest random.

MetaSchedule fills every argument of a candidate with random bits
(``tvm.contrib.random.random_fill_for_measure``). For an index tensor (``take``, ``gather``, an
embedding lookup, the ``take`` a transformer's exported graph contains) random integers are far
out of bounds: the kernel reads outside its buffer and the measuring process dies ("Subprocess
terminated"), so such a task can never be tuned. Zero is a valid index for all of them, and
integer arithmetic takes no shortcut on zeros. Floating-point tensors keep MetaSchedule's random
fill. Used by the local runner and by the farm's RPC runner (where the fill runs on the device).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_FILL = "tvm.contrib.random.random_fill_for_measure"


def _zero_integers(f_random_fill: Any):
    def fill(arg: Any) -> None:
        dtype = str(arg.dtype)
        if dtype.startswith(("int", "uint", "bool")):
            arg.copyfrom(np.zeros([int(d) for d in arg.shape], dtype=dtype))
        else:
            f_random_fill(arg)

    return fill


def alloc_local_arguments(device: Any, args_info: Any, alloc_repeat: int) -> list:
    """``LocalRunner`` 's ``f_alloc_argument``, integer tensors zeroed."""
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common
    from tvm.s_tir.meta_schedule.utils import get_global_func_with_default_on_worker

    f_random_fill = get_global_func_with_default_on_worker(name=_FILL, default=None)
    return alloc_argument_common(_zero_integers(f_random_fill), device, args_info, alloc_repeat)


def alloc_rpc_arguments(session: Any, device: Any, args_info: Any, alloc_repeat: int) -> list:
    """``RPCRunner`` 's ``f_alloc_argument``, integer tensors zeroed (copied to the device)."""
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common
    from tvm.s_tir.meta_schedule.utils import get_global_func_on_rpc_session

    f_random_fill = get_global_func_on_rpc_session(
        session, _FILL, "the RPC server's TVM needs USE_RANDOM (MetaSchedule fills inputs with it)"
    )
    return alloc_argument_common(_zero_integers(f_random_fill), device, args_info, alloc_repeat)

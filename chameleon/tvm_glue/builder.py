"""A MetaSchedule builder whose worker processes live as long as the tuning run.

TVM's ``LocalBuilder`` starts a fresh ``PopenPoolExecutor`` on every ``build()`` call and its
default build function imports ``tvm.s_tir.tensor_intrin`` in each fresh worker: about 24 s a
round on 2 cores, whatever the number of candidates (about 4 s with
:func:`~chameleon.tvm_glue.intrinsics.import_tensor_intrinsics`, which the workers here use). Here the pool is created once, workers are
recycled only after ``max_uses`` builds (TVM's reason for restarting: a slow leak in long-lived
workers), and the tensor-intrinsic import runs once per worker and only for targets whose
schedules may be tensorized (GPUs). A candidate then costs about what compiling it costs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

logger = logging.getLogger(__name__)


def _init_worker(import_tensor_intrin: bool) -> None:
    import tvm.driver  # noqa: F401  (warm the compiler in the worker)

    if import_tensor_intrin:
        from chameleon.tvm_glue.intrinsics import import_tensor_intrinsics

        import_tensor_intrinsics()


def _build_and_export(mod: tvm.IRModule, target: tvm.target.Target) -> str:
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
    from tvm.support.tar import tar

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    rt_mod = tvm_build(mod, target=target)
    artifact = os.path.join(tempfile.mkdtemp(prefix="chameleon-build-"), "tvm_tmp_mod.tar")
    rt_mod.export_library(artifact, fcompile=tar)
    return artifact


@derived_object
class PersistentBuilder(PyBuilder):
    """Builds candidates in a pool of long-lived worker processes (see module docstring)."""

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        timeout_sec: float = 30.0,
        max_uses: int = 256,
        import_tensor_intrin: bool = False,
    ) -> None:
        super().__init__()
        self.max_workers = max_workers or max(1, len(os.sched_getaffinity(0)))
        self.timeout_sec = timeout_sec
        self.max_uses = max_uses
        self.import_tensor_intrin = import_tensor_intrin
        self._pool: PopenPoolExecutor | None = None
        self.seconds = 0.0
        """Wall-clock seconds spent in ``build()`` so far (for the run's time breakdown)."""
        self.candidates = 0

    def _get_pool(self) -> PopenPoolExecutor:
        if self._pool is None:
            self._pool = PopenPoolExecutor(
                max_workers=self.max_workers,
                timeout=self.timeout_sec,
                initializer=_init_worker,
                initargs=(self.import_tensor_intrin,),
                maximum_process_uses=self.max_uses,
            )
        return self._pool

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        start = time.perf_counter()
        pool = self._get_pool()
        results: list[BuilderResult] = []
        args = [(b.mod, b.target) for b in build_inputs]
        for res in pool.map_with_error_catching(lambda x: _build_and_export(*x), args):
            if res.status == StatusKind.COMPLETE:
                results.append(BuilderResult(res.value, None))
            elif res.status == StatusKind.TIMEOUT:
                results.append(BuilderResult(None, f"build timed out after {self.timeout_sec} s"))
            else:
                results.append(BuilderResult(None, f"build failed: {res.value}"))
        self.seconds += time.perf_counter() - start
        self.candidates += len(build_inputs)
        return results

    def shutdown(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        # PopenPoolExecutor.shutdown() raises (AttributeError on a None process) and leaves its
        # lock held when a worker dies while being killed, which Ctrl-C makes likely: it signals
        # the workers too. Kill each worker on its own, then stop the thread pool.
        for worker in list(pool._worker_map.values()):
            try:
                worker.kill()
            except Exception as exc:  # noqa: BLE001 - a dead worker has nothing left to kill
                logger.debug("build worker already gone: %s", exc)
        pool._threadpool.shutdown(wait=False)
        pool._shutdown = True

"""``chameleon replay``: compile a network from a log's best records, export it, time it.

Three latencies for a local target, on the same number of threads: the tuned build, the untuned
build (TVM's default schedules for the target: plain loops on CPU, dlight on GPU) and PyTorch
eager. Tasks the log has no valid record for keep the default schedule, and are listed.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from chameleon.errors import ChameleonError
from chameleon.logs.database import WORKLOAD_FILE, open_database
from chameleon.logs.metadata import read_run_file

logger = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    log_dir: str
    network: str
    target: str
    library: str
    tuned_tasks: list[str]
    untuned_tasks: list[str]
    tuned_ms: float | None = None
    untuned_ms: float | None = None
    torch_ms: float | None = None
    max_abs_diff: float | None = None
    threads: int | None = None
    compile_s: dict[str, float] = field(default_factory=dict)
    confirmed: bool = False
    """Compiled from ``<log>/confirmed/`` (each task's top records re-measured) instead of the log."""

    def to_dict(self) -> dict:
        return asdict(self)


def time_callable(fn, *, min_total_s: float = 1.0, repeats: int = 5) -> float:
    """Median seconds per call: warm up once, then ``repeats`` timed batches."""
    start = time.perf_counter()
    fn()
    first = max(time.perf_counter() - start, 1e-6)
    number = max(1, int(min_total_s / repeats / first))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def replay(
    log_dir: str | Path,
    *,
    measure: bool = True,
    library_path: str | Path | None = None,
    cuda_code: str = "binary",
) -> ReplayResult:
    """Compile, export (``.so``, cross-compiled for Jetson hosts; ``.tar`` by suffix) and time.

    ``cuda_code="binary"`` embeds kernels compiled here with nvcc; ``"source"`` leaves CUDA source
    for the board to compile at load time (needed for sm_72 and older with CUDA 13).
    """
    import tvm
    from tvm import relax

    from chameleon.hardware.targets import host_cores, host_mcpu, local_cuda_available
    from chameleon.models.importer import load_network
    from chameleon.tuning.confirm import confirmed_dir
    from chameleon.tvm_glue.cross import check_toolchain, export_library
    from chameleon.tvm_glue.pipeline import compile_tuned, tuned_functions

    log_dir = Path(log_dir)
    run = read_run_file(log_dir)
    records_dir = confirmed_dir(log_dir)
    confirmed = (records_dir / WORKLOAD_FILE).exists()
    database = open_database(records_dir if confirmed else log_dir)
    network = load_network(run["model"], batch=run["batch"], image_size=run.get("image_size"))
    target = tvm.target.Target(run["target_json"])
    suffix = Path(library_path).suffix if library_path else ".so"
    check_toolchain(target, link=suffix == ".so", compile_cuda=cuda_code == "binary")  # fail before compiling
    prepack = bool(run.get("prepack", False))
    tuned, untuned = tuned_functions(network.mod, target, database, prepack=prepack)
    if untuned:
        logger.info("no record for %d task(s), default schedule used: %s", len(untuned), ", ".join(untuned))

    start = time.perf_counter()
    ex = compile_tuned(network.mod, target, database, prepack=prepack)
    compile_s = {"tuned": round(time.perf_counter() - start, 2)}
    cpu_local = target.kind.name == "llvm" and run["target_json"].get("mcpu") in (
        None,
        host_mcpu(),
        "haswell",
    )
    gpu_local = target.kind.name == "cuda" and run["target"] == "cuda" and local_cuda_available()
    lib = Path(library_path or log_dir / "deploy" / f"{network.name}_{run['target']}.so")
    lib.parent.mkdir(parents=True, exist_ok=True)
    export_library(ex, lib, target, cuda=cuda_code)
    result = ReplayResult(
        log_dir=str(log_dir),
        network=network.name,
        target=run["target"],
        library=str(lib),
        tuned_tasks=tuned,
        untuned_tasks=untuned,
        compile_s=compile_s,
        confirmed=confirmed,
    )
    if not measure or not (cpu_local or gpu_local):
        if measure:
            logger.info("target %s is not on this machine: exported only, not timed", run["target"])
        return result

    threads = int(run["target_json"].get("num-cores", host_cores()))
    result.threads = threads
    dev = tvm.cuda(0) if gpu_local else tvm.cpu()
    x = tvm.runtime.tensor(network.example_input, dev)

    def timed(vm):  # GPU calls return before the kernels finish: wait for them inside the timing
        return lambda: (vm["main"](x), dev.sync())

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), dev)
    out = _first_output(vm["main"](x))
    result.tuned_ms = time_callable(timed(vm)) * 1e3

    start = time.perf_counter()
    untuned_ex = compile_tuned(network.mod, target, None, prepack=False)
    result.compile_s["untuned"] = round(time.perf_counter() - start, 2)
    untuned_vm = relax.VirtualMachine(untuned_ex, dev)
    result.untuned_ms = time_callable(timed(untuned_vm), min_total_s=0.5, repeats=3) * 1e3

    if network.torch_module is not None:
        result.torch_ms, ref = _time_torch(network, threads, gpu=gpu_local)
        result.max_abs_diff = float(np.max(np.abs(out - ref)))
    return result


def _time_torch(network, threads: int, *, gpu: bool) -> tuple[float, np.ndarray]:
    """PyTorch eager on the same device: milliseconds per batch, and its output."""
    import torch

    torch.set_num_threads(threads)
    device = "cuda" if gpu else "cpu"
    module = network.torch_module.to(device)
    inp = torch.from_numpy(network.example_input).to(device)

    def call():
        y = module(inp)
        if gpu:
            torch.cuda.synchronize()
        return y

    with torch.inference_mode():
        ref = call()
        ref = ref[0] if isinstance(ref, tuple | list) else ref
        ms = time_callable(call) * 1e3
    return ms, ref.cpu().numpy()


def _first_output(value) -> np.ndarray:
    while not hasattr(value, "numpy"):
        try:
            value = value[0]
        except (TypeError, IndexError) as exc:
            raise ChameleonError("the compiled network returned no tensor output") from exc
    return value.numpy()

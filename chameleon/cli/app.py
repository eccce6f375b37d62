"""Typer application: parses flags, calls the library, prints tables."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from chameleon.errors import ChameleonError, UsageError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="RL-guided tensor-program autotuner on TVM."
)
console = Console()
err_console = Console(stderr=True)


def _fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    logging.getLogger("chameleon").setLevel(logging.INFO)
    for noisy in ("chameleon.space", "chameleon.search", "chameleon.simulate.tvm"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    # MetaSchedule writes its full logs to <log-dir>/logs; keep its console quiet.
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.command()
def tune(
    model: str = typer.Option("resnet18", help="Zoo name (see `chameleon models`) or a .onnx / .pt2 file."),
    target: str = typer.Option("llvm", help="Target name (see `chameleon targets`)."),
    trials: int = typer.Option(256, help="Measurement budget for the network (the log's records count)."),
    trials_per_task: int = typer.Option(0, help="Cap on new measurements per task (0: none)."),
    trials_per_round: int = typer.Option(
        0, help="Candidates proposed per round (0: 16, fewer when the budget is short of 16 per task)."
    ),
    strategy: str = typer.Option(
        "chameleon", help="Search strategy, NAME or NAME:field=value,... (see `chameleon strategies`)."
    ),
    seed: int = typer.Option(0),
    log_dir: Path = typer.Option(None, help="Default: tuning_logs/<model>/<target>/."),
    batch: int = typer.Option(1),
    image_size: int = typer.Option(
        0, help="Input height/width; sequence length for bert_mini (0: the model's default)."
    ),
    tasks: list[str] = typer.Option([], "--task", help="Only tasks whose name contains this (repeatable)."),
    prepack: bool = typer.Option(True, help="CPU weight prepacking (layout rewrite)."),
    tracker: str = typer.Option(None, help="RPC tracker HOST:PORT (default: $TVM_TRACKER_HOST/PORT)."),
    key: str = typer.Option(None, help="RPC device key on the tracker."),
    session_timeout: float = typer.Option(60.0, help="RPC session timeout (s)."),
    cooldown: float = typer.Option(0.0, help="Pause between measurements on a device (s)."),
    measure_passes: int = typer.Option(
        1,
        help="Time each round's candidates in N interleaved passes and keep each one's fastest "
        "(for a shared or virtual machine whose load changes under the measurement). Passes after "
        "the first time only candidates within 2x of their task's best; ~0.15 s per candidate and pass "
        "on a CPU.",
    ),
    blueprint: bool = typer.Option(True, help="Use the hardware blueprint (chameleon strategy)."),
    warm_start: list[Path] = typer.Option(
        [],
        help="Logs of earlier runs (other devices, networks or layers) to pre-train the cost models on.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Tune a network's tasks into a log directory (re-run to resume)."""
    from chameleon.cli.progress import ProgressObserver
    from chameleon.tuning.measure import MeasureConfig
    from chameleon.tuning.tune import TuneConfig
    from chameleon.tuning.tune import tune as run_tune

    _setup_logging(verbose)
    config = TuneConfig(
        model=model,
        target=target,
        trials=trials,
        trials_per_task=trials_per_task or None,
        trials_per_round=trials_per_round or None,
        strategy=strategy,
        seed=seed,
        log_dir=log_dir,
        batch=batch,
        image_size=image_size or None,
        tasks=tuple(tasks),
        prepack=None if prepack else False,
        measure=MeasureConfig(
            tracker=tracker,
            key=key,
            session_timeout_s=session_timeout,
            cooldown_s=cooldown,
            passes=measure_passes,
        ),
        blueprint=blueprint,
        warm_start=tuple(str(p) for p in warm_start),
    )
    with ProgressObserver(console) as observer:
        summary = run_tune(config, observer)
    table = Table(
        title=f"tuned {summary.new_trials} new trials in {summary.wall_s:.0f} s -> {summary.log_dir}"
    )
    for col in ("task", "weight", "MFLOP", "best (ms)", "GFLOP/s", "trials"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for t in summary.tasks:
        gf = f"{t.gflops:.1f}" if t.gflops else "-"
        table.add_row(t.name, str(t.weight), f"{t.flop / 1e6:.1f}", _fmt_ms(t.best_s), gf, str(t.trials))
    console.print(table)
    console.print(f"time breakdown (s): {summary.breakdown_s}")
    if summary.search_stats:
        console.print(
            f"blueprint validity rules rejected {summary.rejected_by_blueprint} configurations "
            "before measuring (measurements saved)"
        )
    if summary.estimated_latency_s:
        console.print(f"sum of weight x best kernel latency: {summary.estimated_latency_s * 1e3:.2f} ms")
    console.print(f"next: chameleon replay {summary.log_dir}")


@app.command()
def confirm(
    log_dir: Path = typer.Argument(..., help="A tuning log directory."),
    top: int = typer.Option(4, help="Records per task to re-measure (its best ones)."),
    rounds: int = typer.Option(5, help="Times each is measured, interleaved; the median counts."),
    tracker: str = typer.Option(None, help="RPC tracker HOST:PORT, for a farm target."),
    key: str = typer.Option(None, help="RPC device key on the tracker."),
) -> None:
    """Re-measure each task's best records; `replay` then compiles from the medians (<log>/confirmed/)."""
    from chameleon.tuning.confirm import confirm_log, confirmed_dir
    from chameleon.tuning.measure import MeasureConfig

    _setup_logging(False)
    results = confirm_log(
        log_dir,
        top=top,
        rounds=rounds,
        measure=MeasureConfig(tracker=tracker, key=key),
        on_task=lambda i, n, name: console.print(f"[{i + 1}/{n}] {name}"),
    )
    table = Table(title=f"{len(results)} tasks: top {top} records each, {rounds} re-measurements")
    for col in ("task", "logged best (ms)", "its median (ms)", "new best (ms)", "changed"):
        table.add_column(col, justify="left" if col == "task" else "right")
    changed = 0
    for r in results:
        valid = [t for t in r.confirmed_s if t is not None]
        changed += r.changed
        table.add_row(
            r.task,
            _fmt_ms(r.recorded_s[0]),
            _fmt_ms(r.confirmed_s[0]),
            _fmt_ms(min(valid) if valid else None),
            "yes" if r.changed else "",
        )
    console.print(table)
    console.print(
        f"{changed} of {len(results)} tasks get another record; written to {confirmed_dir(log_dir)}"
    )
    console.print(f"next: chameleon replay {log_dir}")


@app.command()
def replay(
    log_dir: Path = typer.Argument(..., help="A tuning log directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    measure: bool = typer.Option(True, help="Time tuned, untuned and PyTorch builds (local targets)."),
    output: Path = typer.Option(
        None, help="Library path, .so or .tar (default <log-dir>/deploy/<model>_<target>.so)."
    ),
    cuda_code: str = typer.Option(
        "binary", help="CUDA kernels: 'binary' (nvcc here) or 'source' (board compiles)."
    ),
) -> None:
    """Compile the network from the log's best records, export it, and time it."""
    from chameleon.logs.replay import replay as run_replay

    _setup_logging(False)
    if cuda_code not in ("binary", "source"):
        raise UsageError(f"--cuda-code must be 'binary' or 'source', not {cuda_code!r}")
    result = run_replay(log_dir, measure=measure, library_path=output, cuda_code=cuda_code)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    table = Table(title=f"{result.network} on {result.target} ({result.threads or '?'} threads)")
    table.add_column("build")
    table.add_column("latency (ms)", justify="right")
    table.add_column("vs PyTorch", justify="right")
    for name, value in (
        ("tuned", result.tuned_ms),
        ("untuned", result.untuned_ms),
        ("PyTorch eager", result.torch_ms),
    ):
        ratio = f"{value / result.torch_ms:.2f}x" if value and result.torch_ms else "-"
        table.add_row(name, "-" if value is None else f"{value:.2f}", ratio)
    console.print(table)
    console.print(f"library: {result.library}")
    if result.confirmed:
        console.print("records: each task's top records as re-measured by `chameleon confirm`")
    console.print(f"tuned tasks: {len(result.tuned_tasks)}; default schedule: {len(result.untuned_tasks)}")
    for name in result.untuned_tasks:
        console.print(f"  untuned: {name}")
    if result.max_abs_diff is not None:
        console.print(f"max |tuned - PyTorch| = {result.max_abs_diff:.2e}")


@app.command()
def report(
    log_dir: Path = typer.Argument(..., help="A tuning log directory."),
    png: Path = typer.Option(None, help="Plot path (default <log-dir>/report.png)."),
) -> None:
    """Per-task table and a plot of best latency against measurements."""
    from chameleon.logs.report import build_report, plot_report

    rep = build_report(log_dir)
    table = Table(title=f"{rep.network} on {rep.target}: {len(rep.measurements)} measurements")
    for col in ("task", "weight", "MFLOP", "best (ms)", "GFLOP/s", "trials", "errors"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for r in rep.rows:
        gf = f"{r.gflops:.1f}" if r.gflops else "-"
        table.add_row(
            r.name, str(r.weight), f"{r.flop / 1e6:.1f}", _fmt_ms(r.best_s), gf, str(r.trials), str(r.errors)
        )
    console.print(table)
    if rep.estimated_latency_s:
        console.print(f"sum of weight x best kernel latency: {rep.estimated_latency_s * 1e3:.2f} ms")
    path = plot_report(rep, png or Path(log_dir) / "report.png")
    console.print(f"plot: {path}")


@app.command()
def record(
    model: str = typer.Option("resnet18", help="Zoo name or a .onnx / .pt2 file."),
    target: str = typer.Option("llvm"),
    tasks: list[str] = typer.Option(..., "--task", help="Task name substring or index (repeatable)."),
    per_task: int = typer.Option(1000, help="Measurements per task (half random, half evolutionary)."),
    out: Path = typer.Option(None, help="Dataset directory (default experiments/datasets/<model>-<target>)."),
    trials_per_round: int = typer.Option(64),
    seed: int = typer.Option(0),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Measure a broad set of configurations of chosen tasks as a replay dataset (resumable)."""
    from chameleon.tuning.record import default_dataset_dir
    from chameleon.tuning.record import record as run_record
    from chameleon.tuning.tune import TuneConfig

    _setup_logging(verbose)
    base = TuneConfig(
        model=model,
        target=target,
        tasks=tuple(tasks),
        seed=seed,
        trials_per_round=trials_per_round,
        log_dir=out or default_dataset_dir(model, target),
    )
    for summary in run_record(base=base, per_task=per_task, observer=_Reprinting(console)):
        console.print(f"{summary.new_trials} new measurements in {summary.wall_s:.0f} s -> {summary.log_dir}")


class _Reprinting:
    """A progress observer that starts a fresh bar for each phase."""

    def __init__(self, console: Console) -> None:
        from chameleon.cli.progress import ProgressObserver

        self.console = console
        self.current: ProgressObserver | None = None

    def on_start(self, **kwargs) -> None:
        from chameleon.cli.progress import ProgressObserver

        if self.current is not None:
            self.current.__exit__(None, None, None)
        self.current = ProgressObserver(self.console).__enter__()
        self.current.on_start(**kwargs)

    def on_measure(self, batch) -> None:
        self.current.on_measure(batch)


@app.command()
def targets() -> None:
    """List target names."""
    from chameleon.hardware.targets import ALIASES, CPU_VARIANTS, JETSON_TAGS

    table = Table(title="targets")
    table.add_column("name")
    table.add_column("meaning")
    for name, desc in CPU_VARIANTS.items():
        table.add_row(name, desc)
    table.add_row("cuda", "a local NVIDIA GPU (or one on the farm)")
    for name, (tag, desc) in JETSON_TAGS.items():
        table.add_row(name, f"{desc}, TVM tag {tag}, measured through a farm")
    for alias, name in ALIASES.items():
        table.add_row(alias, f"= {name}")
    console.print(table)


@app.command()
def models() -> None:
    """List the model zoo."""
    from chameleon.models.zoo import ZOO_NAMES

    console.print("zoo: " + ", ".join(ZOO_NAMES) + "   (or a path to a .onnx / .pt2 file)")


@app.command()
def strategies() -> None:
    """List search strategies."""
    from chameleon.search.registry import get_entry, strategy_names

    table = Table(title="strategies")
    table.add_column("name")
    table.add_column("what it does")
    settable = []
    for name in strategy_names():
        entry = get_entry(name)
        table.add_row(name, entry.help)
        if entry.config_class is not None:
            settable.append(name)
    console.print(table)
    console.print(
        f"{', '.join(settable)} take settings: --strategy NAME:field=value,... "
        "(fields of ChameleonConfig, e.g. chameleon:representative=centroid,plan_size=128)"
    )


def _mount_subcommands() -> None:
    from chameleon.cli.hardware import app as blueprints_app
    from chameleon.cli.simulate import simulate

    app.command()(simulate)

    app.add_typer(blueprints_app, name="blueprints", help="Hardware blueprints (Glimpse).")
    from chameleon.farm.cli import app as farm_app

    app.add_typer(farm_app, name="farm", help="RPC tuning farm: tracker, servers, status.")


def main() -> None:
    _mount_subcommands()
    try:
        app()
    except ChameleonError as exc:
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        sys.exit(exc.exit_code)

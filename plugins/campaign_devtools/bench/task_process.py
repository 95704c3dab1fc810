"""A night's task in a fresh process, as an Airflow worker runs it, with that process's peak memory.

Memory is a task's budget on a worker, so the bench measures each task the way a worker would run
it: a new Python process (spawned, not forked, so it inherits nothing of the bench's own heap)
imports the engine, loads the definitions, runs one stage function of `campaign_orchestrator.run`
and exits. Its peak resident memory is the kernel's high-water mark of that process (`VmHWM` in
/proc/self/status, reset at exec), read when the stage returns: exact, not sampled. Its wall time
is the stage call alone, measured inside the process, so the interpreter's start and the imports
(the same for every task, paid by Airflow's task runner too) do not blur the ratio to the floor.

One process per task of the DAG: one per source validated (`validate_source` is a mapped task),
one for `publish`, one each for `segments`, `targets` and `render`, one per `deliver` shard.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import traceback
from pathlib import Path
from typing import Any

import campaign_orchestrator.run as pipeline
from campaign_orchestrator.connections import ProviderEndpoint


@dataclasses.dataclass(frozen=True)
class Overrides:
    """What the bench changes in the shipped settings: the provider's budget lifted (our own cost
    is measured), and for render and deliver the caps lifted (every eligible message is kept)."""

    requests_per_hour: int = 10**9
    caps_lifted: bool = False


@dataclasses.dataclass(frozen=True)
class TaskResult:
    detail: dict[str, Any]
    wall_s: float
    peak_rss_mb: float  # the task process's VmHWM


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark in MiB (Linux; psutil elsewhere, current RSS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    import psutil

    return round(float(psutil.Process().memory_info().rss) / 2**20, 1)


def prepared_run(config: pipeline.RunConfig, overrides: Overrides) -> pipeline.Run:
    """A Run with the bench's settings: the budget lifted, the caps too when asked."""
    run = pipeline.Run(config)
    settings = run.definitions.settings
    update: dict[str, Any] = {
        "delivery": settings.delivery.model_copy(update={"requests_per_hour": overrides.requests_per_hour})
    }
    if overrides.caps_lifted:
        update["caps"] = settings.caps.model_copy(update={"per_customer_per_day": 100, "per_channel_per_day": {}})
    run.definitions = dataclasses.replace(run.definitions, settings=settings.model_copy(update=update))
    return run


def _call(run: pipeline.Run, task: str, args: tuple[Any, ...]) -> dict[str, Any]:
    if task == "validate_source":
        return pipeline.validate_source_stage(run, *args)
    if task == "publish":
        return pipeline.publish_stage(run, *args)
    if task == "segments":
        return pipeline.segments_stage(run)
    if task == "targets":
        return pipeline.targets_stage(run)
    if task == "render":
        return pipeline.render_stage(run)
    if task == "deliver":
        shard, base_url, api_key = args
        endpoint = ProviderEndpoint(base_url, api_key)
        return pipeline.deliver_stage(run, shard, lambda _conn_id: endpoint, concurrent_shards=1)
    raise ValueError(f"no such task: {task}")


def _main(pipe: Any, config: pipeline.RunConfig, overrides: Overrides, task: str, args: tuple[Any, ...]) -> None:
    try:
        run = prepared_run(config, overrides)
        run.definitions  # noqa: B018  (loaded before the clock starts, as the task runner does)
        run.engine  # noqa: B018
        t0 = time.perf_counter()
        detail = _call(run, task, args)
        wall = time.perf_counter() - t0
        pipe.send(("ok", TaskResult(detail, round(wall, 3), peak_rss_mb())))
    except BaseException as exc:  # reported to the bench, which raises it there
        pipe.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        pipe.close()


class TaskFailed(RuntimeError):
    """The task process raised, or died without an answer."""


def run_task(config: pipeline.RunConfig, overrides: Overrides, task: str, *args: Any) -> TaskResult:
    """Run one task in a fresh spawned process and return its detail, wall time and peak memory."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_main, args=(send, config, overrides, task, args), name=f"bench-{task}")
    process.start()
    send.close()
    try:
        status, payload = receive.recv()
    except EOFError:
        process.join()
        raise TaskFailed(f"the {task} task process died (exit {process.exitcode}) without an answer") from None
    finally:
        receive.close()
    process.join()
    if status != "ok":
        raise TaskFailed(f"the {task} task failed: {payload}")
    result: TaskResult = payload
    return result


def run_tasks(
    config: pipeline.RunConfig, overrides: Overrides, calls: list[tuple[str, tuple[Any, ...]]]
) -> dict[str, Any]:
    """Tasks one after another (each its own process): their details, summed wall time, and the
    largest task process's peak, named."""
    results = [(task, args, run_task(config, overrides, task, *args)) for task, args in calls]
    worst = max(results, key=lambda r: r[2].peak_rss_mb)
    return {
        "details": [r.detail for _t, _a, r in results],
        "wall_s": round(sum(r.wall_s for _t, _a, r in results), 3),
        "peak_rss_mb": worst[2].peak_rss_mb,
        "peak_task": worst[0] + (f"[{worst[1][0]}]" if worst[1] and not isinstance(worst[1][0], list) else ""),
        "tasks": {
            task + (f"[{args[0]}]" if args and not isinstance(args[0], list) else ""): {
                "wall_s": r.wall_s,
                "peak_rss_mb": r.peak_rss_mb,
            }
            for task, args, r in results
        },
    }

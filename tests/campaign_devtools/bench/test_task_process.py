"""The bench's task processes: each stage as the DAG's tasks, each task a fresh process whose
peak memory is its own, and a task that fails says so instead of giving a figure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from campaign_devtools.bench.harness import run_bench
from campaign_devtools.bench.task_process import Overrides, TaskFailed, peak_rss_mb, run_task
from campaign_orchestrator.run import RunConfig


def test_the_peak_is_the_processes_high_water_mark_and_stays_after_the_memory_is_freed() -> None:
    before = peak_rss_mb()
    block = bytearray(300 * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
    del block
    assert peak_rss_mb() >= before + 250


def test_a_task_that_fails_in_its_process_is_an_error_naming_it(tmp_path: Path) -> None:
    config = RunConfig(
        run_date=dt.date(2026, 11, 22),
        warehouse_url=f"sqlite:///{tmp_path / 'wh.sqlite'}",
        config_dir=tmp_path / "no-marketing-here",
        contracts_dir=tmp_path / "no-contracts-here",
        sources_dir=tmp_path,
        reports_dir=tmp_path / "reports",
    )
    with pytest.raises(TaskFailed, match="the segments task failed"):
        run_task(config, Overrides(), "segments")


def test_every_stage_reports_its_largest_task_process_and_each_task(tmp_path: Path, repo: Path) -> None:
    doc = run_bench(tmp_path / "bench", customers=300, repo=repo)

    stages = doc["stages"]
    tasks = stages["import"]["tasks"]
    assert {"validate_source[customers]", "validate_source[events]", "publish"} <= set(tasks)
    assert sorted(stages["deliver"]["tasks"]) == [f"deliver[{s}]" for s in range(4)]
    for name in ("import", "segments", "targets", "render", "deliver"):
        stage = stages[name]
        assert stage["rows"] > 0 and stage["floor_s"] is not None, name
        peaks = {t: v["peak_rss_mb"] for t, v in stage["tasks"].items()}
        assert stage["peak_rss_mb"] == max(peaks.values()) == peaks[stage["peak_task"]] > 50, name
        assert stage["wall_s"] == pytest.approx(sum(v["wall_s"] for v in stage["tasks"].values()), abs=0.01)
    assert stages["deliver"]["duplicates"] == 0

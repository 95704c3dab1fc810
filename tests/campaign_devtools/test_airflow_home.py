"""The demo's Airflow home works as a real Airflow afterwards: its config names the project's
folders, and each task's part of the `dags test` output is filed where the UI reads logs."""

from __future__ import annotations

import configparser

from campaign_devtools.airflow_home import file_task_logs, write_airflow_cfg

RUN = "manual__2026-11-22T02:00:00+00:00"


def test_the_config_points_airflow_at_the_project_and_leaves_the_examples_out(tmp_path, repo):
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(write_airflow_cfg(tmp_path, repo))
    assert cfg["core"]["dags_folder"] == str(repo / "dags")
    assert cfg["core"]["load_examples"] == "False"
    assert cfg["logging"]["base_log_folder"] == str(tmp_path / "logs")


def test_each_task_attempt_gets_its_own_log_where_the_ui_reads_it(tmp_path):
    log = tmp_path / "dags_test.log"
    log.write_text(
        "\n".join(
            [
                f"x [info] something run_id='{RUN}' ti=...",
                "x [info] [DAG TEST] starting task_id=compute_segments map_index=-1 [dag]",
                "x [info] stage segments ok in 0.16s",
                "x [info] [DAG TEST] end task task_id=compute_segments map_index=-1 [dag]",
                "x [info] [DAG TEST] starting task_id=deliver map_index=2 [dag]",
                "x [error] HTTP 401",
                "x [info] [DAG TEST] end task task_id=deliver map_index=2 [dag]",
                "x [info] between tasks: not in any task's log",
                "x [info] [DAG TEST] starting task_id=deliver map_index=2 [dag]",
                "x [info] shard 2: 10 sent",
                "x [info] [DAG TEST] end task task_id=deliver map_index=2 [dag]",
            ]
        )
    )
    files = file_task_logs(log, tmp_path / "logs")
    base = tmp_path / "logs" / "dag_id=nightly_campaigns" / f"run_id={RUN}"
    assert files == [
        base / "task_id=compute_segments" / "attempt=1.log",
        base / "task_id=deliver" / "map_index=2" / "attempt=1.log",
        base / "task_id=deliver" / "map_index=2" / "attempt=2.log",
    ]
    assert "stage segments ok" in files[0].read_text()
    assert "HTTP 401" in files[1].read_text() and "10 sent" in files[2].read_text()
    assert all("between tasks" not in f.read_text() for f in files)

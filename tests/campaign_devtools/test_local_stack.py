"""docker-compose.yml and the process stack `make stack-test` runs must describe the same deployment."""

from __future__ import annotations

import yaml

from campaign_devtools.local_stack import AIRFLOW_PROCESSES, COMPOSE_MOUNTS, COMPOSE_SERVICES, COMPOSE_VARIABLES


def compose(repo):
    return yaml.safe_load((repo / "docker-compose.yml").read_text())


def test_every_service_the_stack_test_runs_is_in_the_compose_file(repo):
    services = compose(repo)["services"]
    missing = [s for s in COMPOSE_SERVICES if s not in services]
    assert missing == []
    for name, args in AIRFLOW_PROCESSES.items():
        command = services[name]["command"]
        assert (command.split() if isinstance(command, str) else command) == args, name


def test_every_variable_the_stack_test_sets_is_in_the_compose_file(repo):
    common = compose(repo)["x-airflow-common"]["environment"]
    assert [v for v in COMPOSE_VARIABLES if v not in common] == []
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_the_project_folders_are_mounted_and_volumes_declared(repo):
    doc = compose(repo)
    mounts = {m.split(":")[0] for m in doc["x-airflow-common"]["volumes"]}
    assert [f for f in COMPOSE_MOUNTS if f"./{f}" not in mounts] == []
    def bind(mount: str) -> bool:  # a host path: relative, absolute, or from the environment (.env)
        return mount.startswith((".", "/", "${"))

    named = {m.split(":")[0] for m in doc["x-airflow-common"]["volumes"] if not bind(m)}
    named |= {
        v.split(":")[0]
        for s in doc["services"].values()
        for v in s.get("volumes", [])
        if isinstance(v, str) and not bind(v)
    }
    assert named <= set(doc.get("volumes", {})), named - set(doc.get("volumes", {}))


def test_the_stack_test_triggers_the_night_the_schedulers_catch_up_run_does_not_take():
    import datetime as dt

    from campaign_devtools.local_stack import default_run_date, scheduler_catch_up_date

    early = dt.datetime(2026, 12, 2, 1, 30, tzinfo=dt.UTC)  # before 02:00: the scheduler runs yesterday
    late = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)  # after: it runs today
    assert scheduler_catch_up_date(early) == dt.date(2026, 12, 1) and default_run_date(early) == dt.date(2026, 12, 2)
    assert scheduler_catch_up_date(late) == dt.date(2026, 12, 2) and default_run_date(late) == dt.date(2026, 12, 1)

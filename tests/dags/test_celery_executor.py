"""The executor the deployment runs (docker-compose.yml, CeleryExecutor) can be loaded at all.

celery 5.7 removed `celery.backends.database.retry`, which apache-airflow-providers-celery 3.26
imports: the scheduler then dies with a misleading "check the executor key" error. The pin in
requirements.txt keeps a working pair; this test fails if it drifts.
"""

from __future__ import annotations


def test_the_celery_executor_and_its_worker_utilities_import():
    from airflow.providers.celery.executors import celery_executor_utils
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor

    assert CeleryExecutor.__name__ == "CeleryExecutor"
    assert callable(celery_executor_utils.execute_workload)

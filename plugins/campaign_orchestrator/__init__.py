"""Batch campaign orchestrator engine: importable without Airflow, typed, one module per idea."""

__version__ = "0.1.0"

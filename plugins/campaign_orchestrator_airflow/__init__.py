"""The thin Airflow layer: connections in, engine calls out. Only the DAG imports it."""

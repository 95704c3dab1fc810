# The image every Airflow service of docker-compose.yml runs: Airflow 3.3 plus our exact pins.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/campaigns/requirements.txt
RUN pip install --no-cache-dir -r /opt/campaigns/requirements.txt
# dags/, plugins/, sql/, data_contracts/ and marketing/ are mounted at run time (see docker-compose.yml).
ENV CAMPAIGNS_HOME=/opt/airflow \
    PYTHONPATH=/opt/airflow/plugins \
    GX_ANALYTICS_ENABLED=False

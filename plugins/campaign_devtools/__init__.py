"""Development tools, kept out of the product package: sample data (`demo_data`), the
Braze-compatible provider simulator (`provider_sim`), the demo night through Airflow (`demo`), the
benchmark with its floors (`bench`) and the compose topology run as processes (`local_stack`).
The engine never imports this package."""

"""After a real night, the inbox serves what it delivered: the app reads its customer's message,
in the inbox's shape and in Pinpoint's (validated against the schema written from Pinpoint's API
reference), and a display reported through Pinpoint's PutEvents counts against the caps."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import requests
import sqlalchemy as sa

from campaign_devtools.demo_data import generate
from campaign_orchestrator.warehouse.engine import create_warehouse_engine
from campaign_orchestrator.warehouse.tables import engagement_events, inapp_messages
from tests.builders import marketing_copy
from tests.campaign_orchestrator.inbox.conftest import SERVER_KEY, start_inbox
from tests.e2e.conftest import SimProcess

SCHEMA = Path(__file__).resolve().parents[1] / "campaign_orchestrator" / "inbox" / "pinpoint_inappmessages.schema.json"
# Yesterday's night: its in-app messages have started (08:00 local) and not expired (48 h).
NIGHT = dt.date.today() - dt.timedelta(days=1)


@pytest.fixture
def night(repo: Path, tmp_path_factory: pytest.TempPathFactory, sim_process: SimProcess) -> str:
    tmp = tmp_path_factory.mktemp("inbox-night")
    generate(tmp / "export", customers=1500, seed=5, as_of=NIGHT)
    url = f"sqlite:///{tmp / 'wh.sqlite'}"
    command = [sys.executable, "-m", "campaign_orchestrator.cli", "run", "--date", NIGHT.isoformat()]
    command += ["--warehouse", url, "--sources", str(tmp / "export"), "--reports", str(tmp / "reports")]
    # Yesterday's night run today: stale under the shipped max_lateness (0h), so no limit here.
    command += ["--config", str(marketing_copy(repo, tmp / "marketing"))]
    env = {**os.environ, "AIRFLOW_CONN_CAMPAIGNS_PROVIDER": sim_process.connection_uri}
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return url


def test_the_app_reads_last_nights_message_and_pinpoints_shape_validates(night: str, repo: Path, tmp_path: Path):
    engine = create_warehouse_engine(night)
    with engine.connect() as conn:
        m = inapp_messages.c
        row = conn.execute(
            sa.select(m.customer_id, m.campaign_id, m.message_id)
            .where(m.customer_id.is_not(None), m.campaign_id == "gold_inapp_offer")
            .order_by(m.customer_id)
            .limit(1)
        ).one()
    process, url = start_inbox(night, repo / "marketing", tmp_path / "inbox.log")
    try:
        key = {"X-Api-Key": SERVER_KEY}
        feed = requests.get(f"{url}/v1/customers/{row.customer_id}/feed", headers=key, timeout=30).json()
        mine = [i for i in feed["items"] if i["id"] == row.message_id]
        assert mine and mine[0]["campaign_id"] == "gold_inapp_offer" and mine[0]["header"].startswith("A thank-you")
        assert mine[0]["deep_link"] == "shop://offers/members"

        pinpoint = requests.get(
            f"{url}/v1/apps/shop-app/endpoints/{row.customer_id}/inappmessages", headers=key, timeout=30
        )
        assert pinpoint.status_code == 200
        body = pinpoint.json()
        jsonschema.validate(body, json.loads(SCHEMA.read_text()))
        campaign = next(c for c in body["InAppMessageCampaigns"] if c["CampaignId"] == "gold_inapp_offer")
        assert (campaign["Priority"], campaign["DailyCap"], campaign["TotalCap"], campaign["SessionCap"]) == (
            2,
            1,
            3,
            0,
        )
        assert campaign["InAppMessage"]["CustomConfig"] == {"points_multiplier": "2"}

        displayed = {
            "BatchItem": {
                row.customer_id: {
                    "Endpoint": {},
                    "Events": {
                        f"evt-{i}": {
                            "EventType": "_inapp.message_displayed",
                            "Timestamp": dt.datetime.now(dt.UTC).isoformat(),
                            "Attributes": {"campaign_id": "gold_inapp_offer", "treatment_id": campaign["TreatmentId"]},
                            "Session": {"Id": "s-1"},
                        }
                        for i in range(2)
                    },
                }
            }
        }
        put = requests.post(f"{url}/v1/apps/shop-app/events", json=displayed, headers=key, timeout=30)
        assert put.status_code == 200
        answers = put.json()["EventsResponse"]["Results"][row.customer_id]["EventsItemResponse"]
        assert sorted(a["StatusCode"] for a in answers.values()) == [202, 400]  # the daily cap is 1
        again = requests.get(
            f"{url}/v1/apps/shop-app/endpoints/{row.customer_id}/inappmessages", headers=key, timeout=30
        )
        assert "gold_inapp_offer" not in {c["CampaignId"] for c in again.json()["InAppMessageCampaigns"]}
        with engine.connect() as conn:
            events = conn.execute(
                sa.select(engagement_events.c.event, engagement_events.c.campaign_id).where(
                    engagement_events.c.customer_id == row.customer_id
                )
            ).all()
        assert [tuple(e) for e in events] == [("displayed", "gold_inapp_offer")]
    finally:
        process.terminate()
        process.wait(timeout=30)
        engine.dispose()

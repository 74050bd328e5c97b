# Locust load for queue-relay's HTTP ingest: weather reports for Guatemalan municipalities,
# one JSON object a POST, and every answer written down from the request event hook (one
# line per request: id, status, reason) so the test can hold each 202 against the sink.
# Every id is also written when it is sent, as Locust's end cuts off requests in flight
# without an event. Env: REPORTS_PATH (default /reports), REPORTS_LOG (the answers),
# REPORTS_SENT (the ids sent), REPORTS_PHASE (id prefix).
import itertools
import json
import os
from datetime import datetime, timezone

from locust import HttpUser, constant, events, task

MUNICIPALITIES = [
    "Guatemala", "Mixco", "Villa Nueva", "San Miguel Petapa", "Quetzaltenango", "Escuintla",
    "Cobán", "Antigua Guatemala", "Chimaltenango", "Huehuetenango", "Chinautla", "Jalapa",
    "Mazatenango", "Retalhuleu", "Puerto Barrios", "Zacapa", "Totonicapán", "Sololá", "Flores",
    "Chiquimula",
]
CONDITIONS = ["sunny", "cloudy", "rain", "storm", "fog"]

PATH = os.environ.get("REPORTS_PATH", "/reports")
PHASE = os.environ.get("REPORTS_PHASE", "p")
_log = open(os.environ["REPORTS_LOG"], "a", buffering=1, encoding="utf-8")
_sent = open(os.environ["REPORTS_SENT"], "a", buffering=1, encoding="utf-8")
_ids = itertools.count()


@events.request.add_listener
def record_answer(request_type, name, response_time, response_length, response=None, context=None,
                  exception=None, **kwargs):
    # Status 0: no answer at all (connection refused, timeout): neither kept nor refused.
    status = getattr(response, "status_code", 0) or 0
    reason = "" if status == 202 else (getattr(response, "text", "") or str(exception or "")).strip()
    _log.write("%s\t%d\t%s\n" % ((context or {}).get("id", "?"), status, reason.replace("\n", " ")[:200]))


class Reporter(HttpUser):
    wait_time = constant(0)

    @task
    def post_report(self):
        n = next(_ids)
        rid = "%s-%d" % (PHASE, n)
        report = {
            "id": rid,
            "municipality": MUNICIPALITIES[n % len(MUNICIPALITIES)],
            "condition": CONDITIONS[n % len(CONDITIONS)],
            "temperature": round(14.0 + (n % 170) / 10.0, 1),
            "humidity": 40 + n % 55,
            "reported_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        _sent.write(rid + "\n")
        # A 503 is an answer the test expects in one phase: not a Locust failure to retry.
        with self.client.post(PATH, data=json.dumps(report), headers={"Content-Type": "application/json"},
                              name=PATH, context={"id": rid}, catch_response=True) as r:
            r.success()

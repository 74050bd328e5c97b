"""weather-tweets load over the REST front (profile "rest"): a tweet per request.

Shaped as sensor-push's weather-tweets reports (municipality, temperature, humidity,
weather), plus an id, so that two alike tweets are two reports (a report without one is
named by its content, and the consumers count a name once), and observed_at, so that
queue-relay --timestamp-field can time it end to end.

The same file drives the weather-tweets scenario and queue-relay's Locust test, which need
to know what was sent and how each POST was answered. The environment tunes it (every
variable is optional; unset, it behaves as the compose stack's Locust):

  TWEETS_PATH     the path POSTed to (default /tweets)
  TWEETS_RATE     tweets a second per user (default 10; 0: no wait between them)
  TWEETS_COUNT    send this many tweets in all, then stop Locust (default: until -t ends it)
  TWEETS_PREFIX   ids are PREFIX-N, N from 0, instead of random UUIDs
  TWEETS_SENT     append each id to this file before its POST (a POST cut off by Locust's
                  end gets no answer, and is in this file only)
  TWEETS_ANSWERS  append one JSON line per answer: {"report": {...}, "status": S,
                  "reason": "..."}; status 0 is no answer at all (refused, timed out)

With TWEETS_COUNT, each user stops once the count is reached, and the last one to stop
ends the run: no POST is in flight when Locust exits, so every tweet sent has its answer.
"""
import itertools
import json
import os
import random
import uuid
from datetime import datetime, timezone

import gevent
from locust import HttpUser, constant, constant_throughput, events, task
from locust.exception import StopUser

MUNICIPALITIES = ["Guatemala", "Mixco", "Villa Nueva", "Chinautla", "San Miguel Petapa"]
CONDITIONS = ["Clear sky", "Partly cloudy", "Overcast", "Rain: slight"]

PATH = os.environ.get("TWEETS_PATH", "/tweets")
RATE = float(os.environ.get("TWEETS_RATE", "10"))
COUNT = int(os.environ["TWEETS_COUNT"]) if os.environ.get("TWEETS_COUNT") else None
PREFIX = os.environ.get("TWEETS_PREFIX")


def _append(variable):
    path = os.environ.get(variable)
    return open(path, "a", buffering=1, encoding="utf-8") if path else None


_sent = _append("TWEETS_SENT")
_answers = _append("TWEETS_ANSWERS")
_numbers = itertools.count()
_stopped = itertools.count(1)


@events.request.add_listener
def record_answer(request_type, name, response_time, response_length, response=None, context=None,
                  exception=None, **kwargs):
    if _answers is None or not context or "report" not in context:
        return
    status = getattr(response, "status_code", 0) or 0
    reason = "" if status == 202 else (getattr(response, "text", "") or str(exception or "")).strip()
    _answers.write(json.dumps({"report": context["report"], "status": status, "reason": reason[:200]},
                              ensure_ascii=False) + "\n")


class Tweeter(HttpUser):
    wait_time = constant_throughput(RATE) if RATE > 0 else constant(0)

    def _stop(self):
        # The last user out ends the run, once no other can have a POST in flight.
        if next(_stopped) == self.environment.runner.target_user_count:
            gevent.spawn(self.environment.runner.quit)
        raise StopUser()

    @task
    def tweet(self):
        n = next(_numbers)
        if COUNT is not None and n >= COUNT:
            self._stop()
        now = datetime.now(timezone.utc)
        report = {
            "id": "%s-%d" % (PREFIX, n) if PREFIX else str(uuid.uuid4()),
            "municipality": random.choice(MUNICIPALITIES),
            "temperature": round(random.uniform(12, 30), 1),
            "humidity": random.randint(40, 95),
            "weather": random.choice(CONDITIONS),
            "observed_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if _sent is not None:
            _sent.write(report["id"] + "\n")
        # Every answer is the test's or the scenario's to judge (a 503 is expected in some):
        # none is a Locust failure.
        with self.client.post(PATH, data=json.dumps(report), headers={"Content-Type": "application/json"},
                              name=PATH, context={"report": report}, catch_response=True) as r:
            r.success()

"""weather-tweets load over the REST front (profile "rest"): a tweet per request.

Shaped as sensor-push's weather-tweets reports (municipality, temperature, humidity,
weather), plus an id, so that two alike tweets are two reports (a report without one is
named by its content, and the consumers count a name once), and observed_at, so that
queue-relay --timestamp-field can time it end to end.
"""
import random
import uuid
from datetime import datetime, timezone

from locust import HttpUser, constant_throughput, task

MUNICIPALITIES = ["Guatemala", "Mixco", "Villa Nueva", "Chinautla", "San Miguel Petapa"]
CONDITIONS = ["Clear sky", "Partly cloudy", "Overcast", "Rain: slight"]


class Tweeter(HttpUser):
    wait_time = constant_throughput(10)

    @task
    def tweet(self):
        now = datetime.now(timezone.utc)
        self.client.post("/tweets", json={
            "id": str(uuid.uuid4()),
            "municipality": random.choice(MUNICIPALITIES),
            "temperature": round(random.uniform(12, 30), 1),
            "humidity": random.randint(40, 95),
            "weather": random.choice(CONDITIONS),
            "observed_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        })

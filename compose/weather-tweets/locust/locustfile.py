"""weather-tweets load over the REST front (profile "rest"): a tweet per request."""
import random

from locust import HttpUser, constant_throughput, task

MUNICIPALITIES = ["Guatemala", "Mixco", "Villa Nueva", "Chinautla", "San Miguel Petapa"]


class Tweeter(HttpUser):
    wait_time = constant_throughput(10)

    @task
    def tweet(self):
        self.client.post("/tweets", json={
            "municipality": random.choice(MUNICIPALITIES),
            "temperature": round(random.uniform(12, 30), 1),
            "humidity": random.randint(40, 95),
            "condition": random.choice(["clear", "cloudy", "rain"]),
        })

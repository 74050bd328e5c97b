"""bookstore load: browse the catalogue, look at a book, sometimes buy it."""
import random

from locust import HttpUser, between, task


class Shopper(HttpUser):
    wait_time = between(0.5, 2)

    @task(10)
    def browse(self):
        self.client.get("/books", verify=False)

    @task(5)
    def book(self):
        self.client.get(f"/books/{random.randint(1, 100)}", name="/books/[id]", verify=False)

    @task(1)
    def buy(self):
        self.client.post("/orders", json={"book": random.randint(1, 100), "quantity": 1}, verify=False)

"""Webhooks through the official SDK: the `webhook=` argument of runs.wait / runs.stream /
runs.create and crons, received by a real HTTP server on 127.0.0.1.

Both servers run with loopback webhooks allowed (the reference through its langgraph.json,
cronhook through tests/fixtures/sdk-cronhook.toml); nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import AGENT_ID, GRAPH_ID, assert_iso_utc, on_reference

#: The webhook body keys LangGraph sends for a successful run.
LANGGRAPH_BODY_KEYS = {
    "run_id",
    "thread_id",
    "assistant_id",
    "metadata",
    "status",
    "kwargs",
    "multitask_strategy",
    "created_at",
    "updated_at",
    "run_started_at",
    "run_ended_at",
    "webhook_sent_at",
    "values",
}
WAIT_S = 15.0


class Receiver:
    """Records each POST (path, headers, parsed body); answers 200."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(body),
                        }
                    )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, predicate, timeout: float = WAIT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for request in self.requests:
                    if predicate(request):
                        return request
            time.sleep(0.02)
        pytest.fail(f"no matching webhook within {timeout} s; got {self.requests!r}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def by_run(run_id: str):
    return lambda request: request["body"].get("run_id") == run_id


def test_wait_on_thread_posts_the_run_with_its_values(client, make_thread, receiver, tag):
    thread = make_thread()
    hook = receiver.url("/hook?token=s3cret")
    values = client.runs.wait(
        thread["thread_id"],
        GRAPH_ID,
        input={"messages": [{"role": "user", "content": "Hello!"}]},
        metadata={"suite_tag": tag},
        webhook=hook,
    )
    runs = client.runs.list(thread["thread_id"])
    assert len(runs) == 1
    run_id = runs[0]["run_id"]
    request = receiver.wait_for(by_run(run_id))
    assert request["path"] == "/hook?token=s3cret"
    assert request["headers"]["content-type"] == "application/json"
    body = request["body"]
    assert LANGGRAPH_BODY_KEYS <= set(body), sorted(LANGGRAPH_BODY_KEYS - set(body))
    assert "error" not in body
    assert body["status"] == "success"
    assert body["thread_id"] == thread["thread_id"]
    assert body["assistant_id"] == AGENT_ID
    assert body["values"] == values
    assert body["kwargs"]["input"] == {"messages": [{"role": "user", "content": "Hello!"}]}
    assert body["kwargs"]["webhook"] == hook
    assert body["metadata"]["suite_tag"] == tag
    for key in ("created_at", "updated_at", "run_started_at", "run_ended_at", "webhook_sent_at"):
        assert_iso_utc(body[key])
    assert body["run_started_at"] <= body["run_ended_at"] <= body["webhook_sent_at"]


def test_stream_and_create_call_their_webhooks(client, make_thread, receiver):
    thread = make_thread()
    parts = list(
        client.runs.stream(
            thread["thread_id"],
            GRAPH_ID,
            input={"messages": [{"role": "user", "content": "streamed"}]},
            stream_mode=["values", "updates"],
            webhook=receiver.url("/stream"),
        )
    )
    run_id = parts[0].data["run_id"]
    streamed = receiver.wait_for(by_run(run_id))
    assert streamed["path"] == "/stream"
    assert streamed["body"]["status"] == "success"

    run = client.runs.create(
        thread["thread_id"],
        GRAPH_ID,
        input={"messages": [{"role": "user", "content": "created"}]},
        webhook=receiver.url("/create"),
    )
    created = receiver.wait_for(by_run(run["run_id"]))
    assert created["path"] == "/create"
    assert created["body"]["values"]["messages"][-1]["content"] == "created"


def test_stateless_wait_posts_the_run(client, receiver):
    client.runs.wait(
        None,
        GRAPH_ID,
        input={"messages": [{"role": "user", "content": "stateless"}]},
        webhook=receiver.url("/stateless"),
    )
    request = receiver.wait_for(lambda r: r["path"] == "/stateless")
    assert request["body"]["status"] == "success"
    assert request["body"]["kwargs"]["input"]["messages"][0]["content"] == "stateless"


def test_cron_runs_call_the_cron_webhook(client, make_thread, receiver, tag, raw):
    thread = make_thread()
    # Every-second schedules fire at once on cronhook; the reference polls every ~5 s.
    cron = client.crons.create_for_thread(
        thread["thread_id"],
        GRAPH_ID,
        schedule="* * * * * *" if not on_reference() else "* * * * *",
        input={"messages": [{"role": "user", "content": "from a cron"}]},
        webhook=receiver.url("/cron"),
        metadata={"suite_tag": tag},
    )
    try:
        request = receiver.wait_for(lambda r: r["path"] == "/cron", timeout=75.0)
    finally:
        raw.delete(f"/runs/crons/{cron['cron_id']}")
    body = request["body"]
    assert body["thread_id"] == thread["thread_id"]
    assert body["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]

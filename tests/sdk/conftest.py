"""Shared fixtures for the SDK conformance suite.

The suite drives a LangGraph-compatible server with the official Python SDK
(`langgraph-sdk`, sync client) and, for error cases, with raw httpx against the
same URL. It runs unchanged against the real reference server (`langgraph dev`,
see scripts/reference-server.sh) and against cronhook.

Environment:
  LANGGRAPH_URL  base URL of the server under test (required), e.g. http://127.0.0.1:8123
  SDK_TARGET     `reference` or `cronhook` (default `cronhook`). Tests marked
                 `reference_bug` document a reference-server bug: they assert
                 cronhook's intended behaviour and are xfail(strict=True) on
                 the reference, so a fixed reference makes them fail loudly.

Tests isolate themselves with a unique metadata tag and delete what they create.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

# ---------------------------------------------------------------------------
# Constants observed on the reference server.

#: Namespace of assistant ids for graphs: NOT the RFC 4122 URL namespace (…b811…).
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
GRAPH_ID = "agent"
AGENT_ID = str(uuid.uuid5(ASSISTANT_NAMESPACE, GRAPH_ID))

CRON_KEYS = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "end_time",
    "schedule",
    "timezone",
    "payload",
    "next_run_date",
    "metadata",
    "enabled",
    "on_run_completed",
    "created_at",
    "updated_at",
}
# cronhook's additions to the Cron object: misfire policy, last run, pause, scheduling
# controls.
if os.environ.get("SDK_TARGET", "cronhook").strip() in ("", "cronhook"):
    CRON_KEYS |= {
        "misfire_policy",
        "catchup_window_seconds",
        "last_run_status",
        "last_run_at",
        "consecutive_failures",
        "pause_note",
        "pause_after_failures",
        "overlap",
        "jitter_seconds",
        "remaining_runs",
        "paused_until",
        "dst_repeat",
        "dst_gap",
    }
THREAD_KEYS = {
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "status",
    "config",
    "values",
}
ASSISTANT_KEYS = {
    "assistant_id",
    "graph_id",
    "config",
    "context",
    "metadata",
    "name",
    "created_at",
    "updated_at",
    "version",
    "description",
}

#: Pause after each create so that sequential creates (and a create followed by an update)
#: get distinct timestamps even on a server that stores milliseconds; order tests rely on it.
CREATE_GAP_S = 0.002

#: A schedule that never fires while the suite runs (midnight UTC on 1 January).
QUIET_SCHEDULE = "0 0 1 1 *"
NIL_UUID = "00000000-0000-0000-0000-000000000000"

_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$")

# ---------------------------------------------------------------------------
# Configuration.

_TARGETS = ("reference", "cronhook")


def _url() -> str:
    return os.environ.get("LANGGRAPH_URL", "").strip().rstrip("/")


def target() -> str:
    return os.environ.get("SDK_TARGET", "cronhook").strip() or "cronhook"


def on_reference() -> bool:
    return target() == "reference"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reference_bug(reason): asserts cronhook's intended behaviour where the "
        "reference server is buggy; xfail(strict=True) when SDK_TARGET=reference",
    )
    if not _url():
        raise pytest.UsageError(
            "LANGGRAPH_URL is not set: export the base URL of the server under test, "
            "e.g. LANGGRAPH_URL=http://127.0.0.1:8123 (start the reference with "
            "scripts/reference-server.sh PORT)"
        )
    if target() not in _TARGETS:
        raise pytest.UsageError(
            f"SDK_TARGET={target()!r}: expected one of {', '.join(_TARGETS)}"
        )


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"LANGGRAPH_URL={_url()}  SDK_TARGET={target()}"]


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not on_reference():
        return
    for item in items:
        marker = item.get_closest_marker("reference_bug")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            item.add_marker(
                pytest.mark.xfail(strict=True, reason=f"reference bug: {reason}")
            )


@pytest.fixture(scope="session", autouse=True)
def _server_answers() -> None:
    """Fail the whole run at once, clearly, when nothing answers at LANGGRAPH_URL."""
    try:
        r = httpx.get(f"{_url()}/ok", timeout=10)
    except httpx.HTTPError as exc:
        pytest.exit(f"no server at LANGGRAPH_URL={_url()}: {exc!r}", returncode=3)
    if r.status_code != 200:
        pytest.exit(
            f"GET {_url()}/ok answered {r.status_code}: {r.text[:200]}", returncode=3
        )


# ---------------------------------------------------------------------------
# Clients.


@pytest.fixture(scope="session")
def url() -> str:
    return _url()


@pytest.fixture(scope="session")
def client(url: str):
    c = get_sync_client(url=url, api_key=None)
    yield c
    c.http.client.close()


class Raw:
    """Raw HTTP against the server under test, one connection per request.

    A fresh connection each time: the reference answers its 500s with a plain-text
    traceback and then resets a kept-alive connection.
    """

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with httpx.Client(base_url=self.base, timeout=30) as c:
            return c.request(method, path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)


@pytest.fixture(scope="session")
def raw(url: str) -> Raw:
    return Raw(url)


# ---------------------------------------------------------------------------
# Per-test data.


@pytest.fixture
def tag() -> str:
    """A value unique to this test, put in metadata to find only what it created."""
    return uuid.uuid4().hex


@pytest.fixture
def make_thread(client, raw: Raw, tag: str) -> Iterator[Callable[..., dict]]:
    created: list[str] = []

    def make(**kwargs: Any) -> dict:
        kwargs.setdefault("metadata", {"suite_tag": tag})
        thread = client.threads.create(**kwargs)
        created.append(thread["thread_id"])
        time.sleep(CREATE_GAP_S)
        return thread

    yield make
    for thread_id in created:
        raw.delete(f"/threads/{thread_id}")


@pytest.fixture
def track_cron(raw: Raw) -> Iterator[Callable[[str], str]]:
    """Register a cron id (or a raw-created one) for deletion after the test."""
    created: list[str] = []

    def track(cron_id: str) -> str:
        created.append(cron_id)
        return cron_id

    yield track
    for cron_id in created:
        raw.delete(f"/runs/crons/{cron_id}")


@pytest.fixture
def make_cron(client, tag: str, track_cron) -> Callable[..., dict]:
    """Stateless cron through the SDK; defaults: graph name 'agent', a quiet schedule,
    metadata {"suite_tag": tag}."""

    def make(**kwargs: Any) -> dict:
        kwargs.setdefault("assistant_id", GRAPH_ID)
        kwargs.setdefault("schedule", QUIET_SCHEDULE)
        kwargs.setdefault("metadata", {"suite_tag": tag})
        cron = client.crons.create(**kwargs)
        track_cron(cron["cron_id"])
        time.sleep(CREATE_GAP_S)
        return cron

    return make


@pytest.fixture
def make_thread_cron(client, tag: str, track_cron) -> Callable[..., dict]:
    def make(thread_id: str, **kwargs: Any) -> dict:
        kwargs.setdefault("assistant_id", GRAPH_ID)
        kwargs.setdefault("schedule", QUIET_SCHEDULE)
        kwargs.setdefault("metadata", {"suite_tag": tag})
        cron = client.crons.create_for_thread(thread_id, **kwargs)
        track_cron(cron["cron_id"])
        time.sleep(CREATE_GAP_S)
        return cron

    return make


# ---------------------------------------------------------------------------
# Assertions.


def assert_iso_utc(value: Any) -> datetime:
    """An ISO-8601 timestamp in UTC written with `+00:00`; returns it parsed."""
    assert isinstance(value, str), f"expected an ISO timestamp string, got {value!r}"
    assert _ISO_UTC.match(value), f"not ISO-8601 with +00:00: {value!r}"
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timezone.utc.utcoffset(None)
    return parsed


def assert_uuid(value: Any) -> uuid.UUID:
    assert isinstance(value, str), f"expected a UUID string, got {value!r}"
    parsed = uuid.UUID(value)
    assert str(parsed) == value, f"UUID not in canonical lower-case form: {value!r}"
    return parsed


def assert_error(response: httpx.Response, status: int, detail: str | None = None) -> str:
    """`response` has `status`, a JSON body and a string `detail`; returns detail.

    With `detail`, the detail must contain it.
    """
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text[:500]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.headers.get("content-type")
    )
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("detail"), str), body
    if detail is not None:
        assert detail in body["detail"], body["detail"]
    return body["detail"]


def sdk_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> httpx.Response:
    """Call an SDK method that must fail; return the HTTP response of its error.

    The SDK raises subclasses of httpx.HTTPStatusError.
    """
    with pytest.raises(httpx.HTTPStatusError) as info:
        fn(*args, **kwargs)
    return info.value.response

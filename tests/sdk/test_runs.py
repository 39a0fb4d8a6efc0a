"""client.runs: create, create_batch, stream, wait, join, join_stream, list, get, cancel,
cancel_many, delete, on threads and stateless (thread_id=None), and the four multitask
strategies.

The server runs the fixture graph `agent` (tests/fixtures/reference_graph/graph.py): one node
`echo` appends `{"role": "assistant", "content": <last user content>}` to `messages`
(operator.add reducer). A run is kept `pending` with `after_seconds`: the echo graph is too
fast to observe a `running` run.

Every wait is bounded: runs are polled with `wait_terminal` (runs.get until a terminal status,
at most POLL_TIMEOUT_S), and blocking SDK calls (stream, wait, join, join_stream) run under
`bounded`, so a broken server fails the test instead of hanging it.

`runs.cancel_many(status=...)` cancels matching runs on *every* thread of the server: the
suite runs tests one at a time, so only this test's runs are pending then.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError

from conftest import (
    on_reference,
    AGENT_ID,
    GRAPH_ID,
    NIL_UUID,
    assert_error,
    assert_iso_utc,
    assert_uuid,
    sdk_error,
)

RUN_KEYS = {
    "run_id",
    "thread_id",
    "assistant_id",
    "metadata",
    "status",
    "kwargs",
    "multitask_strategy",
    "created_at",
    "updated_at",
    "langsmith_session_name",
}
KWARGS_KEYS = {
    "input",
    "command",
    "config",
    "context",
    "stream_mode",
    "interrupt_before",
    "interrupt_after",
    "webhook",
    "feedback_keys",
    "temporary",
    "subgraphs",
    "resumable",
    "checkpoint_during",
    "durability",
}
RUN_STATUSES = {"pending", "running", "error", "success", "timeout", "interrupted"}
TERMINAL_STATUSES = {"error", "success", "timeout", "interrupted"}
MULTITASK_STRATEGIES = {"reject", "rollback", "interrupt", "enqueue"}
RUN_SELECT_FIELDS = sorted(RUN_KEYS)

#: Upper bound for a run to reach a terminal status (after_seconds included).
POLL_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.1
#: Upper bound for one blocking SDK call (stream, wait, join, join_stream).
BLOCKING_TIMEOUT_S = 20.0
#: after_seconds that keeps a run pending while the test makes a few more requests.
HOLD_S = 5

BUSY_DETAIL = (
    "Thread is already running a task. Wait for it to finish or choose a different "
    "multitask strategy."
)
NO_RUNS_DETAIL = "No runs found to cancel."
NOT_CANCELABLE_DETAIL = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, "
    "and the runs haven't been deleted or completed."
)
NOT_FOUND_DETAIL = "Thread or assistant not found."
BOTH_CONTEXT_DETAIL = "Cannot specify both configurable and context."

# ---------------------------------------------------------------------------
# Helpers.


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def reply(text: str) -> dict:
    """The message the echo graph appends for `user(text)`."""
    return {"role": "assistant", "content": text}


def said(text: str) -> dict:
    """Run input: one user message."""
    return {"messages": [user(text)]}


def conversation(*texts: str) -> dict:
    """Thread values after one echo run per text, in order."""
    messages: list[dict] = []
    for text in texts:
        messages += [user(text), reply(text)]
    return {"messages": messages}


def bounded(fn: Callable[..., Any], *args: Any, timeout: float = BLOCKING_TIMEOUT_S, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, failing the test if it has not returned after `timeout` s.

    The call runs in a daemon thread: a server that keeps a stream open forever (heartbeats
    included) leaves that thread behind instead of hanging the suite.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        pytest.fail(f"{getattr(fn, '__qualname__', fn)} did not return within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def collect(stream: Callable[[], Iterator[Any]]) -> list[tuple[str, Any]]:
    """Consume an SDK stream (bounded); returns [(event, data)]."""
    return [(p.event, p.data) for p in bounded(lambda: list(stream()))]


def wait_terminal(client, thread_id: str, run_id: str, timeout: float = POLL_TIMEOUT_S) -> dict:
    """Poll runs.get until the run has a terminal status; returns the run."""
    deadline = time.monotonic() + timeout
    while True:
        run = client.runs.get(thread_id, run_id)
        if run["status"] in TERMINAL_STATUSES:
            return run
        if time.monotonic() >= deadline:
            pytest.fail(f"run {run_id} still {run['status']!r} after {timeout} s")
        time.sleep(POLL_INTERVAL_S)


def wait_gone(raw, path: str, timeout: float = POLL_TIMEOUT_S) -> httpx.Response:
    """Poll GET `path` until it answers 404; returns that response."""
    deadline = time.monotonic() + timeout
    while True:
        r = raw.get(path)
        if r.status_code == 404:
            return r
        assert r.status_code == 200, r.text
        if time.monotonic() >= deadline:
            pytest.fail(f"GET {path} still answers {r.status_code} after {timeout} s")
        time.sleep(POLL_INTERVAL_S)


def assert_run(run: dict, *, thread_id: str | None = None, status: str | None = None) -> None:
    """The Run object: key set and types."""
    # cronhook adds cron_id and scheduled_for (null unless a cron fired the run).
    extra = set() if on_reference() else {"cron_id", "scheduled_for"}
    assert set(run) == RUN_KEYS | extra, sorted(run)
    if extra:
        assert run["cron_id"] is None and run["scheduled_for"] is None
    assert_uuid(run["run_id"])
    assert_uuid(run["thread_id"])
    if thread_id is not None:
        assert run["thread_id"] == thread_id
    assert run["assistant_id"] == AGENT_ID
    assert run["status"] in RUN_STATUSES
    if status is not None:
        assert run["status"] == status
    assert run["multitask_strategy"] in MULTITASK_STRATEGIES
    assert isinstance(run["metadata"], dict)
    assert isinstance(run["kwargs"], dict)
    assert set(run["kwargs"]) == KWARGS_KEYS, sorted(run["kwargs"])
    assert_iso_utc(run["created_at"])
    assert_iso_utc(run["updated_at"])
    assert run["langsmith_session_name"] is None


def parse_sse(body: bytes) -> list[dict[str, str]]:
    """Split an SSE body into its blocks (dict field -> value), checking CRLF framing.

    Comment-only blocks (`: heartbeat`) are dropped.
    """
    text = body.decode()
    assert text.endswith("\r\n\r\n"), repr(text[-40:])
    assert "\n" not in text.replace("\r\n", ""), "every SSE line must end with \\r\\n"
    assert "\r" not in text.replace("\r\n", ""), "every SSE line must end with \\r\\n"
    blocks = []
    for block in text[: -len("\r\n\r\n")].split("\r\n\r\n"):
        lines = [line for line in block.split("\r\n") if not line.startswith(":")]
        if not lines:
            continue
        fields = {}
        for line in lines:
            name, sep, value = line.partition(": ")
            assert sep, f"malformed SSE line {line!r}"
            assert name not in fields, f"repeated field in {block!r}"
            fields[name] = value
        blocks.append(fields)
    return blocks


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    return [(b["event"], json.loads(b["data"])) for b in parse_sse(body)]


def echo_stream(run_id: str, text: str, before: list[dict] | None = None) -> list[tuple[str, Any]]:
    """The stream of one echo run with stream_mode ["values", "updates"]."""
    before = before or []
    return [
        ("metadata", {"run_id": run_id, "attempt": 1}),
        ("values", {"messages": [*before, user(text)]}),
        ("updates", {"echo": {"messages": [reply(text)]}}),
        ("values", {"messages": [*before, user(text), reply(text)]}),
    ]


def run_id_of(events: list[tuple[str, Any]]) -> str:
    assert events and events[0][0] == "metadata", events
    return events[0][1]["run_id"]


# ---------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def client(url: str):
    """The SDK client with a short read timeout (the SDK default is 300 s)."""
    c = get_sync_client(url=url, api_key=None, timeout=httpx.Timeout(30.0, connect=5.0))
    yield c
    c.http.client.close()


@pytest.fixture
def track_thread(raw) -> Iterator[Callable[[str], str]]:
    """Delete, after the test, threads the server created for a run."""
    created: list[str] = []

    def track(thread_id: str) -> str:
        created.append(thread_id)
        return thread_id

    yield track
    for thread_id in created:
        raw.delete(f"/threads/{thread_id}")


@pytest.fixture
def thread_id(make_thread) -> str:
    return make_thread()["thread_id"]


def hold(client, thread_id: str, text: str = "held", **kwargs: Any) -> dict:
    """A run kept pending for HOLD_S seconds: it makes its thread busy."""
    kwargs.setdefault("after_seconds", HOLD_S)
    return client.runs.create(thread_id, GRAPH_ID, input=said(text), **kwargs)


# ===================================================================== create


def test_create_on_thread_shape_and_kwargs(client, make_thread, tag):
    thread = make_thread()
    tid = thread["thread_id"]
    run = client.runs.create(tid, GRAPH_ID, input=said("hi"), metadata={"m": 1})
    assert_run(run, thread_id=tid, status="pending")
    assert run["multitask_strategy"] == "enqueue"
    # Run metadata: the assistant's, then the thread's (which the run stamps with graph_id and
    # assistant_id), then the request's.
    assert run["metadata"] == {
        "created_by": "system",
        "suite_tag": tag,
        "graph_id": GRAPH_ID,
        "assistant_id": AGENT_ID,
        "m": 1,
    }
    created = assert_iso_utc(run["created_at"])
    assert timedelta(0) <= abs(assert_iso_utc(run["updated_at"]) - created) < timedelta(seconds=1)

    kwargs = run["kwargs"]
    assert kwargs["input"] == said("hi")
    assert kwargs["command"] is None
    assert kwargs["context"] == {}
    assert kwargs["stream_mode"] == ["values"]  # the SDK sends "values"; stored as a list
    assert kwargs["interrupt_before"] is None
    assert kwargs["interrupt_after"] is None
    assert kwargs["webhook"] is None
    assert kwargs["feedback_keys"] is None
    assert kwargs["temporary"] is False
    assert kwargs["subgraphs"] is False
    assert kwargs["resumable"] is False
    assert kwargs["checkpoint_during"] is True
    assert kwargs["durability"] == "async"
    config = kwargs["config"]
    assert set(config) == {"configurable", "metadata"}
    assert config["metadata"] == run["metadata"]
    configurable = config["configurable"]
    assert {k: configurable.get(k) for k in ("run_id", "thread_id", "graph_id", "assistant_id")} == {
        "run_id": run["run_id"],
        "thread_id": tid,
        "graph_id": GRAPH_ID,
        "assistant_id": AGENT_ID,
    }

    done = wait_terminal(client, tid, run["run_id"])
    assert_run(done, thread_id=tid, status="success")
    assert done["created_at"] == run["created_at"]
    assert assert_iso_utc(done["updated_at"]) >= assert_iso_utc(run["updated_at"])
    assert client.threads.get(tid)["metadata"] == {
        "suite_tag": tag,
        "graph_id": GRAPH_ID,
        "assistant_id": AGENT_ID,
    }


def test_create_content_location(raw, thread_id, track_thread):
    r = raw.post(f"/threads/{thread_id}/runs", json={"assistant_id": GRAPH_ID, "input": said("x")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    run = r.json()
    assert r.headers["content-location"] == f"/threads/{thread_id}/runs/{run['run_id']}"

    r = raw.post("/runs", json={"assistant_id": GRAPH_ID, "input": said("x"), "on_completion": "keep"})
    assert r.status_code == 200, r.text
    run = r.json()
    track_thread(run["thread_id"])
    assert r.headers["content-location"] == f"/runs/{run['run_id']}"


def test_create_marks_the_thread_busy_until_done(client, thread_id):
    run = hold(client, thread_id, after_seconds=2)
    assert client.threads.get(thread_id)["status"] == "busy"
    assert wait_terminal(client, thread_id, run["run_id"])["status"] == "success"
    thread = client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == conversation("held")


def test_create_stateless_uses_a_temporary_thread(client, raw, tag):
    run = client.runs.create(None, GRAPH_ID, input=said("s"), metadata={"suite_tag": tag})
    assert_run(run, status="pending")
    assert run["kwargs"]["temporary"] is True
    assert run["multitask_strategy"] == "enqueue"
    # No graph_id here: the temporary thread did not exist when the metadata was merged.
    assert run["metadata"] == {"created_by": "system", "suite_tag": tag, "assistant_id": AGENT_ID}
    assert run["kwargs"]["config"]["configurable"]["thread_id"] == run["thread_id"]
    # The thread is deleted once the run is done.
    r = wait_gone(raw, f"/threads/{run['thread_id']}")
    assert_error(r, 404, f"Thread with ID {run['thread_id']} not found")


def test_create_stateless_on_completion_keep(client, track_thread, tag):
    run = client.runs.create(None, GRAPH_ID, input=said("k"), metadata={"suite_tag": tag}, on_completion="keep")
    tid = track_thread(run["thread_id"])
    assert run["kwargs"]["temporary"] is False
    done = wait_terminal(client, tid, run["run_id"])
    assert done["status"] == "success"
    thread = client.threads.get(tid)
    assert thread["metadata"] == {"graph_id": GRAPH_ID, "assistant_id": AGENT_ID, "suite_tag": tag}
    assert thread["values"] == conversation("k")
    assert thread["status"] == "idle"
    assert [r["run_id"] for r in client.runs.list(tid)] == [run["run_id"]]


@pytest.mark.parametrize("assistant", [GRAPH_ID, AGENT_ID])
def test_create_accepts_graph_name_and_assistant_id(client, thread_id, assistant):
    run = client.runs.create(thread_id, assistant, input=said("a"))
    assert run["assistant_id"] == AGENT_ID
    assert wait_terminal(client, thread_id, run["run_id"])["status"] == "success"


def test_create_stores_sdk_parameters_in_kwargs(client, thread_id):
    run = client.runs.create(
        thread_id,
        GRAPH_ID,
        input=said("p"),
        config={"tags": ["t1"], "recursion_limit": 7, "configurable": {"model": "x"}},
        stream_mode=["values", "updates"],
        stream_subgraphs=True,
        stream_resumable=True,
        interrupt_before=["echo"],
        interrupt_after="*",
        multitask_strategy="interrupt",
        durability="sync",
        after_seconds=HOLD_S,
    )
    assert run["multitask_strategy"] == "interrupt"
    kwargs = run["kwargs"]
    assert kwargs["stream_mode"] == ["values", "updates"]
    assert kwargs["subgraphs"] is True
    assert kwargs["resumable"] is True
    assert kwargs["interrupt_before"] == ["echo"]
    assert kwargs["interrupt_after"] == "*"
    assert kwargs["durability"] == "sync"
    assert kwargs["temporary"] is False
    config = kwargs["config"]
    assert config["tags"] == ["t1"]
    assert config["recursion_limit"] == 7
    assert config["configurable"]["model"] == "x"
    assert config["configurable"]["run_id"] == run["run_id"]
    # Without `context`, the run's context is a copy of the given configurable.
    assert kwargs["context"] == {"model": "x"}
    client.runs.cancel(thread_id, run["run_id"])


def test_create_with_context(client, thread_id):
    run = hold(client, thread_id, context={"user": "u1"})
    assert run["kwargs"]["context"] == {"user": "u1"}
    client.runs.cancel(thread_id, run["run_id"])


def test_create_with_configurable_and_context_is_400(client, thread_id):
    r = sdk_error(
        client.runs.create, thread_id, GRAPH_ID, input=said("x"), config={"configurable": {"a": 1}}, context={"b": 2}
    )
    assert_error(r, 400, BOTH_CONTEXT_DETAIL)
    assert client.runs.list(thread_id) == []


def test_after_seconds_delays_the_start(client, thread_id):
    start = time.monotonic()
    run = client.runs.create(thread_id, GRAPH_ID, input=said("later"), after_seconds=3)
    time.sleep(1.0)
    assert client.runs.get(thread_id, run["run_id"])["status"] == "pending"
    assert client.threads.get(thread_id)["status"] == "busy"
    done = wait_terminal(client, thread_id, run["run_id"])
    assert done["status"] == "success"
    assert time.monotonic() - start >= 2.5
    assert client.threads.get_state(thread_id)["values"] == conversation("later")


def test_after_seconds_moves_created_at_to_the_start_time(client, thread_id):
    """created_at is the instant the run may start (creation + after_seconds); updated_at is
    the creation instant. runs.list and the queue order by created_at."""
    run = client.runs.create(thread_id, GRAPH_ID, input=said("x"), after_seconds=HOLD_S)
    shift = assert_iso_utc(run["created_at"]) - assert_iso_utc(run["updated_at"])
    assert timedelta(seconds=HOLD_S - 1) < shift <= timedelta(seconds=HOLD_S)
    client.runs.cancel(thread_id, run["run_id"])


def test_if_not_exists_create_makes_the_thread(client, track_thread, tag):
    tid = track_thread(str(uuid.uuid4()))
    run = client.runs.create(tid, GRAPH_ID, input=said("new"), if_not_exists="create", metadata={"suite_tag": tag})
    assert_run(run, thread_id=tid, status="pending")
    assert wait_terminal(client, tid, run["run_id"])["status"] == "success"
    thread = client.threads.get(tid)
    assert thread["metadata"] == {"graph_id": GRAPH_ID, "assistant_id": AGENT_ID, "suite_tag": tag}
    assert thread["values"] == conversation("new")


@pytest.mark.parametrize("if_not_exists", [None, "reject"])
def test_create_on_unknown_thread_is_404(client, raw, if_not_exists):
    tid = str(uuid.uuid4())
    kwargs = {"if_not_exists": if_not_exists} if if_not_exists else {}
    r = sdk_error(client.runs.create, tid, GRAPH_ID, input=said("x"), **kwargs)
    assert_error(r, 404, NOT_FOUND_DETAIL)
    assert raw.get(f"/threads/{tid}").status_code == 404


@pytest.mark.parametrize("path", ["/threads/{tid}/runs/stream", "/threads/{tid}/runs/wait"])
def test_stream_and_wait_on_unknown_thread_is_404(raw, path):
    r = raw.post(path.format(tid=uuid.uuid4()), json={"assistant_id": GRAPH_ID, "input": said("x")})
    assert_error(r, 404, NOT_FOUND_DETAIL)


@pytest.mark.parametrize("stateless", [False, True])
def test_create_with_unknown_assistant_id_is_404(client, thread_id, stateless):
    r = sdk_error(client.runs.create, None if stateless else thread_id, str(uuid.uuid4()), input=said("x"))
    assert_error(r, 404, NOT_FOUND_DETAIL)
    if not stateless:
        assert client.runs.list(thread_id) == []


@pytest.mark.parametrize("stateless", [False, True])
def test_create_with_unknown_graph_name_is_422(client, thread_id, stateless):
    r = sdk_error(client.runs.create, None if stateless else thread_id, "nope", input=said("x"))
    assert_error(
        r,
        422,
        "Invalid assistant: 'nope'. Must be either:\n- A valid assistant UUID, or\n"
        f"- One of the registered graphs: {GRAPH_ID}",
    )


@pytest.mark.parametrize(
    "body, mentions",
    [
        ({"input": said("x")}, "assistant_id"),
        ({"assistant_id": GRAPH_ID, "multitask_strategy": "x"}, "multitask_strategy"),
        ({"assistant_id": GRAPH_ID, "stream_mode": "x"}, "stream_mode"),
        ({"assistant_id": GRAPH_ID, "stream_mode": ["values", "x"]}, "stream_mode"),
        ({"assistant_id": GRAPH_ID, "stream_mode": "tools"}, "stream_mode"),
        ({"assistant_id": GRAPH_ID, "if_not_exists": "x"}, "if_not_exists"),
        ({"assistant_id": GRAPH_ID, "durability": "x"}, "durability"),
        ({"assistant_id": GRAPH_ID, "after_seconds": "x"}, "after_seconds"),
        ({"assistant_id": GRAPH_ID, "interrupt_before": 5}, "interrupt_before"),
        ({"assistant_id": GRAPH_ID, "metadata": "x"}, "metadata"),
        ({"assistant_id": GRAPH_ID, "config": "x"}, "config"),
        ({"assistant_id": GRAPH_ID, "checkpoint_id": "x"}, "checkpoint ID"),
    ],
)
def test_create_rejects_bad_body(raw, thread_id, body, mentions):
    # after_seconds keeps a wrongly accepted run from running.
    body = {"after_seconds": 30, **body} if "after_seconds" not in body else body
    r = raw.post(f"/threads/{thread_id}/runs", json=body)
    assert mentions in assert_error(r, 422)
    assert raw.get(f"/threads/{thread_id}/runs").json() == []


@pytest.mark.parametrize(
    "body, mentions",
    [
        ({"input": said("x")}, "assistant_id"),
        ({"assistant_id": GRAPH_ID, "on_completion": "x"}, "on_completion"),
        pytest.param(
            {"assistant_id": GRAPH_ID, "multitask_strategy": "x"},
            "multitask_strategy",
            marks=pytest.mark.reference_bug("a stateless run accepts and stores any multitask_strategy"),
        ),
    ],
)
def test_create_stateless_rejects_bad_body(raw, body, mentions):
    r = raw.post("/runs", json={"after_seconds": 30, **body})
    if r.status_code == 200:  # a wrongly accepted run: do not leave it pending
        raw.post("/runs/cancel", json={"status": "pending"})
    assert mentions in assert_error(r, 422)


@pytest.mark.parametrize("path", ["/threads/{tid}/runs", "/threads/{tid}/runs/stream", "/threads/{tid}/runs/wait", "/runs"])
def test_create_rejects_bad_json(raw, thread_id, path):
    r = raw.post(path.format(tid=thread_id), content=b"{", headers={"content-type": "application/json"})
    assert_error(r, 422, "Invalid JSON in request body")


@pytest.mark.parametrize("path", ["/threads/{tid}/runs/stream", "/threads/{tid}/runs/wait"])
def test_stream_and_wait_reject_bad_multitask_strategy(raw, thread_id, path):
    r = raw.post(path.format(tid=thread_id), json={"assistant_id": GRAPH_ID, "multitask_strategy": "x"})
    assert "multitask_strategy" in assert_error(r, 422)


def test_wait_rejects_bad_on_disconnect(raw, thread_id):
    r = raw.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": GRAPH_ID, "on_disconnect": "x"})
    assert "on_disconnect" in assert_error(r, 422)


# ---------------------------------------------------------------- create_batch


def test_create_batch(client, track_thread, tag):
    runs = client.runs.create_batch(
        [
            {"assistant_id": GRAPH_ID, "input": said("b1"), "on_completion": "keep", "metadata": {"suite_tag": tag}},
            {"assistant_id": AGENT_ID, "input": said("b2"), "on_completion": "keep"},
        ]
    )
    assert isinstance(runs, list) and len(runs) == 2
    for run in runs:
        track_thread(run["thread_id"])
        assert_run(run, status="pending")
        assert run["kwargs"]["temporary"] is False
    assert runs[0]["thread_id"] != runs[1]["thread_id"]
    assert runs[0]["kwargs"]["input"] == said("b1")
    assert runs[1]["kwargs"]["input"] == said("b2")
    assert runs[0]["metadata"] == {"created_by": "system", "suite_tag": tag, "assistant_id": AGENT_ID}
    assert runs[1]["metadata"] == {"created_by": "system", "assistant_id": AGENT_ID}
    for run, text in zip(runs, ("b1", "b2")):
        assert wait_terminal(client, run["thread_id"], run["run_id"])["status"] == "success"
        assert client.threads.get_state(run["thread_id"])["values"] == conversation(text)


def test_create_batch_temporary_threads_are_deleted(client, raw):
    runs = client.runs.create_batch([{"assistant_id": GRAPH_ID, "input": said("t")}])
    assert len(runs) == 1 and runs[0]["kwargs"]["temporary"] is True
    wait_gone(raw, f"/threads/{runs[0]['thread_id']}")


def test_create_batch_empty_is_422(raw):
    assert_error(raw.post("/runs/batch", json=[]), 422)


# ===================================================================== stream


def test_stream_values_and_updates_on_a_thread(client, thread_id):
    events = collect(lambda: client.runs.stream(thread_id, GRAPH_ID, input=said("hi"), stream_mode=["values", "updates"]))
    run_id = run_id_of(events)
    assert_uuid(run_id)
    assert events == echo_stream(run_id, "hi")
    run = wait_terminal(client, thread_id, run_id)
    assert run["status"] == "success"
    assert run["kwargs"]["stream_mode"] == ["values", "updates"]
    assert client.threads.get_state(thread_id)["values"] == conversation("hi")


def test_stream_default_mode_is_values(client, thread_id):
    events = collect(lambda: client.runs.stream(thread_id, GRAPH_ID, input=said("d")))
    run_id = run_id_of(events)
    assert events == [
        ("metadata", {"run_id": run_id, "attempt": 1}),
        ("values", {"messages": [user("d")]}),
        ("values", {"messages": [user("d"), reply("d")]}),
    ]


def test_stream_updates_only(client, thread_id):
    events = collect(lambda: client.runs.stream(thread_id, GRAPH_ID, input=said("u"), stream_mode="updates"))
    assert events == [
        ("metadata", {"run_id": run_id_of(events), "attempt": 1}),
        ("updates", {"echo": {"messages": [reply("u")]}}),
    ]


def test_stream_continues_the_thread_state(client, thread_id):
    bounded(client.runs.wait, thread_id, GRAPH_ID, input=said("one"))
    events = collect(lambda: client.runs.stream(thread_id, GRAPH_ID, input=said("two"), stream_mode=["values", "updates"]))
    assert events == echo_stream(run_id_of(events), "two", before=conversation("one")["messages"])
    assert client.threads.get_state(thread_id)["values"] == conversation("one", "two")


def test_stream_stateless(client):
    events = collect(lambda: client.runs.stream(None, GRAPH_ID, input=said("s"), stream_mode=["values", "updates"]))
    assert events == echo_stream(run_id_of(events), "s")


def test_stream_sse_framing_and_headers(client, raw, thread_id):
    r = bounded(
        raw.post,
        f"/threads/{thread_id}/runs/stream",
        json={"assistant_id": GRAPH_ID, "input": said("f"), "stream_mode": ["values", "updates"]},
        headers={"accept": "text/event-stream"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-accel-buffering"] == "no"
    blocks = parse_sse(r.content)
    assert all(set(b) == {"event", "data"} for b in blocks), blocks  # no id: without stream_resumable
    events = sse_events(r.content)
    run_id = run_id_of(events)
    assert events == echo_stream(run_id, "f")
    assert r.headers["location"] == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert r.headers["content-location"] == f"/threads/{thread_id}/runs/{run_id}"
    # Compact JSON in data lines, as the reference writes it.
    assert blocks[0]["data"] == json.dumps({"run_id": run_id, "attempt": 1}, separators=(",", ":"))


def test_stream_stateless_headers(raw):
    r = bounded(raw.post, "/runs/stream", json={"assistant_id": GRAPH_ID, "input": said("f")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    events = sse_events(r.content)
    run_id = run_id_of(events)
    assert events[1:] == [("values", {"messages": [user("f")]}), ("values", conversation("f"))]
    assert r.headers["location"] == f"/runs/{run_id}/stream"
    assert r.headers["content-location"] == f"/runs/{run_id}"


def test_stream_error_event(client, thread_id):
    """No input on an empty thread: the graph fails; the stream ends with an error event."""
    events = collect(lambda: client.runs.stream(thread_id, GRAPH_ID, input=None))
    run_id = run_id_of(events)
    assert events == [
        ("metadata", {"run_id": run_id, "attempt": 1}),
        ("error", {"error": "EmptyInputError", "message": "Received no input for __start__"}),
    ]
    assert wait_terminal(client, thread_id, run_id)["status"] == "error"
    assert client.threads.get(thread_id)["status"] == "error"


def test_stream_resumable_ids_and_replay(client, thread_id):
    parts = bounded(
        lambda: list(
            client.runs.stream(
                thread_id, GRAPH_ID, input=said("r"), stream_mode=["values", "updates"], stream_resumable=True
            )
        )
    )
    events = [(p.event, p.data) for p in parts]
    run_id = run_id_of(events)
    assert events == echo_stream(run_id, "r")
    assert all(isinstance(p.id, str) and p.id for p in parts), parts
    assert wait_terminal(client, thread_id, run_id)["status"] == "success"
    # join_stream with Last-Event-ID replays what came after that event.
    replay = collect(lambda: client.runs.join_stream(thread_id, run_id, last_event_id=parts[0].id))
    assert replay == events[1:]


# ======================================================================= wait


def test_wait_on_a_thread(client, thread_id):
    values = bounded(client.runs.wait, thread_id, GRAPH_ID, input=said("w"))
    assert values == conversation("w")
    state = client.threads.get_state(thread_id)
    assert state["values"] == conversation("w")
    assert state["next"] == []
    thread = client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == conversation("w")
    runs = client.runs.list(thread_id)
    assert len(runs) == 1
    assert_run(runs[0], thread_id=thread_id, status="success")
    assert runs[0]["kwargs"]["input"] == said("w")


def test_wait_twice_accumulates(client, thread_id):
    assert bounded(client.runs.wait, thread_id, GRAPH_ID, input=said("a")) == conversation("a")
    assert bounded(client.runs.wait, thread_id, GRAPH_ID, input=said("b")) == conversation("a", "b")
    assert [r["status"] for r in client.runs.list(thread_id)] == ["success", "success"]


def test_wait_stateless(client):
    assert bounded(client.runs.wait, None, GRAPH_ID, input=said("s")) == conversation("s")


def test_wait_stateless_on_completion_keep(client, raw, track_thread):
    r = bounded(raw.post, "/runs/wait", json={"assistant_id": GRAPH_ID, "input": said("k"), "on_completion": "keep"})
    assert r.status_code == 200, r.text
    m = re.fullmatch(r"/threads/([0-9a-f-]{36})/runs/([0-9a-f-]{36})", r.headers["content-location"])
    assert m, r.headers["content-location"]
    tid = track_thread(m.group(1))
    assert r.json() == conversation("k")
    assert wait_terminal(client, tid, m.group(2))["status"] == "success"
    assert client.threads.get_state(tid)["values"] == conversation("k")


def test_wait_headers(raw, thread_id):
    r = bounded(raw.post, f"/threads/{thread_id}/runs/wait", json={"assistant_id": GRAPH_ID, "input": said("h")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == conversation("h")
    m = re.fullmatch(rf"/threads/{thread_id}/runs/([0-9a-f-]{{36}})", r.headers["content-location"])
    assert m, r.headers["content-location"]
    assert r.headers["location"] == f"/threads/{thread_id}/runs/{m.group(1)}/join"


def test_wait_stateless_headers_name_the_temporary_thread(raw):
    r = bounded(raw.post, "/runs/wait", json={"assistant_id": GRAPH_ID, "input": said("h")})
    assert r.status_code == 200, r.text
    assert r.json() == conversation("h")
    m = re.fullmatch(r"/threads/([0-9a-f-]{36})/runs/([0-9a-f-]{36})", r.headers["content-location"])
    assert m, r.headers["content-location"]
    assert r.headers["location"] == f"/threads/{m.group(1)}/runs/{m.group(2)}/join"
    wait_gone(raw, f"/threads/{m.group(1)}")


def test_wait_error_result(client, thread_id):
    """A failed run is an HTTP 200 whose body is {"__error__": {...}}; the SDK raises on it
    unless raise_error=False."""
    result = bounded(client.runs.wait, thread_id, GRAPH_ID, raise_error=False)
    assert result == {"__error__": {"error": "EmptyInputError", "message": "Received no input for __start__"}}
    with pytest.raises(Exception, match="EmptyInputError: Received no input for __start__"):
        bounded(client.runs.wait, thread_id, GRAPH_ID)
    assert [r["status"] for r in client.runs.list(thread_id)] == ["error", "error"]


# ======================================================================= join


def test_join_after_create(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("j"))
    assert bounded(client.runs.join, thread_id, run["run_id"]) == conversation("j")
    assert wait_terminal(client, thread_id, run["run_id"])["status"] == "success"


def test_join_a_pending_run(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("p"), after_seconds=2)
    assert bounded(client.runs.join, thread_id, run["run_id"]) == conversation("p")


def test_join_a_finished_run_returns_the_thread_values(client, thread_id):
    first = client.runs.create(thread_id, GRAPH_ID, input=said("one"))
    wait_terminal(client, thread_id, first["run_id"])
    bounded(client.runs.wait, thread_id, GRAPH_ID, input=said("two"))
    # Nothing is replayed for a finished run: the answer is the thread's current values.
    assert bounded(client.runs.join, thread_id, first["run_id"]) == conversation("one", "two")


def test_join_a_failed_run(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID)
    assert wait_terminal(client, thread_id, run["run_id"])["status"] == "error"
    assert bounded(client.runs.join, thread_id, run["run_id"]) == {
        "__error__": {"error": "EmptyInputError", "message": "Received no input for __start__"}
    }


def test_join_stream_a_pending_run(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("js"), stream_mode=["values", "updates"], after_seconds=2)
    events = collect(lambda: client.runs.join_stream(thread_id, run["run_id"]))
    assert events == echo_stream(run["run_id"], "js")
    assert client.runs.get(thread_id, run["run_id"])["status"] == "success"


def test_join_stream_a_finished_run_is_empty(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("f"))
    wait_terminal(client, thread_id, run["run_id"])
    start = time.monotonic()
    assert collect(lambda: client.runs.join_stream(thread_id, run["run_id"])) == []
    assert time.monotonic() - start < 10


def test_join_stream_a_finished_run_headers(raw, client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("f"))
    wait_terminal(client, thread_id, run["run_id"])
    r = bounded(raw.get, f"/threads/{thread_id}/runs/{run['run_id']}/stream")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["location"] == f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    assert r.headers["content-location"] == f"/threads/{thread_id}/runs/{run['run_id']}"
    assert r.content.strip() == b""


def test_join_stream_filters_by_stream_mode(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("m"), stream_mode=["values", "updates"], after_seconds=2)
    # Only that mode, and no metadata event.
    events = collect(lambda: client.runs.join_stream(thread_id, run["run_id"], stream_mode="updates"))
    assert events == [("updates", {"echo": {"messages": [reply("m")]}})]


# ================================================================== multitask


@pytest.mark.parametrize("method", ["create", "stream", "wait"])
def test_reject_on_a_busy_thread_is_409(client, thread_id, method):
    first = hold(client, thread_id)
    kwargs = {"input": said("second"), "multitask_strategy": "reject"}
    if method == "create":
        with pytest.raises(ConflictError) as info:
            client.runs.create(thread_id, GRAPH_ID, **kwargs)
        response = info.value.response
    elif method == "stream":
        with pytest.raises(ConflictError) as info:
            bounded(lambda: list(client.runs.stream(thread_id, GRAPH_ID, **kwargs)))
        response = info.value.response
    else:  # wait reads its answer with request_reconnect: a plain httpx.HTTPStatusError
        response = sdk_error(bounded, client.runs.wait, thread_id, GRAPH_ID, **kwargs)
    assert_error(response, 409, BUSY_DETAIL)
    runs = client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [first["run_id"]]
    assert runs[0]["status"] == "pending"
    client.runs.cancel(thread_id, first["run_id"])


def test_reject_on_an_idle_thread_runs(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("r"), multitask_strategy="reject")
    assert run["multitask_strategy"] == "reject"
    assert wait_terminal(client, thread_id, run["run_id"])["status"] == "success"


def test_enqueue_runs_in_order(client, thread_id):
    first = client.runs.create(thread_id, GRAPH_ID, input=said("one"), after_seconds=2)
    second = client.runs.create(thread_id, GRAPH_ID, input=said("two"), after_seconds=2, multitask_strategy="enqueue")
    assert second["status"] == "pending"
    assert second["multitask_strategy"] == "enqueue"
    assert wait_terminal(client, thread_id, first["run_id"])["status"] == "success"
    assert wait_terminal(client, thread_id, second["run_id"])["status"] == "success"
    assert client.threads.get_state(thread_id)["values"] == conversation("one", "two")
    assert [r["run_id"] for r in client.runs.list(thread_id)] == [second["run_id"], first["run_id"]]
    assert client.threads.get(thread_id)["status"] == "idle"


def test_enqueue_does_not_wait_for_a_delayed_run(client, thread_id):
    """Pending runs start in created_at order, and created_at includes after_seconds: a run
    enqueued without delay starts before an earlier run whose after_seconds has not passed."""
    delayed = client.runs.create(thread_id, GRAPH_ID, input=said("one"), after_seconds=HOLD_S)
    quick = client.runs.create(thread_id, GRAPH_ID, input=said("two"), multitask_strategy="enqueue")
    assert wait_terminal(client, thread_id, quick["run_id"])["status"] == "success"
    assert wait_terminal(client, thread_id, delayed["run_id"])["status"] == "success"
    assert client.threads.get_state(thread_id)["values"] == conversation("two", "one")
    # runs.list is newest created_at first: the delayed run is listed first.
    assert [r["run_id"] for r in client.runs.list(thread_id)] == [delayed["run_id"], quick["run_id"]]


def test_interrupt_on_a_busy_thread(client, thread_id):
    first = hold(client, thread_id, "one")
    second = client.runs.create(thread_id, GRAPH_ID, input=said("two"), multitask_strategy="interrupt")
    assert second["multitask_strategy"] == "interrupt"
    assert wait_terminal(client, thread_id, first["run_id"])["status"] == "interrupted"
    assert wait_terminal(client, thread_id, second["run_id"])["status"] == "success"
    # The interrupted run never started: only the second one is in the state.
    assert client.threads.get_state(thread_id)["values"] == conversation("two")
    listed = {r["run_id"]: r["status"] for r in client.runs.list(thread_id)}
    assert listed == {first["run_id"]: "interrupted", second["run_id"]: "success"}


def test_rollback_on_a_busy_thread(client, raw, thread_id):
    first = hold(client, thread_id, "one")
    second = client.runs.create(thread_id, GRAPH_ID, input=said("two"), multitask_strategy="rollback")
    assert second["multitask_strategy"] == "rollback"
    wait_gone(raw, f"/threads/{thread_id}/runs/{first['run_id']}")
    with pytest.raises(NotFoundError):
        client.runs.get(thread_id, first["run_id"])
    assert wait_terminal(client, thread_id, second["run_id"])["status"] == "success"
    assert client.threads.get_state(thread_id)["values"] == conversation("two")
    assert [r["run_id"] for r in client.runs.list(thread_id)] == [second["run_id"]]


# ===================================================================== cancel


def test_cancel_a_pending_run(client, raw, thread_id):
    run = hold(client, thread_id)
    assert client.runs.cancel(thread_id, run["run_id"]) is None
    cancelled = wait_terminal(client, thread_id, run["run_id"])
    assert cancelled["status"] == "interrupted"
    assert client.threads.get(thread_id)["status"] == "idle"
    # It never runs, even after its after_seconds.
    assert client.threads.get_state(thread_id)["values"] == {}
    # An interrupted run cannot be cancelled again.
    r = raw.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
    assert_error(r, 404, NOT_CANCELABLE_DETAIL)


def test_cancel_answers_202_without_body(raw, client, thread_id):
    run = hold(client, thread_id)
    r = raw.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
    assert r.status_code == 202, r.text
    assert r.content == b""
    assert wait_terminal(client, thread_id, run["run_id"])["status"] == "interrupted"


def test_cancel_with_wait(client, thread_id):
    bounded(client.runs.wait, thread_id, GRAPH_ID, input=said("before"))
    run = hold(client, thread_id)
    # The cancelled run produced nothing: the answer is {} (not the thread's values).
    assert bounded(client.runs.cancel, thread_id, run["run_id"], wait=True) == {}
    assert client.runs.get(thread_id, run["run_id"])["status"] == "interrupted"
    assert client.threads.get_state(thread_id)["values"] == conversation("before")


def test_cancel_with_wait_raw(raw, client, thread_id):
    run = hold(client, thread_id)
    path = f"/threads/{thread_id}/runs/{run['run_id']}"
    r = bounded(raw.post, f"{path}/cancel", params={"wait": "true"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {}
    assert r.headers["location"] == f"{path}/join"
    assert r.headers["content-location"] == path


def test_cancel_rollback_deletes_a_pending_run(client, raw, thread_id):
    run = hold(client, thread_id)
    assert client.runs.cancel(thread_id, run["run_id"], action="rollback") is None
    wait_gone(raw, f"/threads/{thread_id}/runs/{run['run_id']}")
    assert client.runs.list(thread_id) == []


@pytest.mark.reference_bug("rolling back a thread's only (pending) run leaves the thread busy until its next run")
def test_cancel_rollback_of_the_only_run_leaves_the_thread_idle(client, raw, thread_id):
    run = hold(client, thread_id)
    client.runs.cancel(thread_id, run["run_id"], action="rollback")
    wait_gone(raw, f"/threads/{thread_id}/runs/{run['run_id']}")
    assert client.threads.get(thread_id)["status"] == "idle"


def test_cancel_a_finished_run_is_404(client, raw, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("f"))
    wait_terminal(client, thread_id, run["run_id"])
    r = sdk_error(client.runs.cancel, thread_id, run["run_id"])
    assert_error(r, 404, NOT_CANCELABLE_DETAIL)
    assert client.runs.get(thread_id, run["run_id"])["status"] == "success"


@pytest.mark.parametrize("known_thread", [True, False])
def test_cancel_an_unknown_run_is_404(client, thread_id, known_thread):
    tid = thread_id if known_thread else str(uuid.uuid4())
    r = sdk_error(client.runs.cancel, tid, str(uuid.uuid4()))
    assert_error(r, 404, NO_RUNS_DETAIL)


def test_cancel_many_by_run_ids(client, raw, thread_id):
    a = hold(client, thread_id, "a")
    b = hold(client, thread_id, "b")
    assert client.runs.cancel_many(thread_id=thread_id, run_ids=[a["run_id"], b["run_id"]]) is None
    assert wait_terminal(client, thread_id, a["run_id"])["status"] == "interrupted"
    assert wait_terminal(client, thread_id, b["run_id"])["status"] == "interrupted"
    r = raw.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": [a["run_id"]]})
    assert_error(r, 404, NOT_CANCELABLE_DETAIL)


def test_cancel_many_answers_204_and_rollback_deletes(client, raw, thread_id):
    a = hold(client, thread_id, "a")
    r = raw.post("/runs/cancel", params={"action": "rollback"}, json={"thread_id": thread_id, "run_ids": [a["run_id"]]})
    assert r.status_code == 204, r.text
    assert r.content == b""
    wait_gone(raw, f"/threads/{thread_id}/runs/{a['run_id']}")


def test_cancel_many_by_status(client, make_thread):
    t1, t2 = make_thread()["thread_id"], make_thread()["thread_id"]
    a = hold(client, t1, "a")
    b = hold(client, t2, "b")
    assert client.runs.cancel_many(status="pending") is None
    assert wait_terminal(client, t1, a["run_id"])["status"] == "interrupted"
    assert wait_terminal(client, t2, b["run_id"])["status"] == "interrupted"


def test_cancel_many_by_status_all(client, thread_id):
    a = hold(client, thread_id, "a")
    assert client.runs.cancel_many(status="all") is None
    assert wait_terminal(client, thread_id, a["run_id"])["status"] == "interrupted"


def test_cancel_many_unknown_run_ids_is_404(client, thread_id):
    r = sdk_error(client.runs.cancel_many, thread_id=thread_id, run_ids=[str(uuid.uuid4())])
    assert_error(r, 404, NO_RUNS_DETAIL)


@pytest.mark.parametrize(
    "body, detail",
    [
        ({}, None),
        ({"status": "x"}, None),
        ({"thread_id": "{tid}"}, None),
        ({"status": "pending", "thread_id": "{tid}", "run_ids": ["{rid}"]}, None),
        ({"thread_id": "{tid}", "run_ids": ["nope"]}, "Invalid run ID: must be a UUID"),
        ({"thread_id": "nope", "run_ids": ["{rid}"]}, "Invalid thread ID: must be a UUID"),
    ],
)
def test_cancel_many_rejects_bad_bodies(raw, thread_id, body, detail):
    text = json.dumps(body).replace("{tid}", thread_id).replace("{rid}", str(uuid.uuid4()))
    r = raw.post("/runs/cancel", content=text, headers={"content-type": "application/json"})
    assert_error(r, 422, detail)


# ===================================================================== delete


def test_delete_a_finished_run(client, raw, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("d"))
    wait_terminal(client, thread_id, run["run_id"])
    path = f"/threads/{thread_id}/runs/{run['run_id']}"
    r = raw.delete(path)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(raw.get(path), 404)
    assert_error(raw.delete(path), 404, "Run not found")
    assert client.runs.list(thread_id) == []


def test_delete_with_the_sdk(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("d"))
    wait_terminal(client, thread_id, run["run_id"])
    assert client.runs.delete(thread_id, run["run_id"]) is None
    with pytest.raises(NotFoundError):
        client.runs.get(thread_id, run["run_id"])


def test_delete_a_pending_run(client, raw, thread_id):
    run = hold(client, thread_id)
    r = raw.delete(f"/threads/{thread_id}/runs/{run['run_id']}")
    assert r.status_code == 204, r.text
    with pytest.raises(NotFoundError):
        client.runs.get(thread_id, run["run_id"])


@pytest.mark.parametrize("known_thread", [True, False])
def test_delete_an_unknown_run_is_404(client, thread_id, known_thread):
    tid = thread_id if known_thread else str(uuid.uuid4())
    assert_error(sdk_error(client.runs.delete, tid, str(uuid.uuid4())), 404, "Run not found")


# ======================================================================= list


def test_list_order_filters_and_paging(client, thread_id):
    one = client.runs.create(thread_id, GRAPH_ID, input=said("one"))
    wait_terminal(client, thread_id, one["run_id"])
    two = client.runs.create(thread_id, GRAPH_ID, input=said("two"))
    wait_terminal(client, thread_id, two["run_id"])
    pending = hold(client, thread_id, "three")

    def ids(**kwargs: Any) -> list[str]:
        return [r["run_id"] for r in client.runs.list(thread_id, **kwargs)]

    everything = client.runs.list(thread_id)
    for run in everything:
        assert_run(run, thread_id=thread_id)
    assert [r["run_id"] for r in everything] == [pending["run_id"], two["run_id"], one["run_id"]]
    assert [r["status"] for r in everything] == ["pending", "success", "success"]
    assert ids(status="success") == [two["run_id"], one["run_id"]]
    assert ids(status="pending") == [pending["run_id"]]
    assert ids(status="error") == []
    assert ids(limit=1) == [pending["run_id"]]
    assert ids(limit=1, offset=1) == [two["run_id"]]
    assert ids(limit=2, offset=1) == [two["run_id"], one["run_id"]]
    assert ids(offset=3) == []
    assert ids(status="success", limit=1, offset=1) == [one["run_id"]]
    client.runs.cancel(thread_id, pending["run_id"])


def test_list_select(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("s"))
    wait_terminal(client, thread_id, run["run_id"])
    assert client.runs.list(thread_id, select=["run_id", "status"]) == [{"run_id": run["run_id"], "status": "success"}]
    full = client.runs.list(thread_id, select=RUN_SELECT_FIELDS)
    assert len(full) == 1 and set(full[0]) == RUN_KEYS


def test_list_of_a_thread_without_runs(client, thread_id):
    assert client.runs.list(thread_id) == []


def test_list_with_an_unknown_status_is_empty(raw, client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("s"))
    wait_terminal(client, thread_id, run["run_id"])
    r = raw.get(f"/threads/{thread_id}/runs", params={"status": "bogus"})
    assert r.status_code == 200, r.text
    assert r.json() == []


def test_list_bad_select_is_422(raw, thread_id):
    r = raw.get(f"/threads/{thread_id}/runs", params={"select": "bogus"})
    assert_error(r, 422, "Invalid select columns: ['bogus']")


def test_list_unknown_thread_is_404(client):
    tid = str(uuid.uuid4())
    assert_error(sdk_error(client.runs.list, tid), 404, f"Thread with ID {tid} not found")


# ========================================================== get and errors


def test_get(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("g"))
    got = client.runs.get(thread_id, run["run_id"])
    assert_run(got, thread_id=thread_id)
    assert got["run_id"] == run["run_id"]
    assert got["kwargs"]["input"] == said("g")
    wait_terminal(client, thread_id, run["run_id"])


def test_get_unknown_run_is_404(client, thread_id):
    assert_error(sdk_error(client.runs.get, thread_id, str(uuid.uuid4())), 404)


def test_get_on_unknown_thread_is_404(client, thread_id):
    run = client.runs.create(thread_id, GRAPH_ID, input=said("g"))
    other = str(uuid.uuid4())
    assert_error(sdk_error(client.runs.get, other, run["run_id"]), 404, f"Thread with ID {other} not found")
    wait_terminal(client, thread_id, run["run_id"])


def test_get_on_another_thread_is_404(client, make_thread):
    t1, t2 = make_thread()["thread_id"], make_thread()["thread_id"]
    run = client.runs.create(t1, GRAPH_ID, input=said("g"))
    assert_error(sdk_error(client.runs.get, t2, run["run_id"]), 404)
    wait_terminal(client, t1, run["run_id"])


_RUN_PATHS = [
    ("GET", "/threads/{tid}/runs/{rid}"),
    ("DELETE", "/threads/{tid}/runs/{rid}"),
    ("POST", "/threads/{tid}/runs/{rid}/cancel"),
    ("GET", "/threads/{tid}/runs/{rid}/join"),
    ("GET", "/threads/{tid}/runs/{rid}/stream"),
]


@pytest.mark.parametrize("method, path", _RUN_PATHS)
def test_malformed_run_id_is_422(raw, thread_id, method, path):
    r = raw.request(method, path.format(tid=thread_id, rid="not-a-uuid"))
    assert_error(r, 422, "Invalid run ID: must be a UUID")


@pytest.mark.parametrize("method, path", [*_RUN_PATHS, ("GET", "/threads/{tid}/runs")])
def test_malformed_thread_id_is_422(raw, method, path):
    r = raw.request(method, path.format(tid="not-a-uuid", rid=NIL_UUID))
    assert_error(r, 422, "Invalid thread ID: must be a UUID")


def test_create_on_malformed_thread_id_is_422(raw):
    r = raw.post("/threads/not-a-uuid/runs", json={"assistant_id": GRAPH_ID})
    assert_error(r, 422, "Invalid thread ID")


@pytest.mark.reference_bug("stream/wait on a malformed thread id answer 400 'badly formed hexadecimal UUID string'")
@pytest.mark.parametrize("path", ["/threads/not-a-uuid/runs/stream", "/threads/not-a-uuid/runs/wait"])
def test_stream_and_wait_on_malformed_thread_id_is_422(raw, path):
    r = raw.post(path, json={"assistant_id": GRAPH_ID, "input": said("x")})
    assert_error(r, 422, "Invalid thread ID")


@pytest.mark.reference_bug("join of an unknown run answers 200 with {'__error__': {..., '404: Run not found'}}")
def test_join_unknown_run_is_404(raw, thread_id):
    r = bounded(raw.get, f"/threads/{thread_id}/runs/{uuid.uuid4()}/join")
    assert_error(r, 404)


@pytest.mark.reference_bug("join_stream of an unknown run answers 200 with an SSE `error` event")
def test_join_stream_unknown_run_is_404(raw, thread_id):
    r = bounded(raw.get, f"/threads/{thread_id}/runs/{uuid.uuid4()}/stream")
    assert_error(r, 404)

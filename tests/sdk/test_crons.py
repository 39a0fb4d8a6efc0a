"""client.crons: create, create_for_thread, search, count, update, delete.

The SDK 0.4.14 sync client has no `crons.get`; GET /runs/crons/{id} exists on the server
and is tested here with raw HTTP. Crons are created with a schedule that does not fire
while the suite runs, and deleted after each test.
"""

from __future__ import annotations

import uuid
import warnings
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from conftest import (
    AGENT_ID,
    CRON_KEYS,
    GRAPH_ID,
    NIL_UUID,
    QUIET_SCHEDULE,
    assert_error,
    assert_iso_utc,
    assert_uuid,
    on_reference,
    sdk_error,
)

UTC = timezone.utc
CRON_SELECT_FIELDS = sorted(CRON_KEYS)
BAD_SCHEDULE_DETAIL = (
    "Invalid cron schedule: '{}'. Reason: Invalid cron schedule. Ensure the schedule uses "
    "the standard cron format (minute hour day_of_month month day_of_week). "
    "Example: '*/5 * * * *' for every 5 minutes."
)


def assert_schedule_detail(detail: str, schedule: str) -> None:
    """The reference's exact text; cronhook may add what precisely is wrong, in parentheses."""
    expected = BAD_SCHEDULE_DETAIL.format(schedule)
    assert detail == expected or (
        not on_reference() and detail.startswith(expected + " (") and detail.endswith(")")
    ), detail


def next_fire(schedule: str, tz: str | None, base: datetime) -> datetime:
    """The reference's computation: croniter in the cron's zone, result in UTC."""
    if tz:
        base = base.astimezone(ZoneInfo(tz))
    return croniter(schedule, base).get_next(datetime).astimezone(UTC)


def expected_next_run(schedule: str, tz: str | None, before: datetime, after: datetime) -> set[datetime]:
    """Both candidates when the request straddled a fire instant."""
    return {next_fire(schedule, tz, before), next_fire(schedule, tz, after)}


def now() -> datetime:
    return datetime.now(UTC)


def cron_body(**extra):
    return {"assistant_id": GRAPH_ID, "schedule": QUIET_SCHEDULE, **extra}


def total_crons(client) -> int:
    return client.crons.count()


def get_cron(raw, cron_id: str) -> dict:
    r = raw.get(f"/runs/crons/{cron_id}")
    assert r.status_code == 200, r.text
    return r.json()


# ===================================================================== create


def test_create_stateless_shape_and_defaults(make_cron, tag):
    before = now()
    cron = make_cron(schedule="27 15 * * *", timezone="Europe/Paris")
    after = now()
    assert set(cron) == CRON_KEYS
    cron_id = cron["cron_id"]
    assert_uuid(cron_id)
    assert cron["assistant_id"] == AGENT_ID
    assert cron["thread_id"] is None
    assert cron["user_id"] == ""
    assert cron["end_time"] is None
    assert cron["schedule"] == "27 15 * * *"
    assert cron["timezone"] == "Europe/Paris"
    assert cron["metadata"] == {"suite_tag": tag}
    assert cron["on_run_completed"] == "delete"
    assert cron["enabled"] is True
    created = assert_iso_utc(cron["created_at"])
    assert assert_iso_utc(cron["updated_at"]) == created
    assert before - timedelta(seconds=5) <= created <= after + timedelta(seconds=5)
    assert assert_iso_utc(cron["next_run_date"]) in expected_next_run("27 15 * * *", "Europe/Paris", before, after)
    # The payload is the request body as the SDK sent it, with the assistant resolved to
    # its id and the cron id injected into config.configurable.
    assert cron["payload"] == {
        "assistant_id": AGENT_ID,
        "schedule": "27 15 * * *",
        "timezone": "Europe/Paris",
        "metadata": {"suite_tag": tag},
        "config": {"configurable": {"cron_id": cron_id}},
    }


def test_next_run_date_europe_paris_is_15_27_local(make_cron):
    cron = make_cron(schedule="27 15 * * *", timezone="Europe/Paris")
    local = assert_iso_utc(cron["next_run_date"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute, local.second) == (15, 27, 0)
    assert -timedelta(seconds=5) < local - now() <= timedelta(days=1)


@pytest.mark.parametrize(
    "schedule, tz",
    [
        ("0 9 * * 1", None),
        ("*/15 * * * *", None),
        ("0 9 * * 1-5", "America/New_York"),
        ("0 9 * * *", "Asia/Kolkata"),
        ("30 2 * * *", "Europe/Paris"),
        ("0 0 29 2 *", None),
        ("* * * * MON", "UTC"),
        ("@daily", None),
        ("@hourly", "Australia/Adelaide"),
        ("0 0 L * *", None),
        ("0 0 * * 5#3", None),
        ("0 9 * * 1 30", None),  # a sixth field is seconds (croniter)
    ],
)
def test_next_run_date_matches_croniter(make_cron, schedule, tz):
    kwargs = {"schedule": schedule}
    if tz:
        kwargs["timezone"] = tz
    before = now()
    cron = make_cron(**kwargs)
    after = now()
    assert cron["schedule"] == schedule
    assert cron["timezone"] == tz
    assert assert_iso_utc(cron["next_run_date"]) in expected_next_run(schedule, tz, before, after)


def test_timezone_given_as_zoneinfo(make_cron):
    cron = make_cron(schedule="0 12 * * *", timezone=ZoneInfo("Asia/Tokyo"))
    assert cron["timezone"] == "Asia/Tokyo"
    assert assert_iso_utc(cron["next_run_date"]).astimezone(ZoneInfo("Asia/Tokyo")).hour == 12


def test_create_with_assistant_uuid(make_cron):
    cron = make_cron(assistant_id=AGENT_ID)
    assert cron["assistant_id"] == AGENT_ID
    assert cron["payload"]["assistant_id"] == AGENT_ID


def test_graph_name_resolves_to_the_same_assistant(make_cron):
    by_name = make_cron(assistant_id=GRAPH_ID)
    by_id = make_cron(assistant_id=AGENT_ID)
    assert by_name["assistant_id"] == by_id["assistant_id"] == AGENT_ID


def test_create_disabled_and_keep(make_cron, tag):
    cron = make_cron(enabled=False, on_run_completed="keep")
    assert cron["enabled"] is False
    assert cron["on_run_completed"] == "keep"
    assert cron["next_run_date"] is not None
    assert cron["payload"] == {
        "assistant_id": AGENT_ID,
        "schedule": QUIET_SCHEDULE,
        "metadata": {"suite_tag": tag},
        "enabled": False,
        "on_run_completed": "keep",
        "config": {"configurable": {"cron_id": cron["cron_id"]}},
    }


def test_create_without_metadata(client, track_cron):
    cron = client.crons.create(GRAPH_ID, schedule=QUIET_SCHEDULE)
    track_cron(cron["cron_id"])
    assert cron["metadata"] == {}
    assert "metadata" not in cron["payload"]


def test_create_stores_every_sdk_parameter_in_payload(make_cron, tag):
    end_time = datetime(2099, 1, 1, tzinfo=UTC)
    sent = {
        "schedule": QUIET_SCHEDULE,
        "input": {"messages": [{"role": "user", "content": "hello"}]},
        "metadata": {"suite_tag": tag, "name": "nightly"},
        "config": {"tags": ["t1"], "recursion_limit": 7, "configurable": {"model": "x"}},
        "context": {"user": "u1"},
        "interrupt_before": ["echo"],
        "interrupt_after": "*",
        "on_run_completed": "keep",
        "multitask_strategy": "enqueue",
        "end_time": end_time,
        "enabled": True,
        "timezone": "UTC",
        "stream_mode": ["values", "updates"],
        "stream_subgraphs": True,
        "stream_resumable": False,
        "durability": "sync",
    }
    cron = make_cron(**sent)
    expected = {**sent, "assistant_id": AGENT_ID, "end_time": end_time.isoformat()}
    expected["config"] = {"tags": ["t1"], "recursion_limit": 7, "configurable": {"model": "x", "cron_id": cron["cron_id"]}}
    assert cron["payload"] == expected
    assert cron["on_run_completed"] == "keep"
    assert assert_iso_utc(cron["end_time"]) == end_time
    assert cron["metadata"] == {"suite_tag": tag, "name": "nightly"}


def test_create_accepts_deprecated_checkpoint_during(make_cron):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cron = make_cron(checkpoint_during=True)
    assert cron["payload"]["checkpoint_during"] is True


def test_create_with_future_end_time(make_cron):
    end_time = datetime(2098, 6, 1, 12, 30, tzinfo=UTC)
    before = now()
    cron = make_cron(schedule="0 9 * * *", end_time=end_time)
    after = now()
    assert cron["end_time"] == "2098-06-01T12:30:00+00:00"
    assert assert_iso_utc(cron["next_run_date"]) in expected_next_run("0 9 * * *", None, before, after)


@pytest.mark.reference_bug("a cron whose end_time has passed still reports a next_run_date")
def test_end_time_in_the_past_gives_null_next_run_date(make_cron):
    cron = make_cron(schedule="0 9 * * *", end_time=now() - timedelta(days=1))
    assert cron["next_run_date"] is None


# ---------------------------------------------------------- thread crons


def test_create_for_thread_shape_and_defaults(make_thread, make_thread_cron, tag):
    thread = make_thread()
    before = now()
    cron = make_thread_cron(thread["thread_id"], schedule="0 8 * * *")
    after = now()
    assert set(cron) == CRON_KEYS
    assert_uuid(cron["cron_id"])
    assert cron["thread_id"] == thread["thread_id"]
    assert cron["assistant_id"] == AGENT_ID
    assert cron["on_run_completed"] is None
    assert cron["enabled"] is True
    assert cron["user_id"] == ""
    assert cron["end_time"] is None
    assert cron["timezone"] is None
    assert cron["metadata"] == {"suite_tag": tag}
    assert assert_iso_utc(cron["next_run_date"]) in expected_next_run("0 8 * * *", None, before, after)
    assert cron["payload"] == {
        "assistant_id": AGENT_ID,
        "schedule": "0 8 * * *",
        "metadata": {"suite_tag": tag},
        "config": {"configurable": {"cron_id": cron["cron_id"]}},
    }


@pytest.mark.parametrize("strategy", ["reject", "rollback", "interrupt", "enqueue"])
def test_create_for_thread_keeps_multitask_strategy_in_payload(make_thread, make_thread_cron, strategy):
    thread = make_thread()
    cron = make_thread_cron(thread["thread_id"], multitask_strategy=strategy)
    assert cron["payload"]["multitask_strategy"] == strategy


def test_create_for_thread_every_sdk_parameter(make_thread, make_thread_cron, tag):
    thread = make_thread()
    sent = {
        "schedule": QUIET_SCHEDULE,
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "metadata": {"suite_tag": tag},
        "config": {"configurable": {"k": 1}},
        "context": {"c": True},
        "interrupt_before": "*",
        "interrupt_after": ["echo"],
        "multitask_strategy": "interrupt",
        "enabled": False,
        "timezone": "Europe/Berlin",
        "stream_mode": "values",
        "stream_subgraphs": False,
        "stream_resumable": True,
        "durability": "exit",
    }
    cron = make_thread_cron(thread["thread_id"], **sent)
    expected = {**sent, "assistant_id": AGENT_ID, "config": {"configurable": {"k": 1, "cron_id": cron["cron_id"]}}}
    assert cron["payload"] == expected
    assert cron["enabled"] is False
    assert cron["timezone"] == "Europe/Berlin"


def test_create_for_thread_ignores_on_run_completed(raw, make_thread, track_cron):
    thread = make_thread()
    r = raw.post(f"/threads/{thread['thread_id']}/runs/crons", json=cron_body(on_run_completed="keep"))
    assert r.status_code == 200, r.text
    cron = r.json()
    track_cron(cron["cron_id"])
    assert cron["on_run_completed"] is None


def test_create_for_unknown_thread_is_404(client):
    response = sdk_error(client.crons.create_for_thread, NIL_UUID, GRAPH_ID, schedule=QUIET_SCHEDULE)
    assert_error(response, 404, f"Thread with ID '{NIL_UUID}' not found")


def test_create_for_malformed_thread_is_422(client):
    response = sdk_error(client.crons.create_for_thread, "not-a-uuid", GRAPH_ID, schedule=QUIET_SCHEDULE)
    assert_error(response, 422, "Invalid thread ID: must be a UUID")


# ---------------------------------------------------------- create errors


@pytest.mark.parametrize("schedule", ["bad", "", "60 * * * *", "* * 32 * *", "* * * *", "0 25 * * *", "@reboot"])
def test_create_rejects_bad_schedule(client, schedule):
    response = sdk_error(client.crons.create, GRAPH_ID, schedule=schedule)
    detail = assert_error(response, 422)
    assert_schedule_detail(detail, schedule)


def test_create_for_thread_rejects_bad_schedule(client, make_thread):
    thread = make_thread()
    response = sdk_error(client.crons.create_for_thread, thread["thread_id"], GRAPH_ID, schedule="bad")
    assert_error(response, 422, "Invalid cron schedule: 'bad'")


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "Europe/Pariss", "+02:00"])
def test_create_rejects_bad_timezone(client, tz):
    response = sdk_error(client.crons.create, GRAPH_ID, schedule=QUIET_SCHEDULE, timezone=tz)
    detail = assert_error(response, 422)
    assert detail == f"Invalid timezone: '{tz}'. Use IANA timezone format (e.g. 'America/New_York')."


@pytest.mark.reference_bug("an empty timezone answers 400 'ZoneInfo keys must be normalized relative paths, got: '")
def test_create_rejects_empty_timezone_with_422(raw):
    assert_error(raw.post("/runs/crons", json=cron_body(timezone="")), 422)


def test_create_unknown_assistant_is_404(client):
    response = sdk_error(client.crons.create, "nope", schedule=QUIET_SCHEDULE)
    assert_error(response, 404, "Assistant 'nope' not found")
    response = sdk_error(client.crons.create, NIL_UUID, schedule=QUIET_SCHEDULE)
    assert_error(response, 404, f"Assistant '{NIL_UUID}' not found")


def test_create_for_thread_unknown_assistant_is_404(client, make_thread):
    thread = make_thread()
    response = sdk_error(client.crons.create_for_thread, thread["thread_id"], "nope", schedule=QUIET_SCHEDULE)
    assert_error(response, 404, "Assistant 'nope' not found")


@pytest.mark.parametrize("content", [b"{bad", b"", b"[1,", b"null x"])
@pytest.mark.parametrize("path", ["/runs/crons", "/runs/crons/search", "/runs/crons/count"])
def test_bad_json_is_422(raw, path, content):
    r = raw.post(path, content=content, headers={"content-type": "application/json"})
    assert_error(r, 422, "Invalid JSON in request body")


@pytest.mark.parametrize(
    "body",
    [
        [1],
        cron_body(schedule=5),
        cron_body(timezone=3),
        cron_body(enabled="yes"),
        cron_body(metadata="x"),
        cron_body(on_run_completed="sometimes"),
        cron_body(input="text"),
        cron_body(durability="never"),
        cron_body(stream_mode="everything"),
        cron_body(interrupt_before="echo"),
        cron_body(config={"recursion_limit": "many"}),
        cron_body(metadata=None),  # explicit nulls are type errors (the SDK omits None)
        cron_body(timezone=None),
    ],
)
def test_create_rejects_wrong_types_and_enums(raw, body):
    assert_error(raw.post("/runs/crons", json=body), 422)


def test_create_for_thread_rejects_bad_multitask_strategy(raw, make_thread):
    thread = make_thread()
    r = raw.post(f"/threads/{thread['thread_id']}/runs/crons", json=cron_body(multitask_strategy="bogus"))
    assert_error(r, 422)


@pytest.mark.reference_bug("a create without schedule answers 500")
def test_create_without_schedule_is_422(client, raw):
    before = total_crons(client)
    assert_error(raw.post("/runs/crons", json={"assistant_id": GRAPH_ID}), 422)
    assert total_crons(client) == before


@pytest.mark.reference_bug("a create without assistant_id answers 500")
def test_create_without_assistant_is_422(client, raw):
    before = total_crons(client)
    assert_error(raw.post("/runs/crons", json={"schedule": QUIET_SCHEDULE}), 422)
    assert total_crons(client) == before


@pytest.mark.reference_bug("an end_time that is not a date is accepted (and breaks its scheduler)")
def test_create_with_non_date_end_time_is_422(client, raw):
    before = total_crons(client)
    r = raw.post("/runs/crons", json=cron_body(end_time="yesterday"))
    if r.status_code == 200:  # keep the reference usable: remove what it stored
        raw.delete(f"/runs/crons/{r.json()['cron_id']}")
    assert_error(r, 422)
    assert total_crons(client) == before


@pytest.mark.reference_bug("unknown fields are silently stored in the cron's payload")
def test_create_with_unknown_field_is_422(client, raw):
    before = total_crons(client)
    r = raw.post("/runs/crons", json=cron_body(bogus_field=1))
    if r.status_code == 200:
        raw.delete(f"/runs/crons/{r.json()['cron_id']}")
    assert_error(r, 422)
    assert total_crons(client) == before


def test_rejected_creates_change_nothing(client, raw, make_thread):
    thread = make_thread()
    before = total_crons(client)
    json_headers = {"content-type": "application/json"}
    bad = [
        ("/runs/crons", {"json": cron_body(schedule="bad")}),
        ("/runs/crons", {"json": cron_body(timezone="Nowhere/Land")}),
        ("/runs/crons", {"json": cron_body(assistant_id="nope")}),
        ("/runs/crons", {"json": cron_body(on_run_completed="never")}),
        ("/runs/crons", {"json": cron_body(enabled="no")}),
        ("/runs/crons", {"content": b"{", "headers": json_headers}),
        (f"/threads/{thread['thread_id']}/runs/crons", {"json": cron_body(schedule="* *")}),
        (f"/threads/{thread['thread_id']}/runs/crons", {"json": cron_body(multitask_strategy="x")}),
        (f"/threads/{NIL_UUID}/runs/crons", {"json": cron_body()}),
        ("/threads/not-a-uuid/runs/crons", {"json": cron_body()}),
    ]
    for path, kw in bad:
        r = raw.post(path, **kw)
        assert r.status_code in (404, 422), (path, kw, r.status_code, r.text)
    assert total_crons(client) == before


def test_create_answers_200_with_json(raw, make_thread, track_cron):
    r = raw.post("/runs/crons", json=cron_body())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    track_cron(r.json()["cron_id"])
    thread = make_thread()
    r = raw.post(f"/threads/{thread['thread_id']}/runs/crons", json=cron_body())
    assert r.status_code == 200, r.text
    track_cron(r.json()["cron_id"])


def test_body_is_json_whatever_the_content_type(raw, track_cron):
    # curl -d sends application/x-www-form-urlencoded; the body is parsed as JSON anyway.
    r = raw.post("/runs/crons", content=b'{"assistant_id": "agent", "schedule": "0 0 1 1 *"}',
                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    track_cron(r.json()["cron_id"])
    r = raw.post("/runs/crons/count", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 200 and isinstance(r.json(), int)


# ===================================================================== get (raw)


def test_get_by_id(raw, make_cron):
    cron = make_cron()
    assert get_cron(raw, cron["cron_id"]) == cron


def test_get_unknown_and_malformed(raw):
    assert_error(raw.get(f"/runs/crons/{NIL_UUID}"), 404)
    assert_error(raw.get("/runs/crons/not-a-uuid"), 422, "Invalid cron ID: must be a UUID")


def test_unsupported_method_is_405(raw, make_cron):
    cron = make_cron()
    assert_error(raw.put(f"/runs/crons/{cron['cron_id']}", json={"enabled": False}), 405, "Method Not Allowed")


# ===================================================================== update


def test_update_enabled_false(client, raw, make_cron, tag):
    cron = make_cron()
    updated = client.crons.update(cron["cron_id"], enabled=False)
    assert set(updated) == CRON_KEYS
    assert updated["enabled"] is False
    assert updated["payload"] == {**cron["payload"], "enabled": False}
    assert updated["next_run_date"] == cron["next_run_date"]
    assert updated["created_at"] == cron["created_at"]
    assert assert_iso_utc(updated["updated_at"]) > assert_iso_utc(cron["updated_at"])
    for key in ("cron_id", "assistant_id", "thread_id", "schedule", "timezone", "metadata", "on_run_completed", "end_time", "user_id"):
        assert updated[key] == cron[key], key
    assert get_cron(raw, cron["cron_id"]) == updated
    assert [c["cron_id"] for c in client.crons.search(metadata={"suite_tag": tag}, enabled=False)] == [cron["cron_id"]]
    again = client.crons.update(cron["cron_id"], enabled=True)
    assert again["enabled"] is True


def test_update_schedule_recomputes_next_run_date(client, make_cron):
    cron = make_cron(schedule="0 9 * * 1", timezone="Europe/Paris")
    before = now()
    updated = client.crons.update(cron["cron_id"], schedule="45 6 * * *")
    after = now()
    assert updated["schedule"] == "45 6 * * *"
    assert updated["payload"]["schedule"] == "45 6 * * *"
    assert updated["timezone"] == "Europe/Paris"
    assert assert_iso_utc(updated["next_run_date"]) in expected_next_run("45 6 * * *", "Europe/Paris", before, after)


def test_update_timezone_recomputes_next_run_date(client, make_cron):
    cron = make_cron(schedule="0 12 * * *")
    before = now()
    updated = client.crons.update(cron["cron_id"], timezone="America/Los_Angeles")
    after = now()
    assert updated["timezone"] == "America/Los_Angeles"
    assert updated["payload"]["timezone"] == "America/Los_Angeles"
    assert assert_iso_utc(updated["next_run_date"]) in expected_next_run("0 12 * * *", "America/Los_Angeles", before, after)


def test_update_schedule_and_timezone(client, make_cron):
    cron = make_cron()
    before = now()
    updated = client.crons.update(cron["cron_id"], schedule="27 15 * * *", timezone="Europe/Paris")
    after = now()
    assert (updated["schedule"], updated["timezone"]) == ("27 15 * * *", "Europe/Paris")
    assert assert_iso_utc(updated["next_run_date"]) in expected_next_run("27 15 * * *", "Europe/Paris", before, after)


def test_update_metadata_merges(client, make_cron, tag):
    cron = make_cron(metadata={"suite_tag": tag, "a": 1, "b": 1})
    updated = client.crons.update(cron["cron_id"], metadata={"b": 2, "c": 3})
    assert updated["metadata"] == {"suite_tag": tag, "a": 1, "b": 2, "c": 3}
    # ...while the payload's copy is replaced by what the PATCH sent.
    assert updated["payload"]["metadata"] == {"b": 2, "c": 3}


def test_update_end_time_set_and_clear(client, make_cron):
    cron = make_cron()
    end_time = datetime(2097, 3, 4, 5, 6, 7, tzinfo=UTC)
    updated = client.crons.update(cron["cron_id"], end_time=end_time)
    assert updated["end_time"] == "2097-03-04T05:06:07+00:00"
    untouched = client.crons.update(cron["cron_id"], enabled=True)
    assert untouched["end_time"] == "2097-03-04T05:06:07+00:00"
    cleared = client.crons.update(cron["cron_id"], end_time=None)
    assert cleared["end_time"] is None


def test_update_run_fields_go_to_payload(client, make_cron):
    cron = make_cron(input={"messages": [{"role": "user", "content": "old"}]})
    fields = {
        "input": {"messages": [{"role": "user", "content": "new"}]},
        "config": {"configurable": {"k": "v"}},
        "context": {"c": 1},
        "interrupt_before": ["echo"],
        "interrupt_after": "*",
        "on_run_completed": "keep",
        "stream_mode": ["updates"],
        "stream_subgraphs": True,
        "stream_resumable": True,
        "durability": "exit",
    }
    updated = client.crons.update(cron["cron_id"], **fields)
    assert updated["on_run_completed"] == "keep"
    payload = updated["payload"]
    for key, value in fields.items():
        if key != "config":
            assert payload[key] == value, key
    # config is replaced by the PATCH's, and keeps the cron id
    assert payload["config"] == {"configurable": {"k": "v", "cron_id": cron["cron_id"]}}
    assert payload["assistant_id"] == AGENT_ID


def test_update_thread_cron(client, make_thread, make_thread_cron):
    thread = make_thread()
    cron = make_thread_cron(thread["thread_id"], multitask_strategy="reject")
    updated = client.crons.update(cron["cron_id"], enabled=False, schedule="5 4 * * *")
    assert updated["thread_id"] == thread["thread_id"]
    assert updated["on_run_completed"] is None
    assert updated["enabled"] is False
    assert updated["payload"]["multitask_strategy"] == "reject"


def test_update_with_empty_body_is_400(client, raw, make_cron):
    cron = make_cron()
    assert_error(sdk_error(client.crons.update, cron["cron_id"]), 400, "Request body cannot be empty")
    assert_error(raw.patch(f"/runs/crons/{cron['cron_id']}", json={}), 400, "Request body cannot be empty")
    assert get_cron(raw, cron["cron_id"]) == cron


def test_update_unknown_is_404(client):
    response = sdk_error(client.crons.update, NIL_UUID, enabled=False)
    assert_error(response, 404, f"Cron '{NIL_UUID}' not found")


def test_update_malformed_id_is_422(client):
    response = sdk_error(client.crons.update, "not-a-uuid", enabled=False)
    assert_error(response, 422, "Invalid cron ID: must be a UUID")


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"schedule": "nope"}, "schedule:nope"),
        ({"schedule": "61 * * * *", "enabled": False}, "schedule:61 * * * *"),
        ({"timezone": "Nope/Nope"}, "Invalid timezone: 'Nope/Nope'. Use IANA timezone format (e.g. 'America/New_York')."),
        ({"enabled": "no"}, None),
        ({"on_run_completed": "never"}, None),
        ({"metadata": []}, None),
        ({"end_time": 5}, None),
    ],
)
def test_rejected_update_changes_nothing(raw, make_cron, body, detail):
    cron = make_cron()
    r = raw.patch(f"/runs/crons/{cron['cron_id']}", json=body)
    got = assert_error(r, 422)
    if detail is not None and detail.startswith("schedule:"):
        assert_schedule_detail(got, detail.removeprefix("schedule:"))
    elif detail is not None:
        assert got == detail
    assert get_cron(raw, cron["cron_id"]) == cron


def test_update_bad_json_is_422(raw, make_cron):
    cron = make_cron()
    r = raw.patch(f"/runs/crons/{cron['cron_id']}", content=b"{", headers={"content-type": "application/json"})
    assert_error(r, 422, "Invalid JSON in request body")


@pytest.mark.reference_bug("PATCH assistant_id answers 200 and changes nothing")
def test_update_assistant_id_is_rejected(raw, make_cron):
    cron = make_cron()
    r = raw.patch(f"/runs/crons/{cron['cron_id']}", json={"assistant_id": NIL_UUID})
    assert_error(r, 422)


# ===================================================================== delete


def test_delete(client, raw):
    cron = client.crons.create(GRAPH_ID, schedule=QUIET_SCHEDULE)
    assert client.crons.delete(cron["cron_id"]) is None
    assert_error(raw.get(f"/runs/crons/{cron['cron_id']}"), 404)
    assert_error(sdk_error(client.crons.update, cron["cron_id"], enabled=False), 404)
    assert_error(sdk_error(client.crons.delete, cron["cron_id"]), 404)


def test_delete_answers_204_without_body(client, raw):
    cron = client.crons.create(GRAPH_ID, schedule=QUIET_SCHEDULE)
    before = total_crons(client)
    r = raw.delete(f"/runs/crons/{cron['cron_id']}")
    assert r.status_code == 204
    assert r.content == b""
    assert total_crons(client) == before - 1


def test_delete_unknown_and_malformed(client):
    assert_error(sdk_error(client.crons.delete, NIL_UUID), 404)
    assert_error(sdk_error(client.crons.delete, "not-a-uuid"), 422, "Invalid cron ID: must be a UUID")


def test_delete_leaves_the_thread(client, make_thread, make_thread_cron):
    thread = make_thread()
    cron = make_thread_cron(thread["thread_id"])
    client.crons.delete(cron["cron_id"])
    assert client.threads.get(thread["thread_id"])["thread_id"] == thread["thread_id"]


# ===================================================================== search


@pytest.fixture
def three_crons(make_cron, make_thread, make_thread_cron, tag):
    """a: stateless, enabled; b: stateless, end_time, enabled; c: thread cron, disabled.
    Created in that order; next runs a < b < c."""
    thread = make_thread()
    a = make_cron(schedule="0 0 1 1 *", metadata={"suite_tag": tag, "n": 1, "group": "x"})
    b = make_cron(
        schedule="0 0 2 1 *",
        metadata={"suite_tag": tag, "n": 2, "group": "x"},
        end_time=datetime(2099, 1, 1, tzinfo=UTC),
    )
    c = make_thread_cron(
        thread["thread_id"], schedule="0 0 3 1 *", metadata={"suite_tag": tag, "n": 3}, enabled=False
    )
    return {"a": a, "b": b, "c": c, "thread": thread}


def _names(found, crons):
    by_id = {c["cron_id"]: name for name, c in crons.items() if name != "thread"}
    return [by_id.get(c.get("cron_id"), c.get("cron_id")) for c in found]


def test_search_returns_full_crons(client, three_crons, tag):
    found = client.crons.search(metadata={"suite_tag": tag})
    assert len(found) == 3
    for cron in found:
        assert set(cron) == CRON_KEYS
    assert {c["cron_id"]: c for c in found} == {
        c["cron_id"]: c for k, c in three_crons.items() if k != "thread"
    }


def test_search_default_order_is_created_at_desc(client, three_crons, tag):
    assert _names(client.crons.search(metadata={"suite_tag": tag}), three_crons) == ["c", "b", "a"]
    # sort_order without sort_by does not change it
    assert _names(client.crons.search(metadata={"suite_tag": tag}, sort_order="asc"), three_crons) == ["c", "b", "a"]


def test_search_filters(client, three_crons, tag):
    def names(**kw):
        return _names(client.crons.search(**kw), three_crons)

    mine = {"metadata": {"suite_tag": tag}}
    assert names(**mine, enabled=True) == ["b", "a"]
    assert names(**mine, enabled=False) == ["c"]
    assert names(**mine, thread_id=three_crons["thread"]["thread_id"]) == ["c"]
    assert names(thread_id=three_crons["thread"]["thread_id"]) == ["c"]
    assert names(**mine, assistant_id=AGENT_ID) == ["c", "b", "a"]
    assert names(metadata={"suite_tag": tag, "group": "x"}) == ["b", "a"]
    assert names(metadata={"suite_tag": tag, "n": 3}) == ["c"]
    assert names(metadata={"suite_tag": tag, "n": 4}) == []
    assert names(**mine, assistant_id=NIL_UUID) == []
    assert names(**mine, thread_id=NIL_UUID) == []
    assert names(**mine, assistant_id=AGENT_ID, enabled=False, thread_id=three_crons["thread"]["thread_id"]) == ["c"]


def test_search_by_graph_name_is_rejected(client):
    # Only creates resolve a graph name; search and count want the assistant's UUID.
    assert_error(sdk_error(client.crons.search, assistant_id=GRAPH_ID), 422, "Invalid assistant ID: must be a UUID")
    assert_error(sdk_error(client.crons.count, assistant_id=GRAPH_ID), 422, "Invalid assistant ID: must be a UUID")


def test_search_malformed_thread_id_is_422(client):
    assert_error(sdk_error(client.crons.search, thread_id="not-a-uuid"), 422, "Invalid thread ID: must be a UUID")
    assert_error(sdk_error(client.crons.count, thread_id="not-a-uuid"), 422, "Invalid thread ID: must be a UUID")


def test_search_limit_offset(client, three_crons, tag):
    def names(**kw):
        return _names(client.crons.search(metadata={"suite_tag": tag}, **kw), three_crons)

    assert names(limit=1) == ["c"]
    assert names(limit=2) == ["c", "b"]
    assert names(limit=1, offset=1) == ["b"]
    assert names(limit=2, offset=1) == ["b", "a"]
    assert names(offset=2) == ["a"]
    assert names(offset=3) == []
    assert names(offset=100) == []
    assert names(limit=1000) == ["c", "b", "a"]


def test_search_pagination_headers(raw, three_crons, tag):
    body = {"metadata": {"suite_tag": tag}}
    r = raw.post("/runs/crons/search", json={**body, "limit": 2})
    assert r.status_code == 200 and len(r.json()) == 2
    assert r.headers.get("x-pagination-next") == "2"
    assert r.headers.get("x-pagination-total") == "3"
    r = raw.post("/runs/crons/search", json={**body, "limit": 2, "offset": 2})
    assert len(r.json()) == 1
    assert "x-pagination-next" not in r.headers
    assert r.headers.get("x-pagination-total") == "3"
    r = raw.post("/runs/crons/search", json={**body, "limit": 3})
    assert "x-pagination-next" not in r.headers
    assert r.headers.get("x-pagination-total") == "3"


@pytest.mark.parametrize(
    "sort_by, asc",
    [
        ("created_at", ["a", "b", "c"]),
        ("updated_at", ["a", "b", "c"]),
        ("next_run_date", ["a", "b", "c"]),
    ],
)
def test_search_sort_by_time(client, three_crons, tag, sort_by, asc):
    def names(**kw):
        return _names(client.crons.search(metadata={"suite_tag": tag}, sort_by=sort_by, **kw), three_crons)

    assert names(sort_order="asc") == asc
    assert names(sort_order="desc") == asc[::-1]
    assert names() == asc[::-1], "sort_by without sort_order is descending"


def test_search_sort_by_updated_at_follows_updates(client, three_crons, tag):
    client.crons.update(three_crons["a"]["cron_id"], metadata={"touched": True})
    found = client.crons.search(metadata={"suite_tag": tag}, sort_by="updated_at", sort_order="desc")
    assert _names(found, three_crons) == ["a", "c", "b"]


def test_search_sort_by_cron_id(client, three_crons, tag):
    ids = sorted(c["cron_id"] for k, c in three_crons.items() if k != "thread")
    found = client.crons.search(metadata={"suite_tag": tag}, sort_by="cron_id", sort_order="asc")
    assert [c["cron_id"] for c in found] == ids
    found = client.crons.search(metadata={"suite_tag": tag}, sort_by="cron_id", sort_order="desc")
    assert [c["cron_id"] for c in found] == ids[::-1]


def test_search_sort_by_thread_id_puts_stateless_last_ascending(client, three_crons, tag):
    asc = _names(client.crons.search(metadata={"suite_tag": tag}, sort_by="thread_id", sort_order="asc"), three_crons)
    assert asc[0] == "c" and sorted(asc[1:]) == ["a", "b"]
    desc = _names(client.crons.search(metadata={"suite_tag": tag}, sort_by="thread_id", sort_order="desc"), three_crons)
    assert desc[-1] == "c" and sorted(desc[:-1]) == ["a", "b"]


def test_search_sort_by_assistant_id(client, three_crons, tag):
    found = client.crons.search(metadata={"suite_tag": tag}, sort_by="assistant_id", sort_order="asc")
    assert sorted(_names(found, three_crons)) == ["a", "b", "c"]


@pytest.mark.reference_bug("sort_by end_time answers 500 when some crons have no end_time")
def test_search_sort_by_end_time_with_nulls(client, three_crons, tag):
    # Missing values sort as the largest, as thread_id does (cronhook's choice; the
    # reference cannot sort these at all).
    asc = _names(client.crons.search(metadata={"suite_tag": tag}, sort_by="end_time", sort_order="asc"), three_crons)
    assert asc[0] == "b" and sorted(asc[1:]) == ["a", "c"]
    desc = _names(client.crons.search(metadata={"suite_tag": tag}, sort_by="end_time", sort_order="desc"), three_crons)
    assert sorted(desc[:2]) == ["a", "c"] and desc[2] == "b"


def test_search_sort_by_end_time_all_set(client, make_cron, tag):
    early = make_cron(end_time=datetime(2090, 1, 1, tzinfo=UTC))
    late = make_cron(end_time=datetime(2095, 1, 1, tzinfo=UTC))
    found = client.crons.search(metadata={"suite_tag": tag}, sort_by="end_time", sort_order="asc")
    assert [c["cron_id"] for c in found] == [early["cron_id"], late["cron_id"]]
    found = client.crons.search(metadata={"suite_tag": tag}, sort_by="end_time", sort_order="desc")
    assert [c["cron_id"] for c in found] == [late["cron_id"], early["cron_id"]]


def test_search_select(client, three_crons, tag):
    found = client.crons.search(metadata={"suite_tag": tag}, select=["cron_id", "enabled"], limit=1)
    assert found == [{"cron_id": three_crons["c"]["cron_id"], "enabled": False}]
    found = client.crons.search(metadata={"suite_tag": tag}, select=["schedule", "thread_id", "next_run_date"])
    assert [set(c) for c in found] == [{"schedule", "thread_id", "next_run_date"}] * 3
    assert [c["schedule"] for c in found] == ["0 0 3 1 *", "0 0 2 1 *", "0 0 1 1 *"]
    found = client.crons.search(metadata={"suite_tag": tag}, select=CRON_SELECT_FIELDS)
    assert all(set(c) == CRON_KEYS for c in found)


def test_search_select_now_is_rejected(client):
    # The SDK's CronSelectField lists "now", the server does not accept it.
    assert_error(sdk_error(client.crons.search, select=["cron_id", "now"]), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 1001},
        {"limit": -5},
        {"offset": -1},
        {"limit": "ten"},
        {"enabled": "yes"},
        {"sort_by": "bogus"},
        {"sort_by": "schedule"},
        {"sort_order": "sideways"},
        {"select": ["bogus"]},
        {"select": "cron_id"},
        {"metadata": "not-an-object"},
        {"assistant_id": "not-a-uuid"},
        {"thread_id": "not-a-uuid"},
        {"assistant_id": None},
        {"metadata": None},
        {"limit": True},
    ],
)
def test_search_rejects_bad_parameters(raw, body):
    assert_error(raw.post("/runs/crons/search", json=body), 422)


def test_search_accepts_limit_bounds(raw):
    for limit in (1, 1000):
        r = raw.post("/runs/crons/search", json={"limit": limit})
        assert r.status_code == 200, r.text
        assert isinstance(r.json(), list) and len(r.json()) <= limit


# ===================================================================== count


def test_count(client, three_crons, tag):
    assert client.crons.count(metadata={"suite_tag": tag}) == 3
    assert client.crons.count(metadata={"suite_tag": tag, "group": "x"}) == 2
    assert client.crons.count(metadata={"suite_tag": tag}, assistant_id=AGENT_ID) == 3
    assert client.crons.count(metadata={"suite_tag": tag}, assistant_id=NIL_UUID) == 0
    assert client.crons.count(thread_id=three_crons["thread"]["thread_id"]) == 1
    assert client.crons.count(metadata={"suite_tag": "no-such-tag"}) == 0
    total = client.crons.count()
    assert isinstance(total, int) and total >= 3


def test_count_body_is_a_bare_integer_and_ignores_enabled(raw, three_crons, tag):
    r = raw.post("/runs/crons/count", json={"metadata": {"suite_tag": tag}})
    assert r.status_code == 200 and r.json() == 3
    r = raw.post("/runs/crons/count", json={"metadata": {"suite_tag": tag}, "enabled": False})
    assert r.status_code == 200 and r.json() == 3


@pytest.mark.parametrize("body", [{"metadata": "x"}, {"assistant_id": 5}, {"thread_id": "not-a-uuid"}])
def test_count_rejects_bad_parameters(raw, body):
    assert_error(raw.post("/runs/crons/count", json=body), 422)


def test_count_matches_search(client, three_crons, tag):
    assert client.crons.count(metadata={"suite_tag": tag}) == len(client.crons.search(metadata={"suite_tag": tag}, limit=1000))

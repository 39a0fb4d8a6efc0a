"""client.threads: create, get, update, delete, search, count, get_state.

Not covered: copy, get_history, update_state, join_stream, stream, prune (runs and
checkpoints are outside this suite).
"""

from __future__ import annotations

import uuid

import pytest

from conftest import (
    GRAPH_ID,
    NIL_UUID,
    THREAD_KEYS,
    assert_error,
    assert_iso_utc,
    assert_uuid,
    sdk_error,
)

FRESH_STATE = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


def assert_fresh_thread(t: dict, metadata: dict) -> None:
    assert set(t) == THREAD_KEYS
    assert_uuid(t["thread_id"])
    assert t["metadata"] == metadata
    assert t["status"] == "idle"
    assert t["config"] == {}
    assert t["values"] is None
    created = assert_iso_utc(t["created_at"])
    assert assert_iso_utc(t["updated_at"]) == created
    assert assert_iso_utc(t["state_updated_at"]) == created


# --------------------------------------------------------------------- create


def test_create_without_anything(client, raw):
    t = client.threads.create()
    try:
        assert_fresh_thread(t, {})
    finally:
        raw.delete(f"/threads/{t['thread_id']}")


def test_create_with_metadata(make_thread, tag):
    metadata = {"suite_tag": tag, "n": 1, "nested": {"a": [1, 2]}, "none": None}
    t = make_thread(metadata=metadata)
    assert_fresh_thread(t, metadata)


def test_create_with_thread_id(make_thread, tag):
    thread_id = str(uuid.uuid4())
    t = make_thread(thread_id=thread_id)
    assert t["thread_id"] == thread_id
    assert_fresh_thread(t, {"suite_tag": tag})


@pytest.mark.parametrize("if_exists", [None, "raise"])
def test_create_existing_id_raises_409(client, make_thread, tag, if_exists):
    t = make_thread()
    kwargs = {"thread_id": t["thread_id"], "metadata": {"other": 1}}
    if if_exists:
        kwargs["if_exists"] = if_exists
    response = sdk_error(client.threads.create, **kwargs)
    assert_error(response, 409, f"Thread with ID {t['thread_id']} already exists")
    assert client.threads.get(t["thread_id"])["metadata"] == {"suite_tag": tag}


def test_create_existing_id_do_nothing_returns_the_existing_thread(client, make_thread):
    t = make_thread()
    again = client.threads.create(thread_id=t["thread_id"], metadata={"other": 1}, if_exists="do_nothing")
    assert again == t


def test_create_do_nothing_on_a_new_id_creates(client, raw, tag):
    thread_id = str(uuid.uuid4())
    t = client.threads.create(thread_id=thread_id, metadata={"suite_tag": tag}, if_exists="do_nothing")
    try:
        assert t["thread_id"] == thread_id
        assert_fresh_thread(t, {"suite_tag": tag})
    finally:
        raw.delete(f"/threads/{thread_id}")


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"thread_id": "not-a-uuid"}, "Invalid thread ID: must be a UUID"),
        ({"if_exists": "bogus"}, None),
        ({"metadata": "not-an-object"}, None),
        ({"metadata": ["a"]}, None),
    ],
)
def test_create_rejects_bad_body(raw, body, detail):
    assert_error(raw.post("/threads", json=body), 422, detail)


@pytest.mark.parametrize("content", [b"{not json", b""])
def test_create_rejects_bad_json(raw, content):
    r = raw.post("/threads", content=content, headers={"content-type": "application/json"})
    assert_error(r, 422, "Invalid JSON in request body")


def test_rejected_creates_change_nothing(client, raw, make_thread):
    existing = make_thread()
    before = client.threads.count()
    bad = [
        {"json": {"thread_id": "not-a-uuid"}},
        {"json": {"if_exists": "bogus"}},
        {"json": {"metadata": 5}},
        {"json": {"thread_id": existing["thread_id"]}},
        {"content": b"{", "headers": {"content-type": "application/json"}},
    ]
    for kw in bad:
        assert raw.post("/threads", **kw).status_code in (409, 422)
    assert client.threads.count() == before


# ------------------------------------------------------------------------ get


def test_get(client, make_thread):
    t = make_thread()
    assert client.threads.get(t["thread_id"]) == t


def test_get_unknown_is_404(client):
    assert_error(sdk_error(client.threads.get, NIL_UUID), 404, f"Thread with ID {NIL_UUID} not found")


def test_get_malformed_id_is_422(client):
    assert_error(sdk_error(client.threads.get, "not-a-uuid"), 422, "Invalid thread ID: must be a UUID")


# --------------------------------------------------------------------- update


def test_update_merges_metadata(client, make_thread, tag):
    t = make_thread(metadata={"suite_tag": tag, "a": 1, "b": 1})
    u = client.threads.update(t["thread_id"], metadata={"b": 2, "c": 3})
    assert set(u) == THREAD_KEYS
    assert u["thread_id"] == t["thread_id"]
    assert u["metadata"] == {"suite_tag": tag, "a": 1, "b": 2, "c": 3}
    assert u["created_at"] == t["created_at"]
    assert u["state_updated_at"] == t["state_updated_at"]
    assert assert_iso_utc(u["updated_at"]) > assert_iso_utc(t["updated_at"])
    assert u["status"] == "idle" and u["values"] is None and u["config"] == {}
    assert client.threads.get(t["thread_id"]) == u


def test_update_null_value_is_stored_not_removed(client, make_thread, tag):
    t = make_thread(metadata={"suite_tag": tag, "a": 1})
    u = client.threads.update(t["thread_id"], metadata={"a": None})
    assert u["metadata"] == {"suite_tag": tag, "a": None}


def test_update_return_minimal_is_204(client, raw, make_thread, tag):
    t = make_thread()
    assert client.threads.update(t["thread_id"], metadata={"x": 1}, return_minimal=True) is None
    assert client.threads.get(t["thread_id"])["metadata"] == {"suite_tag": tag, "x": 1}
    r = raw.patch(f"/threads/{t['thread_id']}", json={"metadata": {"y": 1}}, headers={"Prefer": "return=minimal"})
    assert r.status_code == 204 and r.content == b""


def test_update_with_empty_body_is_accepted(raw, make_thread, tag):
    # Unlike PATCH /runs/crons/{id}, an empty thread PATCH is a 200 (it only touches updated_at).
    t = make_thread()
    r = raw.patch(f"/threads/{t['thread_id']}", json={})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"] == {"suite_tag": tag}


def test_update_unknown_is_404(client):
    assert_error(sdk_error(client.threads.update, NIL_UUID, metadata={"a": 1}), 404)


def test_update_malformed_id_is_422(client):
    response = sdk_error(client.threads.update, "not-a-uuid", metadata={"a": 1})
    assert_error(response, 422, "Invalid thread ID: must be a UUID")


def test_update_rejects_bad_metadata(raw, make_thread, tag):
    t = make_thread()
    assert_error(raw.patch(f"/threads/{t['thread_id']}", json={"metadata": "x"}), 422)
    r = raw.patch(f"/threads/{t['thread_id']}", content=b"{", headers={"content-type": "application/json"})
    assert_error(r, 422, "Invalid JSON in request body")
    assert raw.get(f"/threads/{t['thread_id']}").json()["metadata"] == {"suite_tag": tag}


# --------------------------------------------------------------------- delete


def test_delete(client, raw, tag):
    t = client.threads.create(metadata={"suite_tag": tag})
    assert client.threads.delete(t["thread_id"]) is None
    assert_error(sdk_error(client.threads.get, t["thread_id"]), 404)
    assert_error(sdk_error(client.threads.delete, t["thread_id"]), 404, f"Thread with ID {t['thread_id']} not found")


def test_delete_answers_204_without_body(client, raw, tag):
    t = client.threads.create(metadata={"suite_tag": tag})
    r = raw.delete(f"/threads/{t['thread_id']}")
    assert r.status_code == 204
    assert r.content == b""


def test_delete_malformed_id_is_422(client):
    assert_error(sdk_error(client.threads.delete, "not-a-uuid"), 422, "Invalid thread ID: must be a UUID")


def test_delete_removes_the_threads_crons(client, raw, tag):
    t = client.threads.create(metadata={"suite_tag": tag})
    cron = client.crons.create_for_thread(t["thread_id"], GRAPH_ID, schedule="0 0 1 1 *")
    assert client.crons.count(thread_id=t["thread_id"]) == 1
    client.threads.delete(t["thread_id"])
    assert client.crons.count(thread_id=t["thread_id"]) == 0
    assert_error(raw.patch(f"/runs/crons/{cron['cron_id']}", json={"enabled": False}), 404)


# --------------------------------------------------------------------- search


def test_search_by_metadata(client, make_thread, tag):
    a = make_thread(metadata={"suite_tag": tag, "kind": "a", "extra": 1})
    b = make_thread(metadata={"suite_tag": tag, "kind": "b"})
    found = client.threads.search(metadata={"suite_tag": tag})
    assert {t["thread_id"] for t in found} == {a["thread_id"], b["thread_id"]}
    for t in found:
        assert set(t) == THREAD_KEYS
    # Containment: every given pair must match, other keys are free.
    assert [t["thread_id"] for t in client.threads.search(metadata={"suite_tag": tag, "kind": "a"})] == [a["thread_id"]]
    assert client.threads.search(metadata={"suite_tag": tag, "kind": "c"}) == []


def test_search_by_status(client, make_thread, tag):
    t = make_thread()
    assert [x["thread_id"] for x in client.threads.search(metadata={"suite_tag": tag}, status="idle")] == [t["thread_id"]]
    for status in ("busy", "interrupted", "error"):
        assert client.threads.search(metadata={"suite_tag": tag}, status=status) == []


def test_search_by_ids(client, make_thread):
    a = make_thread()
    make_thread()
    assert [t["thread_id"] for t in client.threads.search(ids=[a["thread_id"]])] == [a["thread_id"]]


def test_search_default_order_is_updated_at_desc(client, make_thread, tag):
    t1, t2, t3 = (make_thread() for _ in range(3))
    client.threads.update(t1["thread_id"], metadata={"touched": True})
    ids = [t["thread_id"] for t in client.threads.search(metadata={"suite_tag": tag})]
    assert ids == [t1["thread_id"], t3["thread_id"], t2["thread_id"]]
    # sort_order alone does not change the default order
    ids_asc = [t["thread_id"] for t in client.threads.search(metadata={"suite_tag": tag}, sort_order="asc")]
    assert ids_asc == ids


def test_search_sort(client, make_thread, tag):
    threads = [make_thread(thread_id=str(uuid.uuid4())) for _ in range(3)]
    by_creation = [t["thread_id"] for t in threads]
    by_id = sorted(by_creation)

    def ids(**kw):
        return [t["thread_id"] for t in client.threads.search(metadata={"suite_tag": tag}, **kw)]

    assert ids(sort_by="created_at", sort_order="asc") == by_creation
    assert ids(sort_by="created_at", sort_order="desc") == by_creation[::-1]
    assert ids(sort_by="created_at") == by_creation[::-1], "sort_by without sort_order is descending"
    assert ids(sort_by="thread_id", sort_order="asc") == by_id
    assert ids(sort_by="thread_id", sort_order="desc") == by_id[::-1]
    assert ids(sort_by="updated_at", sort_order="asc") == by_creation
    assert ids(sort_by="state_updated_at", sort_order="asc") == by_creation
    assert sorted(ids(sort_by="status")) == by_id


def test_search_limit_offset(client, make_thread, tag):
    threads = [make_thread() for _ in range(3)]
    newest_first = [t["thread_id"] for t in reversed(threads)]

    def ids(**kw):
        return [t["thread_id"] for t in client.threads.search(metadata={"suite_tag": tag}, **kw)]

    assert ids() == newest_first
    assert ids(limit=2) == newest_first[:2]
    assert ids(limit=2, offset=2) == newest_first[2:]
    assert ids(limit=1, offset=1) == newest_first[1:2]
    assert ids(offset=3) == []
    assert ids(limit=1000) == newest_first


def test_search_pagination_headers(raw, make_thread, tag):
    for _ in range(3):
        make_thread()
    body = {"metadata": {"suite_tag": tag}}
    r = raw.post("/threads/search", json={**body, "limit": 2})
    assert r.status_code == 200 and len(r.json()) == 2
    assert r.headers.get("x-pagination-next") == "2"
    assert r.headers.get("x-pagination-total") == "3"
    r = raw.post("/threads/search", json={**body, "limit": 2, "offset": 2})
    assert len(r.json()) == 1
    assert "x-pagination-next" not in r.headers
    assert r.headers.get("x-pagination-total") == "3"


def test_search_select(client, make_thread, tag):
    t = make_thread()
    found = client.threads.search(metadata={"suite_tag": tag}, select=["thread_id", "status", "metadata"])
    assert found == [{"thread_id": t["thread_id"], "status": "idle", "metadata": {"suite_tag": tag}}]
    found = client.threads.search(metadata={"suite_tag": tag}, select=["state_updated_at", "values", "config"])
    assert found == [{"state_updated_at": t["state_updated_at"], "values": None, "config": {}}]
    # Threads carry no `interrupts` key, so selecting it adds nothing.
    found = client.threads.search(metadata={"suite_tag": tag}, select=["interrupts", "thread_id"])
    assert found == [{"thread_id": t["thread_id"]}]


def test_search_select_context_is_rejected(client):
    # The SDK's ThreadSelectField lists "context"; the server does not accept it.
    assert_error(sdk_error(client.threads.search, select=["thread_id", "context"]), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"limit": "ten"},
        {"status": "bogus"},
        {"sort_by": "bogus"},
        {"sort_order": "sideways"},
        {"select": ["bogus"]},
        {"metadata": "not-an-object"},
        {"ids": "not-a-list"},
    ],
)
def test_search_rejects_bad_parameters(raw, body):
    assert_error(raw.post("/threads/search", json=body), 422)


@pytest.mark.reference_bug("a malformed UUID in `ids` answers 400 'Invalid thread ID not-a-uuid', not 422")
def test_search_malformed_ids_is_422(raw):
    assert_error(raw.post("/threads/search", json={"ids": ["not-a-uuid"]}), 422)


def test_search_rejects_bad_json(raw):
    r = raw.post("/threads/search", content=b"[", headers={"content-type": "application/json"})
    assert_error(r, 422, "Invalid JSON in request body")


# ---------------------------------------------------------------------- count


def test_count(client, make_thread, tag):
    assert client.threads.count(metadata={"suite_tag": tag}) == 0
    make_thread(metadata={"suite_tag": tag, "k": 1})
    make_thread(metadata={"suite_tag": tag, "k": 2})
    assert client.threads.count(metadata={"suite_tag": tag}) == 2
    assert client.threads.count(metadata={"suite_tag": tag, "k": 1}) == 1
    assert client.threads.count(metadata={"suite_tag": tag}, status="idle") == 2
    assert client.threads.count(metadata={"suite_tag": tag}, status="busy") == 0
    total = client.threads.count()
    assert isinstance(total, int) and total >= 2


def test_count_rejects_bad_status(raw):
    assert_error(raw.post("/threads/count", json={"status": "bogus"}), 422)


# ------------------------------------------------------------------ get_state


def test_get_state_of_a_fresh_thread(client, make_thread):
    t = make_thread()
    assert client.threads.get_state(t["thread_id"]) == FRESH_STATE


def test_get_state_unknown_and_malformed(client):
    assert_error(sdk_error(client.threads.get_state, NIL_UUID), 404, f"Thread with ID {NIL_UUID} not found")
    assert_error(sdk_error(client.threads.get_state, "not-a-uuid"), 422, "Invalid thread ID: must be a UUID")

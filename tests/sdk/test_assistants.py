"""client.assistants: the read methods (search, count, get, get_versions).

Not covered: get_graph, get_schemas and get_subgraphs (they need graph introspection
of a Python graph), and the write methods (create, update, delete, set_latest).
The server has exactly one assistant, the system one for graph "agent".
"""

from __future__ import annotations

import uuid

import pytest

from conftest import (
    AGENT_ID,
    ASSISTANT_KEYS,
    GRAPH_ID,
    NIL_UUID,
    assert_error,
    assert_iso_utc,
    assert_uuid,
    sdk_error,
)


def _agent(client) -> dict:
    found = client.assistants.search(graph_id=GRAPH_ID)
    assert len(found) == 1, found
    return found[0]


def test_system_assistant_id_is_uuid5_of_graph_name(client):
    assert AGENT_ID == str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "agent"))
    assert AGENT_ID == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    assert _agent(client)["assistant_id"] == AGENT_ID


def test_assistant_shape(client):
    a = _agent(client)
    assert set(a) == ASSISTANT_KEYS
    assert_uuid(a["assistant_id"])
    assert a["graph_id"] == GRAPH_ID
    assert a["name"] == GRAPH_ID
    assert a["config"] == {}
    assert a["context"] == {}
    assert a["metadata"] == {"created_by": "system"}
    assert a["version"] == 1 and isinstance(a["version"], int)
    assert a["description"] is None
    created = assert_iso_utc(a["created_at"])
    updated = assert_iso_utc(a["updated_at"])
    assert updated >= created


def test_search_without_filters_lists_the_agent(client):
    found = client.assistants.search()
    assert AGENT_ID in [a["assistant_id"] for a in found]
    for a in found:
        assert set(a) == ASSISTANT_KEYS


@pytest.mark.parametrize(
    "kwargs, hit",
    [
        ({"graph_id": GRAPH_ID}, True),
        ({"name": GRAPH_ID}, True),
        ({"name": "no-such-name"}, False),
        ({"metadata": {"created_by": "system"}}, True),
        ({"metadata": {"created_by": "someone-else"}}, False),
        ({"metadata": {"created_by": "system"}, "graph_id": GRAPH_ID, "name": GRAPH_ID}, True),
    ],
)
def test_search_filters(client, kwargs, hit):
    ids = [a["assistant_id"] for a in client.assistants.search(**kwargs)]
    assert (AGENT_ID in ids) is hit, (kwargs, ids)


def test_search_limit_offset(client):
    assert [a["assistant_id"] for a in client.assistants.search(graph_id=GRAPH_ID, limit=1)] == [AGENT_ID]
    assert client.assistants.search(graph_id=GRAPH_ID, offset=1) == []
    assert client.assistants.search(graph_id=GRAPH_ID, limit=1000) != []


@pytest.mark.parametrize("sort_by", ["assistant_id", "graph_id", "name", "created_at", "updated_at"])
@pytest.mark.parametrize("sort_order", ["asc", "desc", None])
def test_search_sort_fields_accepted(client, sort_by, sort_order):
    found = client.assistants.search(graph_id=GRAPH_ID, sort_by=sort_by, sort_order=sort_order)
    assert [a["assistant_id"] for a in found] == [AGENT_ID]


def test_search_select(client):
    found = client.assistants.search(graph_id=GRAPH_ID, select=["assistant_id", "name"])
    assert found == [{"assistant_id": AGENT_ID, "name": GRAPH_ID}]
    every = sorted(ASSISTANT_KEYS)
    found = client.assistants.search(graph_id=GRAPH_ID, select=every)
    assert set(found[0]) == ASSISTANT_KEYS


def test_search_object_format_has_no_next_on_last_page(client):
    page = client.assistants.search(graph_id=GRAPH_ID, limit=1, response_format="object")
    assert set(page) == {"assistants", "next"}
    assert [a["assistant_id"] for a in page["assistants"]] == [AGENT_ID]
    assert page["next"] is None


def test_search_pagination_header(raw):
    r = raw.post("/assistants/search", json={"graph_id": GRAPH_ID, "limit": 1})
    assert r.status_code == 200
    assert r.headers.get("x-pagination-total") == "1"
    assert "x-pagination-next" not in r.headers


def test_count(client):
    total = client.assistants.count()
    assert isinstance(total, int) and total >= 1
    assert client.assistants.count(graph_id=GRAPH_ID) == 1
    assert client.assistants.count(name=GRAPH_ID) == 1
    assert client.assistants.count(metadata={"created_by": "system"}) >= 1
    assert client.assistants.count(metadata={"created_by": "someone-else"}) == 0


def test_count_body_is_a_bare_integer(raw):
    r = raw.post("/assistants/count", json={})
    assert r.status_code == 200
    assert isinstance(r.json(), int)


def test_get(client):
    a = client.assistants.get(AGENT_ID)
    assert set(a) == ASSISTANT_KEYS
    assert a == _agent(client)


def test_get_by_graph_name_is_rejected(client):
    # GET /assistants/{id} wants a UUID; the graph name is accepted only where a run or
    # cron names its assistant.
    assert_error(sdk_error(client.assistants.get, GRAPH_ID), 422, "Invalid assistant ID: must be a UUID")


def test_get_unknown_and_malformed(client):
    assert_error(sdk_error(client.assistants.get, NIL_UUID), 404)
    assert_error(sdk_error(client.assistants.get, "not-a-uuid"), 422, "Invalid assistant ID: must be a UUID")


def test_get_versions(client):
    versions = client.assistants.get_versions(AGENT_ID)
    assert len(versions) == 1
    v = versions[0]
    assert set(v) == ASSISTANT_KEYS - {"updated_at"}
    assert v["assistant_id"] == AGENT_ID
    assert v["version"] == 1
    assert v["graph_id"] == GRAPH_ID
    assert v["name"] == GRAPH_ID
    assert v["metadata"] == {"created_by": "system"}
    assert v["config"] == {} and v["context"] == {}
    assert v["description"] is None
    assert v["created_at"] == client.assistants.get(AGENT_ID)["created_at"]


@pytest.mark.parametrize("method", ["search", "count"])
def test_unknown_graph_id_is_404(client, method):
    response = sdk_error(getattr(client.assistants, method), graph_id="no-such-graph")
    assert_error(response, 404, "Graph 'no-such-graph' not found. Expected one of: ['agent']")


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"limit": "ten"},
        {"sort_by": "bogus"},
        {"sort_order": "sideways"},
        {"select": ["bogus"]},
        {"metadata": "not-an-object"},
    ],
)
def test_search_rejects_bad_parameters(raw, body):
    assert_error(raw.post("/assistants/search", json=body), 422)


def test_search_rejects_bad_json(raw):
    r = raw.post("/assistants/search", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 422, "Invalid JSON in request body")

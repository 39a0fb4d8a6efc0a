"""schemathesis hooks for cronhook: every error answer must be LangGraph's JSON
`{"detail": "..."}` (loaded through SCHEMATHESIS_HOOKS by scripts/schemathesis.sh)."""
import schemathesis


@schemathesis.check
def error_is_json_detail(ctx, response, case):
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except Exception as err:  # noqa: BLE001 - any parse failure is the finding
        raise AssertionError(f"{response.status_code} answer is not JSON: {err}") from None
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str):
        raise AssertionError(f"{response.status_code} answer has no string 'detail': {body!r}")
    return None


#: The longest `after_seconds` a generated run may ask for. A run may be delayed for as long
#: as it asks, and a wait, join or stream on it (or on a run queued behind it on its thread)
#: lasts that long; its heartbeats keep the client's read timeout from firing.
MAX_AFTER_SECONDS = 1


def _bounded(body):
    if isinstance(body, dict):
        delay = body.get("after_seconds")
        if isinstance(delay, (int, float)) and not isinstance(delay, bool) and delay > MAX_AFTER_SECONDS:
            body["after_seconds"] = MAX_AFTER_SECONDS
    elif isinstance(body, list):
        for item in body:
            _bounded(item)


@schemathesis.hook
def before_call(context, case, kwargs):
    """Keeps generated runs' delays short (see MAX_AFTER_SECONDS)."""
    _bounded(case.body)

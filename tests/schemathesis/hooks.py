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

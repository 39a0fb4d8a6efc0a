#!/usr/bin/env python3
"""croniter oracle for cronhook's property test (tests/it/schedule_vs_croniter.rs).

Long-running: reads one JSON request per line on stdin and writes one JSON
response per line on stdout, in the same order, flushing after each line.

Request:  {"expr": "*/5 * * * *", "tz": "Europe/Paris" | null,
           "start": "2025-03-30T00:59:00Z", "count": 5}
Response (croniter accepted the expression):
          {"ok": true, "fixed": bool, "times": ["2025-03-30T01:00:00Z", ...],
           "exhausted": bool}
   "times" holds up to `count` instants in UTC from
   croniter(expr, start_in_tz).get_next(datetime), called repeatedly.
   "exhausted" is true when get_next raised CroniterBadDateError (croniter found
   no next date within its 50-year window) before `count` instants were made.
   "fixed" is true when croniter expanded the second (6-field form only),
   minute and hour fields to exactly one value each (a "fixed-time" schedule).
Response (croniter rejected the expression):
          {"ok": false, "error": "<exception class>", "message": "..."}

The first line written, before any request is read, is a greeting:
          {"oracle": "croniter", "croniter": "<version>"}

croniter is called with its defaults (second_at_beginning=False, so a 6th field
is seconds at the END; day_or=True; no hash_id), as LangGraph calls it.
"""

import json
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter


def _utc(dt: datetime) -> str:
    dt = dt.astimezone(timezone.utc)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fixed(expanded) -> bool:
    fields = [0, 1] + ([5] if len(expanded) > 5 else [])
    return all(len(expanded[i]) == 1 and expanded[i][0] != "*" for i in fields)


def handle(req: dict) -> dict:
    tz = ZoneInfo(req.get("tz") or "UTC")
    start = datetime.fromisoformat(req["start"].replace("Z", "+00:00")).astimezone(tz)
    try:
        it = croniter(req["expr"], start)
    except Exception as exc:  # croniter signals every bad expression with an exception
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    times = []
    exhausted = False
    for _ in range(int(req.get("count", 1))):
        try:
            times.append(_utc(it.get_next(datetime)))
        except CroniterBadDateError:
            exhausted = True
            break
    return {"ok": True, "fixed": _fixed(it.expanded), "times": times, "exhausted": exhausted}


def main() -> None:
    out = sys.stdout
    out.write(json.dumps({"oracle": "croniter", "croniter": version("croniter")}) + "\n")
    out.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            resp = handle(json.loads(line))
        except Exception as exc:  # a broken request must not kill the oracle
            resp = {"ok": False, "error": "OracleError", "message": repr(exc), "oracle_error": True}
        out.write(json.dumps(resp) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

"""Fire lateness of the reference server (`langgraph dev`), through the official SDK: N minute
crons on their own threads, then each run's start (created_at) against the minute it was
scheduled for. Usage: reference_fires.py URL N"""
import json
import statistics
import sys
import time
from datetime import datetime

from langgraph_sdk import get_sync_client

url, count = sys.argv[1], int(sys.argv[2])
client = get_sync_client(url=url, api_key=None)
threads = []
for _ in range(count):
    thread = client.threads.create()
    client.crons.create_for_thread(thread["thread_id"], "agent", schedule="* * * * *",
                                   input={"messages": [{"role": "user", "content": "tick"}]})
    threads.append(thread["thread_id"])
# Wait for the next minute boundary to pass, plus the reference's 5 s poll and run time.
now = time.time()
time.sleep(60 - now % 60 + 15)
lateness = []
for thread_id in threads:
    for run in client.runs.list(thread_id, limit=5):
        created = datetime.fromisoformat(run["created_at"]).timestamp()
        minute = created - created % 60
        lateness.append((created - minute) * 1000)
lateness.sort()
pick = lambda q: round(lateness[int((len(lateness) - 1) * q)], 1) if lateness else None
print(json.dumps({"server": "reference", "bench": "fires", "crons": count, "fires": len(lateness),
                  "fire_lateness_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)}}))

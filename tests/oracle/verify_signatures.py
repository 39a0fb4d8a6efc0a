"""Verifies webhook signatures with the `standardwebhooks` package from PyPI.

Reads a JSON document on stdin: {"secrets": [...], "requests": [{"headers": {...},
"body": "<exact body text>"}, ...]}. For each secret, each request must verify; prints
one line per (secret, request) pair and exits non-zero on the first failure.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook

document = json.load(sys.stdin)
for secret in document["secrets"]:
    hook = Webhook(secret)
    for index, request in enumerate(document["requests"]):
        # Raises WebhookVerificationError on a bad signature or a stale timestamp.
        hook.verify(request["body"], request["headers"])
        print(f"verified request {index} with secret {secret[:10]}...")

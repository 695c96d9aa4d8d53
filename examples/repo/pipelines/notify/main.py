"""Notify: runs only after a failed transform run; the webhook URL is a Fernet secret."""

import os

webhook = os.environ.get("WEBHOOK_URL", "")
run = os.environ.get("FASTFLOW_RUN_ID", "?")
print(f"transform failed in run {run}; would POST to {webhook} (not in the demo)")

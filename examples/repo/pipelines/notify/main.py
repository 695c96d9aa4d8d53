"""Notify: runs only after a failed transform run."""

import os

print(f"transform failed in run {os.environ.get('FASTFLOW_RUN_ID', '?')}; paging nobody in the demo")

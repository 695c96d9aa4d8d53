"""Transform: a uv project (pyproject.toml + uv.lock), run with `uv run --frozen`."""

import os
import statistics

values = [1.08, 0.86, 0.94]
print(f"mean rate vs {os.environ.get('REPORT_CURRENCY', 'EUR')}: {statistics.mean(values):.4f}")
# a shared secret from secrets/warehouse.sops.yaml; printed here only to show it is masked
print(f"would write to {os.environ.get('WAREHOUSE_DSN', '(no warehouse configured)')}")

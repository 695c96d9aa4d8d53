# /// script
# requires-python = ">=3.11"
# dependencies = []
# ///
"""Extract: a PEP 723 script. Dependencies (none here) are declared inline above."""

import csv
import io
import os
import sys
from datetime import UTC, datetime

RATES = {"USD": 1.08, "GBP": 0.86, "CHF": 0.94, "JPY": 162.3}


def main(argv: list[str]) -> int:
    full = "--full" in argv
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["at", "currency", "rate"])
    for currency, rate in sorted(RATES.items()):
        writer.writerow([datetime.now(UTC).isoformat(timespec="seconds"), currency, rate])
    print(out.getvalue(), end="")
    token = os.environ.get("API_TOKEN", "")
    # Printing a secret is a mistake, but a safe one: Fast-Flow masks it as *** everywhere.
    print(f"extracted {len(RATES)} rates (full={full}) with token {token}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

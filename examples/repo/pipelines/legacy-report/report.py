"""Legacy report: dependencies from requirements.txt."""

import argparse
import platform

from tabulate import tabulate

parser = argparse.ArgumentParser()
parser.add_argument("--format", default="text")
args = parser.parse_args()
rows = [("USD", 1.08), ("GBP", 0.86), ("CHF", 0.94)]
print(f"weekly report ({args.format}) on Python {platform.python_version()}")
print(tabulate(rows, headers=["currency", "rate"], tablefmt="simple" if args.format == "text" else args.format))

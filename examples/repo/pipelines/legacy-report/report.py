"""Legacy report: dependencies from requirements.txt."""

import argparse
import platform

parser = argparse.ArgumentParser()
parser.add_argument("--format", default="text")
args = parser.parse_args()
print(f"weekly report ({args.format}) on Python {platform.python_version()}")

"""Pure functions over models and bytes: no clock (``now`` is an argument), no files, no processes.

Neighbours: ``model/`` below (the data), ``adapters/`` above (they read trees and call in here).
"""

"""Frozen pydantic models: specs and desired state, plans, validation problems.

Nothing here performs I/O; `core/` builds these from bytes and `adapters/` feeds the bytes.
"""

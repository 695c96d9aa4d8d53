"""Fast-Flow."""

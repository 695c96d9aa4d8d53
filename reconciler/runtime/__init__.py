"""The async reconciler: passes, cron, run supervision, the event bus."""

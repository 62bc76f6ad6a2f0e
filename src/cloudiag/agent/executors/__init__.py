"""agent executors."""

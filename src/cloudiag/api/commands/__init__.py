"""api commands."""

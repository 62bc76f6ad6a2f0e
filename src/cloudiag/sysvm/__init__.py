"""sysvm."""

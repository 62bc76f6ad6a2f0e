"""cloudiag: network diagnostics inside cloud system VMs, with a CloudStack-compatible API."""

__version__ = "0.1.0"

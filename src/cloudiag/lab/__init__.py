"""The lab: a CloudStack-like zone built from Linux network namespaces.

A virtual router, a secondary storage VM, a console proxy VM and a user VM, behind an
upstream router with a web and a DNS server, all on documentation and link-local addresses.
``manager`` builds and reads it (``up``/``down``/``status``), ``command`` is `cloudiag lab`,
``topology`` is the declaration of the whole zone.
"""

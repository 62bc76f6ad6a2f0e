"""The lab: a CloudStack-like zone built from Linux network namespaces.

A virtual router, a secondary storage VM, a console proxy VM and a user VM, behind an
upstream router with a web and a DNS server, all on documentation and link-local addresses.
``topology`` is the declaration of the whole zone. ``manager`` brings it up and down and
reports its status (``up``/``down``/``status``/``stop_vm``/``start_vm``), using ``building``
(namespaces and wiring), ``services`` (its servers), ``resolv`` (each namespace's
resolv.conf), ``access`` (with `up --ssh`: each system VM's sshd from ``sshd``, its own
files through ``mountns``, the CloudStack-style script of ``diagnostics_script``) and
``inspection`` (reading it back from the kernel); ``inventory`` is the lab as an agent's
inventory; `cloudiag lab` is ``cloudiag.cli.lab``.
"""

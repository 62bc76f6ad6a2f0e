"""The system-VM package: stdlib only, shipped to VMs as one zipapp (see build.py).

The server, the agent and listDiagnosticsTypes import the same modules: ``registry`` (the
types, one module each in ``types/``), ``validate`` (the option grammar), ``policy`` (denied
networks), ``framing`` (the records), ``command`` (the tool's argv). ``cli`` is the script;
``session`` its warm mode (``serve``: many requests, ``protocol``, over one process).
Nothing here imports anything of cloudiag outside this package, and this file imports
nothing, so that the script starts fast.
"""

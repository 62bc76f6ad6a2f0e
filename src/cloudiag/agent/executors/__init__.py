"""How the agent reaches a VM: one module per kind of access, behind ``base.Executor``."""

"""Where an agent learns the VMs of its host: one module per kind of source."""

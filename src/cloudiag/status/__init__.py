"""`cloudiag status`: the fleet in one screen (servers, agents, NATS, database, queues)."""

"""Prometheus metrics of a management server, served on /metrics (prometheus_client).

Counters move where things happen (a job's outcome stored, a database error); gauges of the
fleet are read when Prometheus scrapes. No label holds a job id, a user or a VM: the series
stay few however many jobs run.
"""

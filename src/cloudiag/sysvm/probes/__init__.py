"""Checks the package does itself with the standard library (tcp, dns, http, route), so that
they work on a VM without nc, dig or curl.

Each runs as a child process of the session, exactly like a tool (``<python> -I -S
<zipapp> probe <type> [option ...] -- <target> [extra ...]``), so the time limit, cancel,
the process-group kill and the output framing are those of ping. A probe prints a report
for people on stdout, then one last line for the parser: :data:`report.MARK` and a JSON
object. Exit status 0 means the check succeeded (an answer, a connection, a response),
1 that it did not (refused, timed out, NXDOMAIN, TLS failure, HTTP 4xx/5xx), 2 refused
arguments; a failure also says why in one stderr line.
"""

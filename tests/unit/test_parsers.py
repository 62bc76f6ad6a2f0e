"""Parsers of diagnostic output (cloudiag.parsers): RIPE Atlas's result format where it has one.

The REAL_* constants were captured on Debian (iputils-ping 20221126, iputils-arping
20221126, traceroute 2.1.2, LC_ALL=C): against loopback, and (REAL_LAB_*) in the project's
lab from the virtual router's namespace, plus two hosts claiming one address on a bridge of
throw-away namespaces for the duplicates; REAL_NS_* between two throw-away namespaces with
IPv6. The HAND_* constants are written from the tools' printf formats (iputils
ping_common.c/arping.c, traceroute.c print_probe()) for cases the lab cannot produce
(unicast duplicates, ICMP errors with annotations, IPv6 through a router).
"""

from __future__ import annotations

import json
import time
from typing import Any

import jc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ripe.atlas.sagan import PingResult, Result, TracerouteResult
from ripe.atlas.sagan.base import ResultError

from cloudiag import parsers
from cloudiag.parsers import parse, parse_arping, parse_ping, parse_traceroute
from cloudiag.sysvm import registry

# --------------------------------------------------------------------------- real: ping

# ping -c 3 127.0.0.1
REAL_PING = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.030 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.038 ms
64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.039 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2041ms
rtt min/avg/max/mdev = 0.030/0.035/0.039/0.004 ms
"""
# ping -c 2 -W 1 -n 127.0.0.1
REAL_PING_NUMERIC = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.011 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.030 ms

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1022ms
rtt min/avg/max/mdev = 0.011/0.020/0.030/0.009 ms
"""
# ping -q -c 2 127.0.0.1
REAL_PING_QUIET = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1022ms
rtt min/avg/max/mdev = 0.011/0.036/0.061/0.025 ms
"""
# ping -c 1 -I lo 127.0.0.1
REAL_PING_SOURCE = """\
PING 127.0.0.1 (127.0.0.1) from 127.0.0.1 lo: 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.012 ms

--- 127.0.0.1 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.012/0.012/0.012/0.000 ms
"""
# ping -s 0 -c 2 -i 0.2 127.0.0.1 (too little data for a timestamp: no time, no rtt line)
REAL_PING_NO_TIME = """\
PING 127.0.0.1 (127.0.0.1) 0(28) bytes of data.
8 bytes from 127.0.0.1: icmp_seq=1 ttl=64
8 bytes from 127.0.0.1: icmp_seq=2 ttl=64

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 204ms

"""
# ping -c 2 localhost
REAL_PING_NAMED = """\
PING localhost (127.0.0.1) 56(84) bytes of data.
64 bytes from localhost (127.0.0.1): icmp_seq=1 ttl=64 time=0.024 ms
64 bytes from localhost (127.0.0.1): icmp_seq=2 ttl=64 time=0.035 ms

--- localhost ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1022ms
rtt min/avg/max/mdev = 0.024/0.029/0.035/0.005 ms
"""
# ping -6 -c 2 ::1 (IPv6 header: no blank before the parenthesis, "data bytes")
REAL_PING6 = """\
PING ::1(::1) 56 data bytes
64 bytes from ::1: icmp_seq=1 ttl=64 time=0.016 ms
64 bytes from ::1: icmp_seq=2 ttl=64 time=0.037 ms

--- ::1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1006ms
rtt min/avg/max/mdev = 0.016/0.026/0.037/0.010 ms
"""
# ping -c 1 -W 1 127.0.0.1 in a network namespace whose lo is down: exit 2, stderr only.
REAL_PING_DOWN_STDERR = "ping: connect: Network is unreachable\n"

# --------------------------------------------------------------------------- real: traceroute

# traceroute -n 127.0.0.1
REAL_TRACE_NUMERIC = """\
traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets
 1  127.0.0.1  0.012 ms  0.005 ms  0.004 ms
"""
# traceroute 127.0.0.1
REAL_TRACE = """\
traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets
 1  localhost (127.0.0.1)  0.008 ms  0.004 ms  0.004 ms
"""
# traceroute -q 3 -w 1 -m 3 127.0.0.1
REAL_TRACE_LIMITED = """\
traceroute to 127.0.0.1 (127.0.0.1), 3 hops max, 60 byte packets
 1  localhost (127.0.0.1)  0.009 ms  0.004 ms  0.004 ms
"""
# traceroute -I -n -q 1 127.0.0.1
REAL_TRACE_ICMP = """\
traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets
 1  127.0.0.1  0.010 ms
"""
# traceroute -6 -n ::1
REAL_TRACE6 = """\
traceroute to ::1 (::1), 30 hops max, 80 byte packets
 1  ::1  0.020 ms  0.005 ms  0.004 ms
"""
# traceroute -6 ::1 (no reverse name: the address stands in for it)
REAL_TRACE6_UNNAMED = """\
traceroute to ::1 (::1), 30 hops max, 80 byte packets
 1  ::1 (::1)  0.010 ms  0.005 ms  0.004 ms
"""
# traceroute -n -m 2 127.0.0.1 with lo down: exit 1; the header has no newline (each hop
# line starts with one) and the error is on stderr.
REAL_TRACE_DOWN = "traceroute to 127.0.0.1 (127.0.0.1), 2 hops max, 60 byte packets"
REAL_TRACE_DOWN_STDERR = "\nconnect: Network is unreachable\n"
# Lab: through the virtual router to the web server (-n -q 1 -m 5).
REAL_LAB_TRACE = """\
traceroute to web.lab.test (198.51.100.10), 5 hops max, 60 byte packets
 1  203.0.113.1  0.021 ms
 2  198.51.100.10  0.114 ms
"""

# --------------------------------------------------------------------------- real: the lab

# ping -c 3 web.lab.test (from the router)
REAL_LAB_PING_NAMED = """\
PING web.lab.test (198.51.100.10) 56(84) bytes of data.
64 bytes from web.lab.test (198.51.100.10): icmp_seq=1 ttl=63 time=0.032 ms
64 bytes from web.lab.test (198.51.100.10): icmp_seq=2 ttl=63 time=0.093 ms
64 bytes from web.lab.test (198.51.100.10): icmp_seq=3 ttl=63 time=0.089 ms

--- web.lab.test ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2050ms
rtt min/avg/max/mdev = 0.032/0.071/0.093/0.027 ms
"""
# ping -c 2 -I eth2 web.lab.test
REAL_LAB_PING_SOURCE = """\
PING web.lab.test (198.51.100.10) from 203.0.113.10 eth2: 56(84) bytes of data.
64 bytes from web.lab.test (198.51.100.10): icmp_seq=1 ttl=63 time=0.021 ms
64 bytes from web.lab.test (198.51.100.10): icmp_seq=2 ttl=63 time=0.077 ms

--- web.lab.test ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1020ms
rtt min/avg/max/mdev = 0.021/0.049/0.077/0.028 ms
"""
# ping -c 10 web.lab.test, killed (SIGKILL) after 2.5 s: no summary
REAL_LAB_PING_CUT = """\
PING web.lab.test (198.51.100.10) 56(84) bytes of data.
64 bytes from web.lab.test (198.51.100.10): icmp_seq=1 ttl=63 time=0.029 ms
64 bytes from web.lab.test (198.51.100.10): icmp_seq=2 ttl=63 time=0.079 ms
64 bytes from web.lab.test (198.51.100.10): icmp_seq=3 ttl=63 time=0.081 ms
"""
# ping -c 4 198.51.100.99 (the upstream router finds no host): exit 1
REAL_LAB_PING_UNREACHABLE = """\
PING 198.51.100.99 (198.51.100.99) 56(84) bytes of data.
From 203.0.113.1 icmp_seq=1 Destination Host Unreachable
From 203.0.113.1 icmp_seq=2 Destination Host Unreachable
From 203.0.113.1 icmp_seq=3 Destination Host Unreachable
From 203.0.113.1 icmp_seq=4 Destination Host Unreachable

--- 198.51.100.99 ping statistics ---
4 packets transmitted, 0 received, +4 errors, 100% packet loss, time 3064ms
pipe 4
"""
# ping -c 10 198.51.100.99, killed after 4.5 s
REAL_LAB_PING_UNREACHABLE_CUT = """\
PING 198.51.100.99 (198.51.100.99) 56(84) bytes of data.
From 203.0.113.1 icmp_seq=1 Destination Host Unreachable
From 203.0.113.1 icmp_seq=2 Destination Host Unreachable
From 203.0.113.1 icmp_seq=3 Destination Host Unreachable
"""
# ping -c 2 -t 1 198.51.100.10: the first router reports the expired TTL
REAL_LAB_PING_TTL = """\
PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.
From 203.0.113.1 icmp_seq=1 Time to live exceeded
From 203.0.113.1 icmp_seq=2 Time to live exceeded

--- 198.51.100.10 ping statistics ---
2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1016ms

"""
# ping -c 3 -W 1 192.0.2.77 (nobody has it on the guest network): exit 1
REAL_LAB_PING_LOST = """\
PING 192.0.2.77 (192.0.2.77) 56(84) bytes of data.

--- 192.0.2.77 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2039ms

"""
# ping -c 3 -b 192.0.2.255 where two hosts answer broadcasts: ping counts
# "+2 duplicates" but marks no reply "(DUP!)" (it does so only for unicast targets)
REAL_LAB_PING_BROADCAST = """\
PING 192.0.2.255 (192.0.2.255) 56(84) bytes of data.
64 bytes from 192.0.2.200: icmp_seq=1 ttl=64 time=0.094 ms
64 bytes from 192.0.2.200: icmp_seq=1 ttl=64 time=0.095 ms
64 bytes from 192.0.2.200: icmp_seq=2 ttl=64 time=0.079 ms
64 bytes from 192.0.2.200: icmp_seq=2 ttl=64 time=0.079 ms
64 bytes from 192.0.2.200: icmp_seq=3 ttl=64 time=0.094 ms

--- 192.0.2.255 ping statistics ---
3 packets transmitted, 3 received, +2 duplicates, 0% packet loss, time 2040ms
rtt min/avg/max/mdev = 0.079/0.088/0.095/0.007 ms
"""
# traceroute web.lab.test
REAL_LAB_TRACE_NAMED = """\
traceroute to web.lab.test (198.51.100.10), 30 hops max, 60 byte packets
 1  gw.lab.test (203.0.113.1)  0.014 ms  0.009 ms  0.004 ms
 2  web.lab.test (198.51.100.10)  0.013 ms  0.005 ms  0.004 ms
"""
# traceroute -n 198.51.100.10: the routers rate-limit their ICMP errors, so some hops
# answer only some probes
REAL_LAB_TRACE_PARTIAL = """\
traceroute to 198.51.100.10 (198.51.100.10), 30 hops max, 60 byte packets
 1  203.0.113.1  0.044 ms * *
 2  * * *
 3  * * *
 4  * * *
 5  * * *
 6  * * *
 7  * 198.51.100.10  0.079 ms  0.007 ms
"""
# traceroute -m 4 -w 1 198.51.100.99: nothing answers past the first hop
REAL_LAB_TRACE_UNREACHABLE = """\
traceroute to 198.51.100.99 (198.51.100.99), 4 hops max, 60 byte packets
 1  gw.lab.test (203.0.113.1)  0.036 ms  0.004 ms  0.005 ms
 2  * * *
 3  * * *
 4  * * *
"""
# traceroute -m 3 -w 1 -q 2 192.0.2.77: nothing answers at all
REAL_LAB_TRACE_SILENT = """\
traceroute to 192.0.2.77 (192.0.2.77), 3 hops max, 60 byte packets
 1  * *
 2  * *
 3  * *
"""
# traceroute -T -p 81 -m 4 -w 1 web.lab.test (the closed port answers with a RST)
REAL_LAB_TRACE_TCP = """\
traceroute to web.lab.test (198.51.100.10), 4 hops max, 60 byte packets
 1  gw.lab.test (203.0.113.1)  0.014 ms * *
 2  web.lab.test (198.51.100.10)  0.012 ms  0.011 ms  0.008 ms
"""
# arping -c 2 -I eth2 203.0.113.1 (from the router to the upstream gateway)
REAL_LAB_ARPING = """\
ARPING 203.0.113.1 from 203.0.113.10 eth2
Unicast reply from 203.0.113.1 [02:8C:81:0C:9C:F6]  0.554ms
Unicast reply from 203.0.113.1 [02:8C:81:0C:9C:F6]  0.541ms
Sent 2 probes (1 broadcast(s))
Received 2 response(s)
"""
# arping -c 2 -w 3 -I eth2 203.0.113.99: nobody has it, exit 1
REAL_LAB_ARPING_NONE = """\
ARPING 203.0.113.99 from 203.0.113.10 eth2
Sent 2 probes (2 broadcast(s))
Received 0 response(s)
"""
# arping -c 3 -I eth0 192.0.2.200 where two hosts claim 192.0.2.200: both answer the
# broadcast, then arping unicasts to the last one; exit 1 (arping's own verdict)
REAL_LAB_ARPING_DUPLICATE = """\
ARPING 192.0.2.200 from 192.0.2.201 eth0
Unicast reply from 192.0.2.200 [F6:91:E6:7A:FB:2B]  0.551ms
Unicast reply from 192.0.2.200 [7E:75:07:98:16:57]  0.575ms
Unicast reply from 192.0.2.200 [7E:75:07:98:16:57]  0.548ms
Unicast reply from 192.0.2.200 [7E:75:07:98:16:57]  0.546ms
Sent 3 probes (1 broadcast(s))
Received 4 response(s)
"""
# arping -D -c 2 -I eth2 203.0.113.77: nobody has the address, exit 0
REAL_LAB_ARPING_DAD_FREE = """\
ARPING 203.0.113.77 from 0.0.0.0 eth2
Sent 2 probes (2 broadcast(s))
Received 0 response(s)
"""
# arping -D -c 2 -I eth2 203.0.113.1: somebody has it, exit 1 (-D stops at the first answer)
REAL_LAB_ARPING_DAD_TAKEN = """\
ARPING 203.0.113.1 from 0.0.0.0 eth2
Unicast reply from 203.0.113.1 [02:8C:81:0C:9C:F6]  0.548ms
Sent 1 probes (1 broadcast(s))
Received 1 response(s)
"""

# --------------------------------------------------------------------------- real: IPv6

# Between two throw-away namespaces on 2001:db8:100::/64, the names from an
# /etc/netns/<ns>/hosts file (until the lab has IPv6 of its own).
# ping -6 -c 2 web6.lab.test
REAL_NS_PING6_NAMED = """\
PING web6.lab.test(web6.lab.test (2001:db8:100::10)) 56 data bytes
64 bytes from web6.lab.test (2001:db8:100::10): icmp_seq=1 ttl=64 time=0.063 ms
64 bytes from web6.lab.test (2001:db8:100::10): icmp_seq=2 ttl=64 time=0.048 ms

--- web6.lab.test ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1015ms
rtt min/avg/max/mdev = 0.048/0.055/0.063/0.007 ms
"""
# ping -6 -c 2 -W 1 2001:db8:100::99 (nobody has it): exit 1
REAL_NS_PING6_LOST = """\
PING 2001:db8:100::99(2001:db8:100::99) 56 data bytes

--- 2001:db8:100::99 ping statistics ---
2 packets transmitted, 0 received, 100% packet loss, time 1011ms

"""
# traceroute -6 -q 2 web6.lab.test
REAL_NS_TRACE6_NAMED = """\
traceroute to web6.lab.test (2001:db8:100::10), 30 hops max, 80 byte packets
 1  web6.lab.test (2001:db8:100::10)  0.035 ms  0.003 ms
"""

# --------------------------------------------------------------------------- by hand: ping

HAND_PING_DUP = """\
PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.
64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.607 ms
64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.652 ms (DUP!)
64 bytes from 198.51.100.10: icmp_seq=2 ttl=63 time=0.512 ms
64 bytes from 198.51.100.10: icmp_seq=2 ttl=63 time=0.540 ms (DUP!)
64 bytes from 198.51.100.10: icmp_seq=3 ttl=63 time=0.498 ms

--- 198.51.100.10 ping statistics ---
3 packets transmitted, 3 received, +2 duplicates, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.498/0.561/0.652/0.057 ms
"""
# Names, a router's error between replies, %g loss, ", pipe 2" after the rtt line.
HAND_PING_MIXED = """\
PING web.lab.test (198.51.100.10) 56(84) bytes of data.
64 bytes from web.lab.test (198.51.100.10): icmp_seq=1 ttl=63 time=1.12 ms
From gw.lab.test (203.0.113.1) icmp_seq=2 Destination Host Unreachable
64 bytes from web.lab.test (198.51.100.10): icmp_seq=3 ttl=63 time=12.4 ms

--- web.lab.test ping statistics ---
3 packets transmitted, 2 received, +1 errors, 33.3333% packet loss, time 2004ms
rtt min/avg/max/mdev = 1.120/6.760/12.400/5.640 ms, pipe 2
"""
# ping -6 to a name, killed at the time limit before the summary.
HAND_PING6_CUT = """\
PING web.lab.test(web.lab.test (2001:db8:100::10)) 56 data bytes
From 2001:db8:113::1 icmp_seq=1 Destination unreachable: Address unreachable
64 bytes from web.lab.test (2001:db8:100::10): icmp_seq=2 ttl=63 time=0.300 ms
64 bytes from web.lab.test (2001:db8:100::10): icmp_seq=3 ttl=63 time=0.500 ms
64 bytes from web.lab.test (2001:db8:100::10): icmp_seq=3 ttl=63 time=0.700 ms (DUP!)
"""

# --------------------------------------------------------------------------- by hand: traceroute

# Load-balanced first hop, then the router saying the host is unreachable.
HAND_TRACE_HOST_UNREACHABLE = """\
traceroute to 198.51.100.99 (198.51.100.99), 20 hops max, 60 byte packets
 1  203.0.113.1  0.5 ms 203.0.113.2  0.6 ms *
 2  gw.lab.test (203.0.113.1)  3004.120 ms !H  3004.201 ms !H  3004.188 ms !H
"""
HAND_TRACE_NET_UNREACHABLE = """\
traceroute to 192.0.2.77 (192.0.2.77), 20 hops max, 60 byte packets
 1  gw.lab.test (203.0.113.1)  0.420 ms !N  0.390 ms !N *
"""
# traceroute -T to a filtered port: the destination answers "administratively prohibited".
HAND_TRACE_PROHIBITED = """\
traceroute to 198.51.100.10 (198.51.100.10), 20 hops max, 60 byte packets
 1  203.0.113.1  0.380 ms  0.301 ms  0.299 ms
 2  198.51.100.10  0.702 ms !X  0.688 ms !X  0.671 ms !X
"""
# -f 9: two-digit TTLs, a star before the answer, "frag needed" and unknown-code notes.
HAND_TRACE_FIRST_HOP = """\
traceroute to 198.51.100.10 (198.51.100.10), 12 hops max, 1500 byte packets
 9  * 203.0.113.9  1.512 ms  1.498 ms
10  203.0.113.10  2.001 ms !F-1400 203.0.113.11  2.102 ms !<10>  *
11  198.51.100.10  2.640 ms  2.601 ms  2.599 ms
"""
HAND_TRACE6 = """\
traceroute to 2001:db8:100::10 (2001:db8:100::10), 20 hops max, 80 byte packets
 1  2001:db8:113::1  0.480 ms  0.402 ms  0.398 ms
 2  2001:db8:100::10  0.801 ms  0.760 ms  0.759 ms
"""
# Killed in the middle of hop 2.
HAND_TRACE_CUT = """\
traceroute to 198.51.100.10 (198.51.100.10), 20 hops max, 60 byte packets
 1  203.0.113.1  0.380 ms  0.301 ms  0.299 ms
 2  198.51.100.10  0.702 ms  0.6"""

# --------------------------------------------------------------------------- by hand: arping

# The optional "for <ip> [<mac>]" part, an unsolicited reply, broadcast/request counts.
HAND_ARPING_ODD = """\
ARPING 203.0.113.1 from 203.0.113.30 eth2
Broadcast reply from 203.0.113.1 [02:c0:c1:16:f1:77] for 203.0.113.31 [02:00:00:00:00:01] 0.700ms
Unicast request from 203.0.113.1 [02:C0:C1:16:F1:77] for [02:00:00:00:00:01] 0.812ms
Unicast reply from 203.0.113.1 [02:C0:C1:16:F1:77]  UNSOLICITED?
Sent 1 probes (1 broadcast(s))
Received 3 response(s) (1 request(s), 1 broadcast(s))
"""

SAMPLES: dict[str, list[str]] = {
    "ping": [
        REAL_PING,
        REAL_PING_NUMERIC,
        REAL_PING_QUIET,
        REAL_PING_SOURCE,
        REAL_PING_NO_TIME,
        REAL_PING_NAMED,
        REAL_PING6,
        REAL_LAB_PING_NAMED,
        REAL_LAB_PING_SOURCE,
        REAL_LAB_PING_CUT,
        REAL_LAB_PING_UNREACHABLE,
        REAL_LAB_PING_UNREACHABLE_CUT,
        REAL_LAB_PING_TTL,
        REAL_LAB_PING_LOST,
        REAL_LAB_PING_BROADCAST,
        REAL_NS_PING6_NAMED,
        REAL_NS_PING6_LOST,
        HAND_PING_DUP,
        HAND_PING_MIXED,
        HAND_PING6_CUT,
    ],
    "traceroute": [
        REAL_TRACE_NUMERIC,
        REAL_TRACE,
        REAL_TRACE_LIMITED,
        REAL_TRACE_ICMP,
        REAL_TRACE6,
        REAL_TRACE6_UNNAMED,
        REAL_TRACE_DOWN,
        REAL_LAB_TRACE,
        REAL_LAB_TRACE_NAMED,
        REAL_LAB_TRACE_PARTIAL,
        REAL_LAB_TRACE_UNREACHABLE,
        REAL_LAB_TRACE_SILENT,
        REAL_LAB_TRACE_TCP,
        REAL_NS_TRACE6_NAMED,
        HAND_TRACE_HOST_UNREACHABLE,
        HAND_TRACE_NET_UNREACHABLE,
        HAND_TRACE_PROHIBITED,
        HAND_TRACE_FIRST_HOP,
        HAND_TRACE6,
        HAND_TRACE_CUT,
    ],
    "arping": [
        REAL_LAB_ARPING,
        REAL_LAB_ARPING_NONE,
        REAL_LAB_ARPING_DUPLICATE,
        REAL_LAB_ARPING_DAD_FREE,
        REAL_LAB_ARPING_DAD_TAKEN,
        HAND_ARPING_ODD,
    ],
}
ALL_SAMPLES = [text for texts in SAMPLES.values() for text in texts]

#: The keys of Atlas's ping and traceroute results that a summary has (Atlas's own
#: bookkeeping, msm_id, prb_id, timestamp, from, is the job's).
ATLAS_PING_KEYS = {"af", "dst_addr", "dst_name", "src_addr", "proto", "size", "ttl", "sent"}
ATLAS_PING_KEYS |= {"rcvd", "dup", "min", "avg", "max", "result", "type"}
ATLAS_TRACE_KEYS = {"af", "dst_addr", "dst_name", "size", "result", "type"}


def assert_json_ready(value: Any) -> None:
    """Only JSON's own types, finite floats, str keys: what the API renderer accepts."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_json_ready(item)
    elif isinstance(value, list):
        for item in value:
            assert_json_ready(item)
    elif isinstance(value, float):
        assert value == value and value not in (float("inf"), float("-inf"))
    else:
        assert value is None or isinstance(value, str | int | bool)
    # Exactly what render.py does: NaN/Infinity would be refused there.
    json.dumps(value, allow_nan=False)


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


def rtts(p: dict[str, Any]) -> list[float | None]:
    """The RTT of each ping result entry (None for a timeout)."""
    return [r.get("rtt") for r in p["result"]]


def hop_view(t: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """Each hop's TTL and its probes as "address" or "*"."""
    return [(h["hop"], [r.get("from", "*") for r in h["result"]]) for h in t["result"]]


# --------------------------------------------------------------------------- ping


def test_real_ping_in_atlas_shape() -> None:
    p = parse("ping", REAL_PING)
    assert p is not None
    assert ATLAS_PING_KEYS <= set(p)
    assert {k: p[k] for k in ATLAS_PING_KEYS - {"result"}} == {
        "type": "ping",
        "af": 4,
        "dst_addr": "127.0.0.1",
        "dst_name": "127.0.0.1",
        "src_addr": None,
        "proto": "ICMP",
        "size": 56,
        "ttl": 64,
        "sent": 3,
        "rcvd": 3,
        "dup": 0,
        "min": 0.03,
        "avg": 0.035,
        "max": 0.039,
    }
    assert p["result"] == [
        {"rtt": 0.03, "ttl": 64, "seq": 1},
        {"rtt": 0.038, "ttl": 64, "seq": 2},
        {"rtt": 0.039, "ttl": 64, "seq": 3},
    ]
    assert p["loss"] == 0.0 and isinstance(p["loss"], float) and p["mdev"] == 0.004
    assert (p["unreachable"], p["errors"], p["complete"]) == ([], 0, True)


def test_real_ping_variants() -> None:
    assert rtts(parse_ping(REAL_PING_NUMERIC)) == [0.011, 0.03]

    # -q prints no replies: which came back is unknown, so no result entries.
    quiet = parse_ping(REAL_PING_QUIET)
    assert quiet["result"] == [] and quiet["rcvd"] == 2
    assert (quiet["min"], quiet["avg"], quiet["max"], quiet["mdev"]) == (0.011, 0.036, 0.061, 0.025)

    source = parse_ping(REAL_PING_SOURCE)
    assert (source["dst_addr"], source["src_addr"], source["mdev"]) == (
        "127.0.0.1",
        "127.0.0.1",
        0.0,
    )

    # -s 0: too little data for a timestamp, so replies without rtt and no statistics.
    no_time = parse_ping(REAL_PING_NO_TIME)
    assert no_time["result"] == [{"ttl": 64, "seq": 1}, {"ttl": 64, "seq": 2}]
    assert (no_time["size"], no_time["min"], no_time["mdev"]) == (0, -1.0, None)
    assert no_time["loss"] == 0.0

    named = parse_ping(REAL_PING_NAMED)
    assert (named["dst_addr"], named["dst_name"]) == ("127.0.0.1", "localhost")
    assert all("srcaddr" not in r for r in named["result"])


def test_real_ping6_goes_through_the_ping_parser() -> None:
    p = parse("ping6", REAL_PING6)
    assert p is not None and p["type"] == "ping"
    assert (p["af"], p["dst_addr"], p["dst_name"], p["size"]) == (6, "::1", "::1", 56)
    assert rtts(p) == [0.016, 0.037]
    assert (p["min"], p["avg"], p["max"], p["mdev"]) == (0.016, 0.026, 0.037, 0.01)


def test_real_lab_ping_to_a_name() -> None:
    p = parse_ping(REAL_LAB_PING_NAMED)
    assert (p["af"], p["dst_addr"], p["dst_name"]) == (4, "198.51.100.10", "web.lab.test")
    assert (p["sent"], p["rcvd"], p["ttl"], p["loss"]) == (3, 3, 63, 0.0)
    assert rtts(p) == [0.032, 0.093, 0.089]
    source = parse_ping(REAL_LAB_PING_SOURCE)
    assert (source["src_addr"], source["dst_name"]) == ("203.0.113.10", "web.lab.test")


def test_ping_that_could_not_start() -> None:
    p = parse("ping", "", REAL_PING_DOWN_STDERR, "2")
    assert p is not None
    assert (p["dst_addr"], p["af"], p["sent"], p["result"]) == (None, None, 0, [])
    assert (p["min"], p["avg"], p["max"]) == (-1.0, -1.0, -1.0)
    assert p["loss"] is None and p["mdev"] is None and p["complete"] is False


def test_real_lab_ping_total_loss() -> None:
    p = parse_ping(REAL_LAB_PING_LOST, "", "1")
    assert (p["sent"], p["rcvd"], p["loss"], p["errors"]) == (3, 0, 100.0, 0)
    # Nothing came back: Atlas's -1 statistics and a timeout for every probe.
    assert (p["min"], p["avg"], p["max"], p["ttl"]) == (-1.0, -1.0, -1.0, None)
    assert p["result"] == [{"x": "*", "seq": n} for n in (1, 2, 3)]
    assert p["complete"] is True


def test_real_lab_ping_unreachable_from_a_router() -> None:
    p = parse_ping(REAL_LAB_PING_UNREACHABLE, "", "1")
    assert (p["sent"], p["rcvd"], p["errors"], p["loss"]) == (4, 0, 4, 100.0)
    assert p["unreachable"] == [
        {"seq": n, "from": "203.0.113.1", "message": "Destination Host Unreachable"}
        for n in (1, 2, 3, 4)
    ]
    assert p["result"] == [{"x": "*", "seq": n} for n in (1, 2, 3, 4)]
    assert p["min"] == -1.0  # "pipe 4" is no rtt line
    cut = parse_ping(REAL_LAB_PING_UNREACHABLE_CUT, "", "-9")
    assert (cut["sent"], cut["rcvd"], cut["errors"], cut["complete"]) == (3, 0, 3, False)
    assert [u["seq"] for u in cut["unreachable"]] == [1, 2, 3]


def test_real_lab_ping_ttl_exceeded() -> None:
    p = parse_ping(REAL_LAB_PING_TTL, "", "1")
    assert [u["message"] for u in p["unreachable"]] == ["Time to live exceeded"] * 2
    assert {u["from"] for u in p["unreachable"]} == {"203.0.113.1"}
    assert p["result"] == [{"x": "*", "seq": 1}, {"x": "*", "seq": 2}]


def test_real_lab_ping_cut_at_its_time_limit() -> None:
    p = parse("ping", REAL_LAB_PING_CUT, "", "-9")
    assert p is not None
    assert (p["dst_addr"], p["dst_name"], p["complete"]) == ("198.51.100.10", "web.lab.test", False)
    # Worked out from the replies printed before the kill.
    assert (p["sent"], p["rcvd"], p["dup"], p["loss"]) == (3, 3, 0, 0.0)
    assert (p["min"], p["avg"], p["max"], p["mdev"]) == (0.029, 0.063, 0.081, 0.024)
    assert rtts(p) == [0.029, 0.079, 0.081]


def test_real_lab_broadcast_ping_duplicates_unmarked() -> None:
    p = parse_ping(REAL_LAB_PING_BROADCAST)
    assert (p["sent"], p["rcvd"], p["dup"]) == (3, 3, 2)
    # No "(DUP!)" in the output, yet the second reply to a probe is a duplicate.
    assert [(r["seq"], r.get("dup")) for r in p["result"]] == [
        (1, None),
        (1, 1),
        (2, None),
        (2, 1),
        (3, None),
    ]
    # The replies come from 192.0.2.200, not the broadcast address; Atlas names another
    # replier than the first only.
    assert all("srcaddr" not in r for r in p["result"])


def test_real_ping6_to_a_name() -> None:
    p = parse("ping6", REAL_NS_PING6_NAMED)
    assert p is not None
    assert (p["af"], p["dst_addr"], p["dst_name"], p["size"]) == (
        6,
        "2001:db8:100::10",
        "web6.lab.test",
        56,
    )
    assert rtts(p) == [0.063, 0.048] and p["ttl"] == 64
    assert (p["min"], p["avg"], p["max"], p["mdev"]) == (0.048, 0.055, 0.063, 0.007)
    lost = parse("ping6", REAL_NS_PING6_LOST, "", "1")
    assert lost is not None
    assert (lost["af"], lost["dst_addr"], lost["rcvd"], lost["min"]) == (
        6,
        "2001:db8:100::99",
        0,
        -1.0,
    )
    assert lost["result"] == [{"x": "*", "seq": 1}, {"x": "*", "seq": 2}]


def test_ping_duplicates_marked() -> None:
    p = parse_ping(HAND_PING_DUP)
    assert (p["sent"], p["rcvd"], p["dup"], p["loss"]) == (3, 3, 2, 0.0)
    assert [(r["seq"], r.get("dup")) for r in p["result"]] == [
        (1, None),
        (1, 1),
        (2, None),
        (2, 1),
        (3, None),
    ]


def test_ping_mixed_replies_errors_and_names() -> None:
    p = parse_ping(HAND_PING_MIXED)
    assert (p["dst_addr"], p["dst_name"]) == ("198.51.100.10", "web.lab.test")
    assert (p["rcvd"], p["errors"]) == (2, 1)
    assert p["loss"] == pytest.approx(33.3333)
    assert p["result"] == [
        {"rtt": 1.12, "ttl": 63, "seq": 1},
        {"x": "*", "seq": 2},
        {"rtt": 12.4, "ttl": 63, "seq": 3},
    ]
    assert p["unreachable"] == [
        {"seq": 2, "from": "203.0.113.1", "message": "Destination Host Unreachable"}
    ]
    assert (p["min"], p["avg"], p["max"], p["mdev"]) == (1.12, 6.76, 12.4, 5.64)


def test_ping6_to_a_name_cut_before_its_summary() -> None:
    p = parse("PING6", HAND_PING6_CUT, "", "-9")
    assert p is not None
    assert (p["af"], p["dst_addr"], p["dst_name"]) == (6, "2001:db8:100::10", "web.lab.test")
    assert p["complete"] is False
    # Worked out from what was printed: seqs 1-3 sent, 2 and 3 answered, 3 twice.
    assert (p["sent"], p["rcvd"], p["dup"], p["errors"]) == (3, 2, 1, 1)
    assert p["loss"] == pytest.approx(100 / 3)
    assert p["unreachable"][0] == {
        "seq": 1,
        "from": "2001:db8:113::1",
        "message": "Destination unreachable: Address unreachable",
    }
    assert [r.get("x") or r.get("dup") for r in p["result"]] == ["*", None, None, 1]
    assert (p["min"], p["avg"], p["max"], p["mdev"]) == (0.3, 0.5, 0.7, 0.163)


def test_ping_reply_from_another_address_is_atlas_srcaddr() -> None:
    p = parse_ping(
        "PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.\n"
        "64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.5 ms\n"
        "64 bytes from 198.51.100.11: icmp_seq=2 ttl=62 time=0.6 ms\n"
    )
    assert p["result"] == [
        {"rtt": 0.5, "ttl": 63, "seq": 1},
        {"rtt": 0.6, "ttl": 62, "srcaddr": "198.51.100.11", "seq": 2},
    ]
    assert p["ttl"] == 63  # Atlas's ttl: that of the first reply


# --------------------------------------------------------------------------- traceroute


def test_real_traceroute_in_atlas_shape() -> None:
    numeric = parse("traceroute", REAL_TRACE_NUMERIC)
    assert numeric is not None
    assert ATLAS_TRACE_KEYS <= set(numeric)
    assert numeric == {
        "type": "traceroute",
        "af": 4,
        "dst_addr": "127.0.0.1",
        "dst_name": "127.0.0.1",
        "size": 60,
        "result": [
            {
                "hop": 1,
                "result": [{"from": "127.0.0.1", "rtt": rtt} for rtt in (0.012, 0.005, 0.004)],
            }
        ],
        "max_hops": 30,
        "reached": True,
    }
    named = parse_traceroute(REAL_TRACE)
    assert [r["name"] for r in named["result"][0]["result"]] == ["localhost"] * 3
    assert named["reached"] is True
    limited = parse_traceroute(REAL_TRACE_LIMITED)
    assert limited["max_hops"] == 3 and len(limited["result"]) == 1
    icmp = parse_traceroute(REAL_TRACE_ICMP)
    assert icmp["result"] == [{"hop": 1, "result": [{"from": "127.0.0.1", "rtt": 0.01}]}]


def test_real_traceroute6() -> None:
    for text in (REAL_TRACE6, REAL_TRACE6_UNNAMED):
        t = parse("traceroute6", text)
        assert t is not None and t["type"] == "traceroute"
        assert (t["af"], t["dst_addr"], t["size"], t["reached"]) == (6, "::1", 80, True)
        # "::1 (::1)": the address printed in place of a missing name is not a name.
        assert [set(r) for r in t["result"][0]["result"]] == [{"from", "rtt"}] * 3


def test_real_traceroute_that_could_not_send() -> None:
    t = parse("traceroute", REAL_TRACE_DOWN, REAL_TRACE_DOWN_STDERR, "1")
    assert t is not None
    assert (t["dst_addr"], t["max_hops"], t["result"], t["reached"]) == ("127.0.0.1", 2, [], False)


def test_real_lab_traceroute_to_a_name() -> None:
    t = parse_traceroute(REAL_LAB_TRACE_NAMED)
    assert (t["dst_addr"], t["dst_name"], t["max_hops"]) == ("198.51.100.10", "web.lab.test", 30)
    assert t["result"][0] == {
        "hop": 1,
        "result": [
            {"from": "203.0.113.1", "rtt": rtt, "name": "gw.lab.test"}
            for rtt in (0.014, 0.009, 0.004)
        ],
    }
    assert hop_view(t)[1] == (2, ["198.51.100.10"] * 3)
    assert t["reached"] is True
    lab = parse_traceroute(REAL_LAB_TRACE)
    assert hop_view(lab) == [(1, ["203.0.113.1"]), (2, ["198.51.100.10"])]


def test_real_lab_traceroute_partial_hops() -> None:
    t = parse_traceroute(REAL_LAB_TRACE_PARTIAL)
    # Each unanswered probe is Atlas's {"x": "*"}, in its place among the answers.
    assert hop_view(t) == [
        (1, ["203.0.113.1", "*", "*"]),
        *[(n, ["*", "*", "*"]) for n in range(2, 7)],
        (7, ["*", "198.51.100.10", "198.51.100.10"]),
    ]
    assert t["result"][1]["result"] == [{"x": "*"}] * 3
    assert t["reached"] is True
    tcp = parse_traceroute(REAL_LAB_TRACE_TCP)
    assert hop_view(tcp) == [(1, ["203.0.113.1", "*", "*"]), (2, ["198.51.100.10"] * 3)]
    assert tcp["reached"] is True


def test_real_lab_traceroute_that_does_not_arrive() -> None:
    t = parse_traceroute(REAL_LAB_TRACE_UNREACHABLE)
    assert hop_view(t) == [(1, ["203.0.113.1"] * 3), *[(n, ["*"] * 3) for n in (2, 3, 4)]]
    assert t["reached"] is False
    silent = parse_traceroute(REAL_LAB_TRACE_SILENT)
    assert hop_view(silent) == [(n, ["*", "*"]) for n in (1, 2, 3)]
    assert silent["reached"] is False


def test_traceroute_several_addresses_and_host_unreachable() -> None:
    t = parse_traceroute(HAND_TRACE_HOST_UNREACHABLE)
    first, second = t["result"]
    assert first["result"] == [
        {"from": "203.0.113.1", "rtt": 0.5},
        {"from": "203.0.113.2", "rtt": 0.6},
        {"x": "*"},
    ]
    assert second["result"][0] == {
        "from": "203.0.113.1",
        "rtt": 3004.12,
        "name": "gw.lab.test",
        "annotation": "!H",
        "err": "H",
    }
    assert [r["err"] for r in second["result"]] == ["H"] * 3
    assert t["reached"] is False


def test_traceroute_net_unreachable_and_prohibited() -> None:
    net = parse_traceroute(HAND_TRACE_NET_UNREACHABLE)
    assert [(r.get("annotation"), r.get("err")) for r in net["result"][0]["result"]] == [
        ("!N", "N"),
        ("!N", "N"),
        (None, None),
    ]
    assert net["result"][0]["result"][2] == {"x": "*"}
    prohibited = parse_traceroute(HAND_TRACE_PROHIBITED)
    assert [r["err"] for r in prohibited["result"][1]["result"]] == ["A"] * 3
    assert prohibited["reached"] is True


def test_traceroute_first_hop_and_other_annotations() -> None:
    t = parse_traceroute(HAND_TRACE_FIRST_HOP)
    assert [h["hop"] for h in t["result"]] == [9, 10, 11]
    assert t["size"] == 1500
    assert t["result"][0]["result"][0] == {"x": "*"}
    assert t["result"][0]["result"][1]["from"] == "203.0.113.9"
    assert t["result"][1]["result"] == [
        {"from": "203.0.113.10", "rtt": 2.001, "annotation": "!F-1400", "err": 4, "mtu": 1400},
        {"from": "203.0.113.11", "rtt": 2.102, "annotation": "!<10>", "err": 10},
        {"x": "*"},
    ]
    assert t["reached"] is True


def test_real_traceroute6_to_a_name() -> None:
    t = parse("traceroute6", REAL_NS_TRACE6_NAMED)
    assert t is not None
    assert (t["af"], t["dst_addr"], t["dst_name"], t["size"]) == (
        6,
        "2001:db8:100::10",
        "web6.lab.test",
        80,
    )
    assert t["result"] == [
        {
            "hop": 1,
            "result": [
                {"from": "2001:db8:100::10", "rtt": rtt, "name": "web6.lab.test"}
                for rtt in (0.035, 0.003)
            ],
        }
    ]
    assert t["reached"] is True


def test_traceroute6_by_hand_and_cut_output() -> None:
    t = parse("TRACEROUTE6", HAND_TRACE6)
    assert t is not None and t["reached"] is True and len(t["result"]) == 2
    cut = parse_traceroute(HAND_TRACE_CUT, "", "-9")
    # The probe cut in the middle of its RTT is not counted.
    assert [len(h["result"]) for h in cut["result"]] == [3, 1]
    assert cut["reached"] is True


# --------------------------------------------------------------------------- the job's target


def test_dst_name_is_the_target_asked_for() -> None:
    # With denied networks the VM hands traceroute the address it checked, never the name:
    # the summary still names what the job asked for.
    pinned = parse("traceroute", REAL_LAB_TRACE_PARTIAL, target="web.lab.test")
    assert pinned is not None
    assert (pinned["dst_addr"], pinned["dst_name"]) == ("198.51.100.10", "web.lab.test")
    assert parse_traceroute(REAL_LAB_TRACE_PARTIAL)["dst_name"] == "198.51.100.10"
    ping = parse("ping", REAL_LAB_PING_UNREACHABLE, target="198.51.100.99")
    assert ping is not None and ping["dst_name"] == "198.51.100.99"
    # A target that is not a host (an HTTP check's URL, host:port) leaves the parser's.
    for odd in ("http://web.lab.test/", "web.lab.test:80", "-x", ""):
        kept = parse("ping", REAL_LAB_PING_NAMED, target=odd)
        assert kept is not None and kept["dst_name"] == "web.lab.test"
    # arping's summary has no Atlas format and no dst_name: untouched.
    arping = parse("arping", REAL_LAB_ARPING, target="gw.lab.test")
    assert arping is not None and "dst_name" not in arping


# --------------------------------------------------------------------------- RIPE Atlas's reader

#: What Atlas adds around a result: the measurement's bookkeeping (here the job's), and the
#: probe firmware whose result format the summaries follow (5000 and later).
ATLAS_ENVELOPE = {"fw": 5080, "msm_id": 1, "prb_id": 1, "timestamp": 1764650000}


def atlas_read(summary: dict[str, Any] | None) -> Result:
    """The summary as ripe.atlas.sagan reads an Atlas result (raising on what it refuses)."""
    assert summary is not None
    return Result.get({**summary, **ATLAS_ENVELOPE}, on_error=Result.ACTION_FAIL)


def test_atlas_reads_our_ping_summaries() -> None:
    named = atlas_read(parse("ping", REAL_LAB_PING_NAMED))
    assert isinstance(named, PingResult) and not named.is_malformed
    assert (named.af, named.destination_address, named.destination_name) == (
        4,
        "198.51.100.10",
        "web.lab.test",
    )
    assert (named.packets_sent, named.packets_received, named.packet_size) == (3, 3, 56)
    assert (named.rtt_min, named.rtt_average, named.rtt_max, named.rtt_median) == (
        0.032,
        0.071,
        0.093,
        0.089,
    )
    assert [(p.rtt, p.ttl, p.dup) for p in named.packets] == [
        (0.032, 63, False),
        (0.093, 63, False),
        (0.089, 63, False),
    ]
    assert named.protocol == "ICMP"
    broadcast = atlas_read(parse("ping", REAL_LAB_PING_BROADCAST))
    assert broadcast.duplicates == 2
    assert [p.dup for p in broadcast.packets] == [False, True, False, True, False]
    # Nothing came back: Atlas's -1 reads as no RTT, each probe as one without an answer.
    lost = atlas_read(parse("ping", REAL_LAB_PING_UNREACHABLE))
    assert (lost.packets_sent, lost.packets_received, lost.rtt_min, lost.rtt_average) == (
        4,
        0,
        None,
        None,
    )
    assert [p.rtt for p in lost.packets] == [None] * 4


def test_atlas_reads_our_traceroute_summaries() -> None:
    partial = atlas_read(parse("traceroute", REAL_LAB_TRACE_PARTIAL, target="web.lab.test"))
    assert isinstance(partial, TracerouteResult) and not partial.is_malformed
    assert (partial.af, partial.destination_address, partial.destination_name) == (
        4,
        "198.51.100.10",
        "web.lab.test",
    )
    assert partial.total_hops == 7 and partial.destination_ip_responded is True
    assert partial.ip_path[0] == ["203.0.113.1", None, None]
    assert partial.ip_path[-1] == [None, "198.51.100.10", "198.51.100.10"]
    silent = atlas_read(parse("traceroute", REAL_LAB_TRACE_SILENT))
    assert silent.destination_ip_responded is False
    assert silent.ip_path == [[None, None]] * 3
    # traceroute's !H, !N, !X are Atlas's err letters; Atlas's reader calls them errors.
    for text, message in (
        (HAND_TRACE_HOST_UNREACHABLE, "Destination unreachable"),
        (HAND_TRACE_NET_UNREACHABLE, "Network unreachable"),
        (HAND_TRACE_PROHIBITED, "Administratively prohibited"),
    ):
        with pytest.raises(ResultError, match=message):
            atlas_read(parse("traceroute", text))


# --------------------------------------------------------------------------- jc


def test_jc_ping_gets_real_lab_output_wrong() -> None:
    # Why parsers/ping.py is not built on jc: on real output of our ping it loses what
    # the summary must show. If a jc release reads these right, switch to it.
    unreachable = jc.parse("ping", REAL_LAB_PING_UNREACHABLE, quiet=True)
    assert unreachable["errors"] == 4 and unreachable["responses"] == []  # lines dropped
    assert len(parse_ping(REAL_LAB_PING_UNREACHABLE)["unreachable"]) == 4
    cut = jc.parse("ping", REAL_LAB_PING_CUT, quiet=True)
    assert [r["icmp_seq"] for r in cut["responses"]] == [None, None, None]
    assert [r["time_ms"] for r in cut["responses"]] == [None, None, None]
    assert [r["duplicate"] for r in cut["responses"]] == [False, True, True]
    assert [r["seq"] for r in parse_ping(REAL_LAB_PING_CUT)["result"]] == [1, 2, 3]


def test_jc_traceroute_drops_unanswered_probes() -> None:
    jc_hops = jc.parse("traceroute", REAL_LAB_TRACE_PARTIAL, quiet=True)["hops"]
    # "1  203.0.113.1  0.044 ms * *": jc keeps one probe of three, hop 2 has none, so
    # Atlas's {"x": "*"} per probe cannot be made from it.
    assert [len(h["probes"]) for h in jc_hops[:2]] == [1, 0]
    ours = parse_traceroute(REAL_LAB_TRACE_PARTIAL)["result"]
    assert [len(h["result"]) for h in ours[:2]] == [3, 3]


def test_jc_has_no_arping_parser() -> None:
    assert "arping" not in jc.parser_mod_list()


# --------------------------------------------------------------------------- arping


def test_real_lab_arping() -> None:
    a = parse("arping", REAL_LAB_ARPING)
    assert a is not None
    assert {k: a[k] for k in ("destination", "source", "interface", "sent", "received")} == {
        "destination": "203.0.113.1",
        "source": "203.0.113.10",
        "interface": "eth2",
        "sent": 2,
        "received": 2,
    }
    assert a["replies"] == [
        {"address": "203.0.113.1", "mac": "02:8C:81:0C:9C:F6", "time": 0.554, "kind": "Unicast"},
        {"address": "203.0.113.1", "mac": "02:8C:81:0C:9C:F6", "time": 0.541, "kind": "Unicast"},
    ]
    assert a["macs"] == ["02:8C:81:0C:9C:F6"]
    assert (a["duplicate"], a["dad"], a["complete"]) == (False, False, True)


def test_real_lab_arping_flags_two_macs_for_one_address() -> None:
    a = parse_arping(REAL_LAB_ARPING_DUPLICATE, "", "1")
    assert a["macs"] == ["F6:91:E6:7A:FB:2B", "7E:75:07:98:16:57"]
    assert (a["duplicate"], a["sent"], a["received"]) == (True, 3, 4)
    assert len(a["replies"]) == 4


def test_real_lab_arping_without_answer() -> None:
    a = parse_arping(REAL_LAB_ARPING_NONE, "", "1")
    assert (a["sent"], a["received"], a["replies"], a["macs"]) == (2, 0, [], [])
    assert a["duplicate"] is False


def test_real_lab_arping_duplicate_address_detection() -> None:
    free = parse_arping(REAL_LAB_ARPING_DAD_FREE, "", "0")
    assert (free["dad"], free["duplicate"], free["received"]) == (True, False, 0)
    taken = parse_arping(REAL_LAB_ARPING_DAD_TAKEN, "", "1")
    assert (taken["dad"], taken["duplicate"]) == (True, True)
    assert taken["macs"] == ["02:8C:81:0C:9C:F6"]
    # Cut after the header: -D's exit code 1 still says somebody answered.
    cut = parse_arping("ARPING 203.0.113.1 from 0.0.0.0 eth2\n", "", "1")
    assert (cut["dad"], cut["duplicate"], cut["complete"]) == (True, True, False)


def test_arping_optional_parts() -> None:
    a = parse_arping(HAND_ARPING_ODD)
    assert [(r["kind"], r["mac"], r["time"]) for r in a["replies"]] == [
        ("Broadcast", "02:C0:C1:16:F1:77", 0.7),
        ("Unicast", "02:C0:C1:16:F1:77", 0.812),
        ("Unicast", "02:C0:C1:16:F1:77", None),
    ]
    # Lower-case and upper-case spellings are the same MAC: no duplicate.
    assert a["macs"] == ["02:C0:C1:16:F1:77"] and a["duplicate"] is False
    assert a["received"] == 3


# --------------------------------------------------------------------------- dispatch


def test_every_diagnostic_type_has_a_parser() -> None:
    assert set(registry.TYPES) <= set(parsers.PARSERS)
    assert parsers.PARSERS["ping6"] is parse_ping
    assert parsers.PARSERS["traceroute6"] is parse_traceroute


def test_unknown_types_have_no_summary() -> None:
    assert parse("nmap", REAL_PING) is None
    assert parse("", REAL_PING) is None
    assert parse(None, REAL_PING) is None  # type: ignore[arg-type]


def test_odd_arguments_do_not_raise() -> None:
    assert parse("ping", None) is not None  # type: ignore[arg-type]
    from_bytes = parse("ping", REAL_PING.encode(), b"", 0)  # type: ignore[arg-type]
    assert from_bytes is not None and from_bytes["rcvd"] == 3
    for code in ("", "x", " 1 ", "99999999999999999999", "-1"):
        assert parse("arping", REAL_LAB_ARPING_DAD_FREE, "", code) is not None
    assert parse("ping", REAL_PING, target=None) is not None


@pytest.mark.parametrize("text", ALL_SAMPLES)
def test_samples_are_json_ready_for_every_type(text: str) -> None:
    for kind in parsers.PARSERS:
        result = parse(kind, text)
        assert result is not None
        assert_json_ready(result)


# --------------------------------------------------------------------------- markup


def test_markup_stays_inert_text() -> None:
    script = "<script>alert(1)</script>"
    img = "<img src=x onerror=alert(1)>"
    trace = parse(
        "traceroute",
        f"traceroute to {script} (198.51.100.10), 5 hops max, 60 byte packets\n"
        f" 1  {script} (203.0.113.1)  0.5 ms  0.4 ms\n"
        " 2  198.51.100.10  0.7 ms\n",
    )
    assert trace is not None
    assert trace["dst_name"] == script
    assert [r["name"] for r in trace["result"][0]["result"]] == [script, script]
    assert trace["reached"] is True

    ping = parse(
        "ping",
        f"PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.\n"
        f"From 203.0.113.1 icmp_seq=1 {img}\n"
        f"64 bytes from {script}: icmp_seq=2 ttl=63 time=0.5 ms\n",
    )
    assert ping is not None
    assert ping["unreachable"][0]["message"] == img
    # The replier's name is not kept (Atlas keeps addresses); the text shows it.
    assert ping["result"][1] == {"rtt": 0.5, "ttl": 63, "seq": 2}

    arping = parse("arping", f"ARPING 203.0.113.1 from 203.0.113.30 {script}\n")
    assert arping is not None and arping["interface"] == script

    # Kept whole, as plain strings, nothing else made of them.
    for result in (trace, ping, arping):
        assert_json_ready(result)
        for value in strings_in(result):
            assert ("<" not in value) or value in (script, img)


# --------------------------------------------------------------------------- bounds


def test_huge_output_is_cut_at_max_lines() -> None:
    reply = "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.030 ms\n"
    started = time.monotonic()
    p = parse("ping", reply * (parsers.MAX_LINES * 5))
    assert p is not None and len(p["result"]) == parsers.MAX_LINES
    # Each over-long line is cut (MAX_LINE_CHARS), the whole text too (MAX_CHARS).
    hop = " 1  " + "203.0.113.1  0.5 ms  " * 5000 + "\n"
    t = parse("traceroute", hop * 10)
    assert t is not None and len(t["result"]) == 10
    assert all(0 < len(h["result"]) < parsers.MAX_LINE_CHARS // 10 for h in t["result"])
    many = parse("traceroute", hop * 1000)
    assert many is not None and len(many["result"]) < 1000
    # A summary claiming a billion probes lost gets no more timeouts than lines are read.
    claimed = parse("ping", "999999999 packets transmitted, 0 received, 100% packet loss\n")
    assert claimed is not None and claimed["sent"] == 999_999_999
    assert len(claimed["result"]) == parsers.MAX_LINES
    one_line = parse("arping", "x" * 20_000_000)
    assert one_line is not None and one_line["replies"] == []
    assert time.monotonic() - started < 30


# --------------------------------------------------------------------------- properties

TYPE_NAMES = [*sorted(parsers.PARSERS), "PING", "Traceroute6", "nmap"]
DIRECT_PARSERS = [parse_ping, parse_traceroute, parse_arping]
# Pieces of real output, so that random text often gets deep into the patterns.
WORDS = sorted(
    {word for text in ALL_SAMPLES for word in text.replace("\n", " ").split(" ") if word}
    | {"*", "!H", "ms", "(DUP!)", "\n", " ", "  ", "(", ")", "[", "]", ":", "9" * 40, "1e999"}
)
tool_like = st.lists(st.sampled_from(WORDS), max_size=80).map(" ".join)


@st.composite
def mutated_sample(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(ALL_SAMPLES))
    cut = draw(st.integers(0, len(text)))
    insert = draw(st.text(max_size=30))
    keep = draw(st.integers(0, len(text)))
    return text[:cut] + insert + text[min(cut + keep, len(text)) :]


@settings(deadline=None, max_examples=300)
@given(
    kind=st.sampled_from(TYPE_NAMES),
    text=st.text(max_size=2000),
    target=st.one_of(st.none(), st.sampled_from(["web.lab.test", "::1"]), st.text(max_size=40)),
)
def test_any_text_gives_json_or_none(kind: str, text: str, target: str | None) -> None:
    result = parse(kind, text, target=target)
    if kind.lower() == "nmap":
        assert result is None
    else:
        # Each summary names its parser (ping6 is summarised as ping).
        assert result is not None and result["type"] == registry.get_type(kind).parser_name
        assert_json_ready(result)


@settings(deadline=None, max_examples=300)
@given(
    index=st.integers(0, len(DIRECT_PARSERS) - 1),
    text=st.one_of(tool_like, mutated_sample(), st.text(max_size=500)),
    stderr=st.text(max_size=50),
    exitcode=st.text(max_size=5),
)
def test_parsers_themselves_never_raise(index: int, text: str, stderr: str, exitcode: str) -> None:
    # Called directly, without parse()'s backstop: a parser bug would show up here.
    result = DIRECT_PARSERS[index](text, stderr, exitcode)
    assert_json_ready(result)
    if result["type"] == "ping":
        assert min(result["sent"], result["rcvd"], result["dup"], result["errors"]) >= 0
        assert result["loss"] is None or isinstance(result["loss"], float)
        # Atlas's entries: a timeout is {"x": "*"} (and our seq), nothing of a reply.
        assert all("x" not in r or set(r) <= {"x", "seq"} for r in result["result"])
    if result["type"] == "traceroute":
        assert all(isinstance(h["hop"], int) and h["result"] for h in result["result"])
        assert all(("x" in r) != ("from" in r) for h in result["result"] for r in h["result"])
    if result["type"] == "arping":
        assert isinstance(result["duplicate"], bool)

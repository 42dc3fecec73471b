#!/usr/bin/env python3
"""Prints where the decisions' time went, from the services' Prometheus metrics.

Usage: hop_times.py edge=PORT keys=PORT authz=PORT ...  (metrics ports on 127.0.0.1)

For each method the edge calls, the mean of the service's own grpc_server_handling_seconds
beside the mean of the call as the edge saw it (grpc_client_handling_seconds): the difference
is the hop's cost, the RPC itself and the hand-offs on both sides. Then the edge's own
methods. Means cover everything since the servers started.
"""

import re
import sys
import urllib.request

SAMPLE = re.compile(r'^(grpc_(?:server|client)_handling_seconds)_(sum|count)\{([^}]*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def means(port):
    """{(kind, service, method): (count, mean seconds)} for one process's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    sums, counts = {}, {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        name, part, labels, value = match.groups()
        labels = dict(LABEL.findall(labels))
        key = ("server" if "server" in name else "client", labels.get("grpc_service", ""),
               labels.get("grpc_method", ""))
        (sums if part == "sum" else counts)[key] = float(value)
    return {k: (counts[k], sums[k] / counts[k]) for k in counts if counts[k] > 0}


def main(argv):
    ports = dict(arg.split("=", 1) for arg in argv[1:])
    served = {}
    for name, port in ports.items():
        for (kind, service, method), value in means(port).items():
            if kind == "server" and method != "Ping" and service.startswith("policy."):
                served[(service, method)] = value
    edge = means(ports["edge"]) if "edge" in ports else {}
    print(f"{'call':50} {'calls':>8} {'service':>12} {'as the edge saw it':>20}")
    for (service, method), (count, mean) in sorted(served.items()):
        seen = edge.get(("client", service, method))
        if seen is None and not service.startswith("policy.edge."):
            continue  # Not on the decisions' path (the load generator's set-up calls).
        seen_text = f"{seen[1] * 1e6:17.0f} us" if seen else ""
        print(f"{service + '/' + method:50} {count:8.0f} {mean * 1e6:9.0f} us {seen_text:>20}")


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""The cluster DNS at scale, without root: how long the index of N services (two ports and three
endpoints each, every fifth headless) takes to build when the lab changes (update and the first
A and PTR answers after it, which build the index), and how long one
query takes to answer from it. Prints a table; asserts nothing. Run: python3 bench/bench_dns.py
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dnslib import DNSRecord  # noqa: E402

from kubenet_lab.plan import make_plan  # noqa: E402
from kubenet_lab.model.objects import Endpoint, Model, PlannedService, PlannedServicePort  # noqa: E402
from kubenet_lab.servers.dns import ClusterDNS  # noqa: E402


def services(count: int) -> tuple[PlannedService, ...]:
    out = []
    for i in range(count):
        eps = tuple(Endpoint(IPv4Address(int(IPv4Address("10.244.0.2")) + (3 * i + k) % 60000), 8080,
                             f"bench/p{i}-{k}", "node1") for k in range(3))
        ip = None if i % 5 == 0 else IPv4Address(int(IPv4Address("10.96.1.0")) + i)
        out.append(PlannedService("bench", f"s{i}", "ClusterIP", ip, (
            PlannedServicePort("http", "TCP", 80, 8080, None, eps),
            PlannedServicePort("m", "TCP", 81, 8080, None, eps))))
    return tuple(out)


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    base = make_plan(Model(), "bench")
    print("| services | update + first A and PTR answers (best) | (median) | one A query after that |")
    print("| ---: | ---: | ---: | ---: |")
    for n in map(int, args.sizes.split(",")):
        plan = dataclasses.replace(base, services=services(n))
        dns = ClusterDNS(base)
        query = DNSRecord.question(f"s{n - 1}.bench.svc.cluster.local").pack()
        # The index is built lazily: an update costs little until the first question after it.
        ptr = DNSRecord.question("2.0.244.10.in-addr.arpa", "PTR").pack()   # builds the reverse index
        # (the lambdas are called within this iteration: B023's late binding cannot bite)
        runs = [timed(lambda: (dns.update(plan), dns.answer(query), dns.answer(ptr)))  # noqa: B023
                for _ in range(args.runs)]
        per_query = min(timed(lambda: [dns.answer(query) for _ in range(1000)]) for _ in range(3)) / 1000  # noqa: B023
        print(f"| {n} | {min(runs) * 1000:.1f} ms | {statistics.median(runs) * 1000:.1f} ms | "
              f"{per_query * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()

"""kube-proxy's chain and set names, computed from the same inputs as kube-proxy computes them.

Same service port, same name as on a real node, so `iptables-save` or `nft list table ip
kube-proxy` inside a lab node reads like a real cluster's. Every function is cached: a render
for several nodes, or a re-render after a one-service change, hashes each name only once.
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

NFT_NAME_MAX = 256 - 16  # knftables.NameLengthMax minus the longest prefix kube-proxy uses


def port_name(namespace: str, name: str, port: str | None) -> str:
    """proxy.ServicePortName.String(): `ns/name`, plus `:port` only for a named port."""
    return f"{namespace}/{name}:{port}" if port else f"{namespace}/{name}"


def _b32(data: str) -> str:
    return base64.b32encode(hashlib.sha256(data.encode()).digest()).decode()


@lru_cache(maxsize=None)
def _port_proto_hash(spn: str, proto: str) -> str:
    return _b32(spn + proto.lower())[:16]


def svc_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "KUBE-SVC-" + _port_proto_hash(port_name(ns, name, port), proto)


def svl_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "KUBE-SVL-" + _port_proto_hash(port_name(ns, name, port), proto)


def ext_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "KUBE-EXT-" + _port_proto_hash(port_name(ns, name, port), proto)


def fw_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "KUBE-FW-" + _port_proto_hash(port_name(ns, name, port), proto)


@lru_cache(maxsize=None)
def sep_chain(ns: str, name: str, port: str | None, proto: str, endpoint: str) -> str:
    """`endpoint` is `ip:port`, as kube-proxy's BaseEndpointInfo.String() gives it."""
    return "KUBE-SEP-" + _b32(port_name(ns, name, port) + proto.lower() + endpoint)[:16]


# --- nftables -------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _hash_and_truncate(name: str) -> str:
    """The hash goes first so that chains of one service that differ in one digit still look
    different at a glance; truncation only matters for absurdly long IPv6 endpoint names."""
    full = _b32(name)[:8] + "-" + name
    return full if len(full) <= NFT_NAME_MAX else full[: NFT_NAME_MAX - 3] + "..."


def nft_service_base(ns: str, name: str, port: str | None, proto: str) -> str:
    return _hash_and_truncate(f"{ns}/{name}/{proto.lower()}/{port or ''}")


def nft_endpoint_base(ns: str, name: str, port: str | None, proto: str, endpoint: str) -> str:
    ip, _, eport = endpoint.rpartition(":")
    ip = ip.strip("[]").replace(":", ".")
    return _hash_and_truncate(f"{ns}/{name}/{proto.lower()}/{port or ''}__{ip}/{eport}")


def nft_service_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "service-" + nft_service_base(ns, name, port, proto)


def nft_local_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "local-" + nft_service_base(ns, name, port, proto)


def nft_external_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "external-" + nft_service_base(ns, name, port, proto)


def nft_firewall_chain(ns: str, name: str, port: str | None, proto: str) -> str:
    return "firewall-" + nft_service_base(ns, name, port, proto)


def nft_endpoint_chain(ns: str, name: str, port: str | None, proto: str, endpoint: str) -> str:
    return "endpoint-" + nft_endpoint_base(ns, name, port, proto, endpoint)


def nft_affinity_set(ns: str, name: str, port: str | None, proto: str, endpoint: str) -> str:
    return "affinity-" + nft_endpoint_base(ns, name, port, proto, endpoint)

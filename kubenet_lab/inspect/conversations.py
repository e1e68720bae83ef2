"""What `check` says to each kind of server and how it reads the answer (pure wire format).

`question` gives the bytes to send for an expectation (None: connect only) and what the answer
will tell; `understand` turns the bytes that came back into that value: the server's hostname,
the caller's address as the server saw it, the addresses a DNS answer holds, or only that
something answered.
"""
from __future__ import annotations

import struct

from .expectations import (CONNECT, DNS, HTTP, HTTP_ANY, HTTP_HOSTNAME, ICMP, TCP_HOSTNAME, UDP, UDP_CLIENTIP,
                           Expectation)

HOSTNAME, CLIENTIP, ADDRESSES, ANYTHING, CONNECTED = "hostname", "clientip", "addresses", "anything", "connected"
DNS_ANSWER = "dns-answer"  # any well-formed DNS answer: the server is there


def _http_get(path: str, host: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kubenet-lab-check\r\n"
            f"Connection: close\r\n\r\n").encode()


def dns_query(name: str, ident: int = 0x6b6c) -> bytes:
    """A DNS query for the A records of `name` (recursion desired)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", 1, 1)


def _skip_name(msg: bytes, i: int) -> int:
    while i < len(msg):
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1
    raise ValueError("name runs past the message")


def dns_addresses(msg: bytes) -> tuple[int, list[str]]:
    """(rcode, the A records' addresses) of a DNS answer."""
    if len(msg) < 12:
        raise ValueError("short DNS message")
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    i = 12
    for _ in range(qd):
        i = _skip_name(msg, i) + 4
    out = []
    for _ in range(an):
        i = _skip_name(msg, i)
        rtype, _, _, length = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and length == 4:
            out.append(".".join(str(b) for b in msg[i:i + 4]))
        i += length
    return flags & 0x000F, out


def question(exp: Expectation) -> tuple[bytes | None, str]:
    """(what to send, what the answer tells) for one request of `exp`."""
    talk, host = exp.talk, f"{exp.dst_ip}:{exp.port}"
    if talk == ICMP:
        return None, CONNECTED
    if talk == HTTP:
        return (_http_get("/clientip", host), CLIENTIP) if exp.source_ip else (_http_get("/hostname", host), HOSTNAME)
    if talk == HTTP_HOSTNAME:
        return _http_get("/", host), HOSTNAME
    if talk == HTTP_ANY:
        return _http_get("/", host), ANYTHING
    if talk == TCP_HOSTNAME:
        return None, HOSTNAME
    if talk == UDP_CLIENTIP:
        return (b"clientip", CLIENTIP) if exp.source_ip else (b"hostname", HOSTNAME)
    if talk == UDP:
        return b"hostname", HOSTNAME
    if talk == DNS:
        query = dns_query(exp.name or "kubernetes.default")
        if exp.proto == "tcp":
            query = struct.pack("!H", len(query)) + query
        return query, (ADDRESSES if exp.name else DNS_ANSWER)
    if talk == CONNECT:
        return None, CONNECTED
    raise ValueError(f"no way to talk {talk!r}")


def understand(what: str, proto: str, data: bytes) -> str | list[str]:
    """The value an answer tells (ValueError when it is not the answer expected)."""
    if what in (CONNECTED, ANYTHING):
        if what == ANYTHING and proto == "tcp" and not data.startswith(b"HTTP/"):
            raise ValueError(f"not an HTTP answer: {data[:40]!r}")
        return ""
    if what in (ADDRESSES, DNS_ANSWER):
        if proto == "tcp":
            data = data[2:]
        rcode, addresses = dns_addresses(data)
        if what == DNS_ANSWER:
            return ""
        if rcode:
            raise ValueError({3: "NXDOMAIN", 2: "SERVFAIL", 5: "REFUSED"}.get(rcode, f"rcode {rcode}"))
        return sorted(addresses)
    body = data
    if proto == "tcp" and data.startswith(b"HTTP/"):
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or status[1] != b"200":
            raise ValueError(f"HTTP {b' '.join(status[1:]).decode(errors='replace')}")
        if b"transfer-encoding: chunked" in head.lower():
            body = _unchunk(body)
    text = body.decode(errors="replace").strip()
    if what == CLIENTIP:
        return text.rsplit(":", 1)[0] if ":" in text else text
    return text


def _unchunk(body: bytes) -> bytes:
    out, i = b"", 0
    while i < len(body):
        line_end = body.find(b"\r\n", i)
        if line_end < 0:
            break
        size = int(body[i:line_end].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += body[line_end + 2:line_end + 2 + size]
        i = line_end + 2 + size + 2
    return out


def complete(what: str, proto: str):
    """For a TCP answer that does not end with the connection (DNS over TCP: one
    length-prefixed message): whether the bytes so far are all of it; None: read to the end."""
    if proto == "tcp" and what in (ADDRESSES, DNS_ANSWER):
        return lambda data: len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]
    return None

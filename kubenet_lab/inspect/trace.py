"""A netfilter simulator: the path of a connection's first packet through one node's rules.

It parses a node's rules -- the renderers' output (iptables-restore text or the nft transaction)
or what the live kernel lists (`iptables-save`, `nft list ruleset`, see `parse_live`) -- into one
small rule model and follows the first packet of a connection through the netfilter hooks a node
passes it through: where it ends (DNAT target), whether it is masqueraded, accepted, dropped or
rejected, with the probability of every branch (`statistic`, `numgen`). Session affinity is
answered for a given client state: `known` maps an affinity list/set name to the age in seconds
of the client's entry; each outcome records the lists/sets the connection would add it to.
It understands exactly what the renderers write (and the kernel's listing of it) and rejects
anything else, so an unexpected rule shows up as an error instead of being silently ignored.
Every state carries the rules it went through (`path`: chain, rule index), so `trace` can name
the rules that matched. Used by `kubenet-lab trace` (inspect/path.py) and the renderers' tests.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, ip_network
from typing import Callable, Iterable, Iterator, Mapping

CONT, MISS = "cont", "miss"
TERMINAL = ("accept", "drop", "reject")


@dataclass(frozen=True)
class _State:
    src: IPv4Address
    dst: IPv4Address
    proto: str
    dport: int
    local: frozenset
    known: Mapping[str, float]
    mark: int = 0
    dnat: str | None = None
    masq: bool = False
    recorded: frozenset = frozenset()
    path: tuple = ()  # (chain, rule index) of every rule that jumped, went to, or decided


Step = Callable[[_State, "Ruleset"], Iterable[tuple[float, _State, object]]]


@dataclass
class Ruleset:
    chains: dict[str, list[list[Step]]] = field(default_factory=dict)
    hooks: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # hook -> (prio, chain)
    sets: dict[str, set] = field(default_factory=dict)
    maps: dict[str, dict[tuple, tuple]] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)  # chain -> each rule as written

    def rule_text(self, chain: str, i: int) -> str:
        texts = self.texts.get(chain, [])
        return texts[i] if i < len(texts) else ""

    def hook_chains(self, hook: str) -> list[str]:
        return [c for _, c in sorted(self.hooks.get(hook, []), key=lambda pc: pc[0])]


@dataclass(frozen=True)
class Outcome:
    probability: float
    verdict: str  # accept, drop or reject
    endpoint: str | None  # "ip:port" the packet was DNATed to, None if not
    masquerade: bool
    recorded: frozenset  # affinity lists/sets this connection adds the client to


@dataclass(frozen=True)
class Trace:
    outcomes: tuple[Outcome, ...]

    @property
    def endpoints(self) -> dict[str, float]:
        """Endpoint -> probability, over accepted DNATed outcomes."""
        out: dict[str, float] = {}
        for o in self.outcomes:
            if o.verdict == "accept" and o.endpoint:
                out[o.endpoint] = out.get(o.endpoint, 0.0) + o.probability
        return out

    def probability(self, verdict: str) -> float:
        return sum(o.probability for o in self.outcomes if o.verdict == verdict)

    @property
    def rejected(self) -> bool:
        return abs(self.probability("reject") - 1) < 1e-9

    @property
    def dropped(self) -> bool:
        return abs(self.probability("drop") - 1) < 1e-9

    @property
    def masqueraded(self) -> bool:
        """Every outcome that reaches an endpoint is masqueraded (False if none does)."""
        hits = [o for o in self.outcomes if o.verdict == "accept" and o.endpoint]
        return bool(hits) and all(o.masquerade for o in hits)

    @property
    def untouched(self) -> bool:
        """Accepted without DNAT: the proxy let the packet pass as it was."""
        return all(o.verdict == "accept" and not o.endpoint for o in self.outcomes)

    def recorded_for(self, endpoint: str) -> frozenset:
        return frozenset().union(*(o.recorded for o in self.outcomes if o.endpoint == endpoint))


# --- evaluation -----------------------------------------------------------------------------


def _run_chain(rs: Ruleset, chain: str, i: int, st: _State, p: float) -> Iterator:
    rules = rs.chains[chain]
    if i >= len(rules):
        yield p, st, None
        return
    yield from _run_steps(rs, chain, i, 0, st, p)


def _run_steps(rs: Ruleset, chain: str, i: int, j: int, st: _State, p: float) -> Iterator:
    rule = rs.chains[chain][i]
    if j == len(rule):
        yield from _run_chain(rs, chain, i + 1, st, p)
        return
    for q, st2, res in rule[j](st, rs):
        if q == 0:
            continue
        pq = p * q
        if res not in (CONT, MISS):
            st2 = replace(st2, path=st2.path + ((chain, i),))
        if res == CONT:
            yield from _run_steps(rs, chain, i, j + 1, st2, pq)
        elif res == MISS:
            yield from _run_chain(rs, chain, i + 1, st2, pq)
        elif res[0] == "jump":
            for p3, st3, verdict in _run_chain(rs, res[1], 0, st2, pq):
                if verdict is None:
                    yield from _run_chain(rs, chain, i + 1, st3, p3)
                else:
                    yield p3, st3, verdict
        elif res[0] == "goto":
            yield from _run_chain(rs, res[1], 0, st2, pq)
        elif res[0] == "return":
            yield pq, st2, None
        else:
            yield pq, st2, res[0]


def _run_hook(rs: Ruleset, hook: str, st: _State, p: float) -> Iterator:
    """Every base chain of the hook in priority order; a drop or reject ends the packet."""
    todo = [(p, st, None)]
    for chain in rs.hook_chains(hook):
        nxt = []
        for p1, st1, verdict in todo:
            if verdict in ("drop", "reject"):
                nxt.append((p1, st1, verdict))
                continue
            for p2, st2, v2 in _run_chain(rs, chain, 0, st1, p1):
                nxt.append((p2, st2, v2 if v2 in ("drop", "reject") else None))
        todo = nxt
    yield from todo


def _dest_local(st: _State) -> bool:
    return str(st.dst) in st.local


def trace_packet(rs: Ruleset, st: _State, source: str) -> Trace:
    first = ["OUTPUT"] if source == "node" else ["PREROUTING"]
    paths = [(1.0, st, None)]
    for hook in first:
        paths = [r for p, s, v in paths for r in _run_hook(rs, hook, s, p)]
    results = []
    for p, s, v in paths:
        if v is None and source != "node":
            hooks = ["INPUT"] if _dest_local(s) else ["FORWARD", "POSTROUTING"]
        else:
            hooks = ["POSTROUTING"] if v is None else []
        cur = [(p, s, v)]
        for hook in hooks:
            cur = [r for p1, s1, v1 in cur
                   for r in ([(p1, s1, v1)] if v1 else _run_hook(rs, hook, s1, p1))]
        results += cur
    merged: dict[tuple, float] = {}
    for p, s, v in results:
        key = (v or "accept", s.dnat, s.masq, s.recorded)
        merged[key] = merged.get(key, 0.0) + p
    return Trace(tuple(Outcome(p, *k) for k, p in merged.items()))


# --- steps shared by both syntaxes ------------------------------------------------------------


def _match(pred: Callable[[_State], bool]) -> Step:
    return lambda st, rs: [(1.0, st, CONT if pred(st) else MISS)]


def _chance(prob: float) -> Step:
    return lambda st, rs: [(prob, st, CONT), (1 - prob, st, MISS)]


def _do(fn: Callable[[_State], _State], verdict=CONT) -> Step:
    return lambda st, rs: [(1.0, fn(st), verdict)]


def _addr_match(field_: str, value: str, negate: bool) -> Step:
    net = ip_network(value, strict=False)
    return _match(lambda st: (getattr(st, field_) in net) != negate)


def _known(name: str, max_age: float | None) -> Step:
    def pred(st: _State) -> bool:
        age = st.known.get(name)
        return age is not None and (max_age is None or age <= max_age)
    return _match(pred)


def _record(name: str) -> Step:
    return _do(lambda st: replace(st, recorded=st.recorded | {name}))


def _dnat(to: str) -> Step:
    """Later hooks see the translated packet, as the kernel's do."""
    ip, _, port = to.rpartition(":")
    return _do(lambda st: replace(st, dnat=to, dst=IPv4Address(ip), dport=int(port)), ("accept",))


def _masquerade() -> Step:
    return _do(lambda st: replace(st, masq=True), ("accept",))


_RECENT = ("--name", "--set", "--rcheck", "--seconds", "--reap", "--mask", "--rsource")

# --- iptables-restore text -------------------------------------------------------------------

_IPT_HOOKS = {("nat", "PREROUTING"): ("PREROUTING", -100), ("nat", "OUTPUT"): ("OUTPUT", -100),
              ("nat", "POSTROUTING"): ("POSTROUTING", 100), ("nat", "INPUT"): ("INPUT", 100),
              ("filter", "INPUT"): ("INPUT", 0), ("filter", "FORWARD"): ("FORWARD", 0),
              ("filter", "OUTPUT"): ("OUTPUT", 0)}


def parse_iptables(text: str) -> Ruleset:
    rs = Ruleset()
    table = ""
    for line in text.splitlines():
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
            for (t, chain), (hook, prio) in _IPT_HOOKS.items():
                if t == table and f"{table}/{chain}" not in rs.chains:  # a table may come again
                    rs.chains[f"{table}/{chain}"] = []
                    rs.hooks.setdefault(hook, []).append((prio, f"{table}/{chain}"))
        elif line.startswith(":"):
            rs.chains[f"{table}/{line[1:].split()[0]}"] = []
        else:
            words = shlex.split(line)
            op, chain, args = words[0], words[1], words[2:]
            texts = rs.texts.setdefault(f"{table}/{chain}", [])
            if op == "-A":
                rs.chains[f"{table}/{chain}"].append(_ipt_rule(table, args))
                texts.append(line)
            elif op == "-I":
                pos = int(args.pop(0)) - 1 if args and args[0].isdigit() else 0
                rs.chains[f"{table}/{chain}"].insert(pos, _ipt_rule(table, args))
                texts.insert(pos, line)
            else:
                raise ValueError(f"unsupported iptables line: {line}")
    return rs


def _ipt_rule(table: str, args: list[str]) -> list[Step]:
    steps: list[Step] = []
    i, neg = 0, False
    while i < len(args):
        a = args[i]
        if a == "!":
            neg, i = True, i + 1
            continue
        if a == "-m" and args[i + 1] in ("comment", "tcp", "udp", "sctp", "addrtype", "statistic",
                                         "recent", "mark", "conntrack", "multiport", "nfacct"):
            i += 2
        elif a in ("--comment", "--nfacct-name"):  # an nfacct match only counts: it always matches
            i += 2
        elif a == "-p":
            proto = args[i + 1]
            steps.append(_match(lambda st, proto=proto: st.proto == proto))
            i += 2
        elif a == "--dport":
            port = int(args[i + 1])
            steps.append(_match(lambda st, port=port: st.dport == port))
            i += 2
        elif a in ("--destination-ports", "--dports"):
            ports = {int(p) for p in args[i + 1].split(",")}
            steps.append(_match(lambda st, ports=ports: st.dport in ports))
            i += 2
        elif a in ("-s", "-d"):
            steps.append(_addr_match("src" if a == "-s" else "dst", args[i + 1], neg))
            i += 2
        elif a in ("--dst-type", "--src-type"):
            assert args[i + 1] == "LOCAL", args
            fld = "dst" if a == "--dst-type" else "src"
            steps.append(_match(lambda st, f=fld, n=neg: (str(getattr(st, f)) in st.local) != n))
            i += 2
        elif a == "--mode":
            assert args[i + 1] == "random" and args[i + 2] == "--probability"
            steps.append(_chance(float(args[i + 3])))
            i += 4
        elif a in _RECENT:  # as rendered (--name first) or as iptables-save lists it
            opts: dict[str, str | None] = {}
            while i < len(args) and args[i] in _RECENT:
                takes = args[i] in ("--name", "--seconds", "--mask")
                opts[args[i]] = args[i + 1] if takes else None
                i += 2 if takes else 1
            if "--set" in opts:
                steps.append(_record(opts["--name"]))
            elif "--rcheck" in opts:
                steps.append(_known(opts["--name"], float(opts["--seconds"]) if "--seconds" in opts else None))
            else:
                raise ValueError(f"unsupported recent options: {args}")
        elif a == "--mark":
            value, mask = (int(x, 16) for x in args[i + 1].split("/"))
            steps.append(_match(lambda st, v=value, m=mask, n=neg: ((st.mark & m) == v) != n))
            i += 2
        elif a == "--ctstate":
            states = set(args[i + 1].split(","))
            steps.append(_match(lambda st, s=states, n=neg: ("NEW" in s) != n))  # first packet
            i += 2
        elif a in ("-j", "-g"):
            steps.append(_ipt_target(table, a, args[i + 1:]))
            break
        else:
            raise ValueError(f"unsupported iptables argument {a!r} in {args}")
        neg = False
    return steps


def _ipt_target(table: str, how: str, args: list[str]) -> Step:
    target, opts = args[0], args[1:]
    if target == "DNAT":
        return _dnat(opts[opts.index("--to-destination") + 1])
    if target == "MASQUERADE":
        return _masquerade()
    if target == "MARK":
        op, value = opts[0], int(opts[1].split("/")[0], 16)
        mask = int(opts[1].split("/")[1], 16) if "/" in opts[1] else 0xFFFFFFFF
        fn = {"--or-mark": lambda m: m | value, "--xor-mark": lambda m: m ^ value,
              "--set-xmark": lambda m: (m & ~mask) ^ value}[op]
        return _do(lambda st: replace(st, mark=fn(st.mark)))
    if target in ("ACCEPT", "DROP", "REJECT"):
        return _do(lambda st: st, (target.lower(),))
    if target == "RETURN":
        return _do(lambda st: st, ("return",))
    return _do(lambda st: st, ("goto" if how == "-g" else "jump", f"{table}/{target}"))


# --- what the live kernel lists ------------------------------------------------------------


def parse_live(text: str, syntax: str) -> Ruleset:
    """A node's rules as the kernel lists them: `iptables-save` output ("iptables") or
    `nft list ruleset` output ("nft"); "nft-tx": an nft transaction as the renderers write it."""
    if syntax == "iptables":
        return parse_iptables(text)
    if syntax == "nft-tx":
        return parse_nftables(text)
    return parse_nftables(nft_listing_to_transaction(text))


_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def _seconds(duration: str) -> float:
    """nft's `3h`, `2h59m50s`, `10800s`, `500ms`."""
    total, num = 0.0, ""
    i = 0
    while i < len(duration):
        c = duration[i]
        if c.isdigit():
            num += c
            i += 1
            continue
        unit = "ms" if duration[i:i + 2] == "ms" else c
        total += int(num or 0) * _UNITS[unit]
        num, i = "", i + len(unit)
    return total + (int(num) if num else 0)


def _spaced_commas(line: str) -> str:
    """`{ a, b }` -> `{ a , b }`: one word per comma, as the renderers write lists."""
    out, quoted = [], False
    for c in line:
        if c == '"':
            quoted = not quoted
        out.append(" , " if c == "," and not quoted else c)
    return " ".join("".join(out).split())


def nft_listing_to_transaction(text: str) -> str:
    """`nft list ruleset` (blocks) -> the `add ...` lines `parse_nftables` reads. Sets and maps
    keep their elements; an element's `timeout`/`expires` (affinity sets) stays in the set."""
    lines: list[str] = []
    table = kind = name = None
    header: list[str] = []
    raw = text.splitlines()
    k = 0
    while k < len(raw):
        line = raw[k].strip()
        k += 1
        if line.startswith("elements = {"):
            while line.count("{") > line.count("}") and k < len(raw):  # elements span lines
                line += " " + raw[k].strip()
                k += 1
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "table" and line.endswith("{"):
            table = " ".join(words[1:3])
            lines.append(f"add table {table}")
        elif words[0] in ("chain", "set", "map") and line.endswith("{"):
            kind, name, header = words[0], words[1], []
            if kind == "chain":
                lines.append(f"add chain {table} {name}")
        elif line == "}":
            if kind in ("set", "map"):
                timeout = next((h for h in header if h.startswith("timeout ")), None)
                extra = f" {{ timeout {_seconds(timeout.split()[1]):g}s ; }}" if timeout and kind == "set" else ""
                lines.append(f"add {kind} {table} {name}{extra}")
                for h in header:
                    if h.startswith("elements = "):
                        body = " ".join(_strip_timeouts(h[len("elements = "):]).split())
                        lines.append(f"add element {table} {name} {body}")
            elif kind is None:
                table = None
            kind = name = None
        elif kind == "chain" and words[0] == "type":  # a base chain: its hook and priority
            lines.append(f"add chain {table} {name} {{ {line.replace(';', ' ;')} }}")
        elif kind == "chain" and words[0] == "comment":
            continue
        elif kind == "chain":
            lines.append(f"add rule {table} {name} {_spaced_commas(line)}")
        elif kind in ("set", "map"):
            header.append(line)
        elif kind is None and words[0] == "comment":
            continue
        else:
            raise ValueError(f"unsupported nft listing line: {line}")
    return "\n".join(lines) + "\n"


def _strip_timeouts(body: str) -> str:
    """`10.244.0.4 timeout 3h expires 2h59m` -> `10.244.0.4` (an affinity set's live entry)."""
    words, out, i = body.replace(",", " , ").split(), [], 0
    while i < len(words):
        if words[i] in ("timeout", "expires"):
            i += 2
            continue
        out.append(words[i])
        i += 1
    return " ".join(out).replace(" , ", ", ")


# --- nft transaction text ---------------------------------------------------------------------


_PRIORITIES = {"dstnat": -100, "filter": 0, "srcnat": 100}  # nft's priority names (ip family)


def parse_nftables(text: str) -> Ruleset:
    """Chains, sets and maps are named `<table>/<name>`, so that several programs' tables (kube-
    proxy's, the portmap plugin's) trace together as the kernel runs them: every base chain of a
    hook, whatever its table, in priority order."""
    rs = Ruleset()
    for line in text.splitlines():
        words = shlex.split(line)
        if not words or words[0].startswith("#"):
            continue
        verb, kind, table = words[0], words[1], words[3]
        if kind == "table":
            if verb == "delete":
                _drop_table(rs, table)  # the transaction replaces the table
            continue
        name, rest = f"{table}/{words[4]}", words[5:]
        if kind == "set":
            rs.sets[name] = set()
            if "timeout" in rest:
                rs.timeouts[name] = float(rest[rest.index("timeout") + 1].rstrip("s"))
        elif kind == "map":
            rs.maps[name] = {}
        elif kind == "chain":
            rs.chains.setdefault(name, [])
            if "hook" in rest:
                hook = rest[rest.index("hook") + 1].upper()
                rs.hooks.setdefault(hook, []).append((_priority(rest[rest.index("priority") + 1:]), name))
        elif kind == "rule":
            rs.chains[name].append(_nft_rule(rest, table))
            rs.texts.setdefault(name, []).append(" ".join(shlex.quote(w) if " " in w else w for w in rest))
        elif kind == "element":
            _nft_elements(rs, name, rest)
        else:
            raise ValueError(f"unsupported nft line: {line}")
    return rs


def _priority(words: list[str]) -> int:
    """`dstnat`, `-110`, `dstnat - 10` (as nft lists it), up to the `;`."""
    words = " ".join(words).split(";")[0].split()
    base = _PRIORITIES[words[0]] if words[0] in _PRIORITIES else int(words[0])
    if len(words) >= 3 and words[1] in "+-":
        base += int(words[2]) if words[1] == "+" else -int(words[2])
    return base


def _drop_table(rs: Ruleset, table: str) -> None:
    mine = f"{table}/"
    for names in (rs.chains, rs.sets, rs.maps, rs.timeouts):
        for name in [n for n in names if n.startswith(mine)]:
            del names[name]
    rs.hooks = {hook: [(p, c) for p, c in chains if not c.startswith(mine)] for hook, chains in rs.hooks.items()}


def _nft_elements(rs: Ruleset, name: str, words: list[str]) -> None:
    assert words[0] == "{" and words[-1] == "}", words
    body = " ".join(shlex.quote(w) if " " in w else w for w in words[1:-1])
    for element in body.split(", "):
        parts = shlex.split(element)
        if "comment" in parts:
            k = parts.index("comment")
            del parts[k:k + 2]
        if name in rs.maps:
            colon = parts.index(":")
            key = tuple(p for p in parts[:colon] if p != ".")
            rs.maps[name][key] = tuple(parts[colon + 1:])
        else:
            rs.sets[name].add(parts[0])


def _key(st: _State, fields: list[str]) -> tuple:
    values = {"daddr": str(st.dst), "l4proto": st.proto, "dport": str(st.dport)}
    return tuple(values[f] for f in fields)


def _lookup(fields: list[str], mapname: str, table: str) -> Step:
    def step(st: _State, rs: Ruleset):
        verdict = rs.maps[mapname].get(_key(st, fields))
        return [(1.0, st, MISS if verdict is None else _verdict(list(verdict), table))]
    return step


def _verdict(words: list[str], table: str):
    if words[0] in ("jump", "goto"):
        return (words[0], f"{table}/{words[1]}")
    assert words[0] in TERMINAL or words[0] == "return", words
    return (words[0],)


def _nft_rule(w: list[str], table: str) -> list[Step]:
    """`table`: the rule's own, which the chains, sets and maps it names belong to."""
    steps: list[Step] = []
    i = 0
    while i < len(w):
        a = w[i]
        if a == "ct" and w[i + 1] == "state":
            steps.append(_match(lambda st, s=w[i + 2]: s == "new"))
            i += 3
        elif a == "ip" and w[i + 2] == ".":  # ip daddr . meta l4proto . th dport vmap @map
            assert w[i + 1:i + 7] == ["daddr", ".", "meta", "l4proto", ".", "th"], w
            steps.append(_lookup(["daddr", "l4proto", "dport"], f"{table}/{w[i + 9][1:]}", table))
            i += 10
        elif a == "ip":
            fld = "src" if w[i + 1] == "saddr" else "dst"
            neg = w[i + 2] == "!="
            j = i + 2 + neg
            if w[j].startswith("@"):
                steps.append(_nft_in_set(fld, f"{table}/{w[j][1:]}", neg))
                i = j + 1
            elif w[j] == "{":
                end = w.index("}", j)
                nets = [ip_network(x.rstrip(","), strict=False) for x in w[j + 1:end] if x.rstrip(",")]
                steps.append(_match(lambda st, f=fld, ns=nets, n=neg:
                                    any(getattr(st, f) in x for x in ns) != n))
                i = end + 1
            else:
                steps.append(_addr_match(fld, w[j], neg))
                i = j + 1
        elif a == "meta" and w[i + 2] == ".":  # meta l4proto . th dport vmap @map
            steps.append(_lookup(["l4proto", "dport"], f"{table}/{w[i + 6][1:]}", table))
            i += 7
        elif a == "meta" and w[i + 1] == "l4proto":
            steps.append(_match(lambda st, p=w[i + 2]: st.proto == p))
            i += 3
        elif a == "fib":
            fld = "src" if w[i + 1] == "saddr" else "dst"
            assert w[i + 2:i + 4] == ["type", "local"], w
            steps.append(_match(lambda st, f=fld: str(getattr(st, f)) in st.local))
            i += 4
        elif a == "numgen":
            n = int(w[i + 3])
            if w[i + 4] == "vmap":
                end = w.index("}", i)
                branches = " ".join(w[i + 6:end]).split(" , ")
                targets = [tuple(b.split(" : ")[1].split()) for b in branches]
                steps.append(lambda st, rs, t=targets, n=n: [(1 / n, st, _verdict(list(x), table))
                                                           for x in t])
                i = end + 1
            else:
                k = 5 if w[i + 4] == "==" else 4
                assert int(w[i + k]) == 0, w
                steps.append(_chance(1 / n))
                i += k + 1
        elif a == "meta" and w[i + 1] == "mark" and w[i + 2] == "&":  # meta mark & 0x4000 == 0x0
            m, v = int(w[i + 3], 16), int(w[i + 5], 0)
            steps.append(_match(lambda st, m=m, v=v, n=w[i + 4] == "!=": ((st.mark & m) == v) != n))
            i += 6
        elif a == "meta" and w[i + 1:i + 5] == ["mark", "set", "meta", "mark"]:  # ... | 0x4000
            op, v = w[i + 5], int(w[i + 6], 16)
            steps.append(_do(lambda st, op=op, v=v: replace(
                st, mark=st.mark | v if op == "|" else st.mark ^ v)))
            i += 7
        elif a == "dnat" and w[i + 1:i + 3] == ["ip", "to"] and w[i + 3] == "numgen":
            # the balancer: dnat ip to numgen random mod N map { 0 : IP . PORT , ... }
            n, end = int(w[i + 6]), w.index("}", i)
            branches = [b.split(" : ")[1].split(" . ") for b in " ".join(w[i + 9:end]).split(" , ")]
            steps.append(lambda st, rs, bs=branches, n=n: [
                (1 / n, replace(st, dnat=f"{ip}:{port}", dst=IPv4Address(ip), dport=int(port)), ("accept",))
                for ip, port in bs])
            i = end + 1
        elif a == "reject" and i + 1 < len(w) and w[i + 1] == "with":  # tcp reset, icmp type X
            steps.append(_do(lambda st: st, ("reject",)))
            i = i + 4 if w[i + 2] == "tcp" else i + 5 if i + 3 < len(w) and w[i + 3] == "type" else i + 3
        elif a == "mark" and w[i + 1] == "and":
            m, v = int(w[i + 2], 16), int(w[i + 4])
            assert w[i + 3] == "==", w
            steps.append(_match(lambda st, m=m, v=v: (st.mark & m) == v))
            i += 5
        elif a == "mark" and w[i + 1] == "set":
            op, v = w[i + 3], int(w[i + 4], 16)
            steps.append(_do(lambda st, op=op, v=v: replace(
                st, mark=st.mark | v if op == "or" else st.mark ^ v)))
            i += 5
        elif a == "update":
            assert w[i + 2:i + 6] == ["{", "ip", "saddr", "}"], w
            steps.append(_record(f"{table}/{w[i + 1][1:]}"))
            i += 6
        elif a == "comment":
            i += 2
        elif a == "masquerade":
            steps.append(_masquerade())
            i += 2 if i + 1 < len(w) and w[i + 1] == "fully-random" else 1
        elif a == "dnat":
            steps.append(_dnat(w[i + 2]))
            i += 3
        elif a in ("jump", "goto"):
            steps.append(_do(lambda st: st, (a, f"{table}/{w[i + 1]}")))
            i += 2
        elif a in ("tcp", "udp", "sctp") and w[i + 1] == "dport":
            steps.append(_match(lambda st, p=a, port=int(w[i + 2]): st.proto == p and st.dport == port))
            i += 3
        elif a in TERMINAL or a == "return":
            steps.append(_do(lambda st: st, (a,)))
            i += 1
        else:
            raise ValueError(f"unsupported nft rule word {a!r} in {' '.join(w)}")
    return steps


def _nft_in_set(fld: str, name: str, neg: bool) -> Step:
    def step(st: _State, rs: Ruleset):
        if name in rs.timeouts:  # an affinity set: membership is the client's known state
            age = st.known.get(name)
            hit = age is not None and age < rs.timeouts[name]
        else:
            hit = str(getattr(st, fld)) in rs.sets[name]
        return [(1.0, st, CONT if hit != neg else MISS)]
    return step

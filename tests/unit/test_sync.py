"""The incremental sync planner: old and new cuts of a node -> the least text, checked by applying
full-then-partial to a strict model of each tool and comparing with a full load of the new state.

The models fail where the kernel fails (deleting an absent rule, element or chain, deleting a
chain or set something still names, adding a map element over a different value), so an
ordering mistake in a partial text shows up here, without root; tests/integration checks the
same against the real tools.
"""
import dataclasses

import pytest

from kubenet_lab.proxy import iptables
from kubenet_lab.proxy.sync import RenderedNode, plan_sync, render_node, render_nodes
from kubenet_lab.kernel.rules import merge_iptables
from tests.unit.test_render_fixtures import ep, kube_proxy_plan, plan, port, service, with_balancing

MODES = ("iptables", "nftables")


class Refused(Exception):
    pass


# --- strict models of what the tools do -------------------------------------------------------


class IptablesModel:
    BUILTIN = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {}

    def full(self, text: str) -> None:
        self.tables = {}
        self.load(merge_iptables("", text))  # what kernel.rules.apply_rules restores

    def load(self, text: str) -> None:
        table = None
        for line in text.splitlines():
            if not line or line == "COMMIT":
                continue
            if line.startswith("*"):
                table = self.tables.setdefault(line[1:], {})
                for chain in self.BUILTIN:
                    table.setdefault(chain, [])
            elif line.startswith(":"):
                table[line[1:].split()[0]] = []
            else:
                self._op(table, *line.split(" ", 2))
        self._check()

    def _op(self, table, op, chain, rest="") -> None:
        if op == "-X":
            if table.get(chain) != [] or any(r.endswith(f"-j {chain}") for rs in table.values()
                                             for r in rs):
                raise Refused(f"cannot delete {chain}")
            del table[chain]
            return
        rules = table.get(chain)
        if rules is None:
            raise Refused(f"no chain {chain}")
        if op == "-A":
            rules.append(rest)
        elif op == "-I":
            pos, rule = rest.split(" ", 1)
            if int(pos) > len(rules) + 1:
                raise Refused(f"index {pos} too big")
            rules.insert(int(pos) - 1, rule)
        elif op in ("-D", "-C"):
            if rest not in rules:
                raise Refused(f"no such rule in {chain}: {rest}")
            if op == "-D":
                rules.remove(rest)
        else:
            raise AssertionError(op)

    def _check(self) -> None:
        for table in self.tables.values():
            for rules in table.values():
                for rule in rules:
                    target = rule.split(" -j ")[-1].split()[0]
                    assert not target.startswith("KUBE-") or target in table, rule


class NftModel:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.chains: dict[str, list[str]] = {}
        self.sets: dict[str, str] = {}  # name -> declaration
        self.members: dict[str, dict[str, str]] = {}  # set or map -> key -> element

    def full(self, text: str) -> None:
        self.load(text)

    def load(self, text: str) -> None:
        for line in text.splitlines():
            words = line.split(" ", 5)
            verb, kind = words[0], words[1]
            if kind == "table":
                if verb == "delete":
                    self.reset()
                continue
            name, rest = words[4], words[5] if len(words) > 5 else ""
            getattr(self, f"_{verb}_{kind}")(name, rest)
        self._check()

    def _add_chain(self, name, rest):
        self.chains.setdefault(name, [])
        body = rest[2:-4] if rest.startswith("{ ") and rest.endswith(" ; }") else ""
        if body and not body.startswith(("type ", "comment ")):  # rules, not a declaration
            self.chains[name] += body.split(" ; ")

    def _add_set(self, name, rest):
        self.sets.setdefault(name, rest)
        self.members.setdefault(name, {})

    _add_map = _add_set

    def _add_rule(self, name, rest):
        self.chains[name].append(rest)

    def _elements(self, name, rest):
        if name not in self.members:
            raise Refused(f"no set {name}")
        assert rest.startswith("{ ") and rest.endswith(" }"), rest
        return rest[2:-2].split(", ")

    def _add_element(self, name, rest):
        from kubenet_lab.proxy.nftables import element_key
        for e in self._elements(name, rest):
            old = self.members[name].setdefault(element_key(e), e)
            if old != e:
                raise Refused(f"element exists: {old}")

    def _delete_element(self, name, rest):
        for key in self._elements(name, rest):
            if self.members[name].pop(key, None) is None:
                raise Refused(f"no element {key} in {name}")

    def _flush_chain(self, name, rest):
        if name not in self.chains:
            raise Refused(f"no chain {name}")
        self.chains[name] = []

    def _delete_chain(self, name, rest):
        if self.chains.get(name) != [] or self._named(name):
            raise Refused(f"cannot delete chain {name}")
        del self.chains[name]

    def _delete_set(self, name, rest):
        if name not in self.sets or self._named("@" + name):
            raise Refused(f"cannot delete set {name}")
        del self.sets[name], self.members[name]

    def _named(self, word: str) -> bool:
        texts = [*(r for rs in self.chains.values() for r in rs),
                 *(e for m in self.members.values() for e in m.values())]
        return any(word in t.replace(",", " ").split() for t in texts)

    def _check(self) -> None:
        for rules in self.chains.values():
            for rule in rules:
                words = rule.replace(",", " ").split()
                for i, w in enumerate(words[:-1]):
                    if w in ("goto", "jump"):
                        assert words[i + 1] in self.chains, rule
                    if w.startswith("@"):
                        assert w[1:] in self.members, rule

    def state(self):
        return self.chains, self.sets, self.members


MODELS = {"iptables": IptablesModel, "nftables": NftModel}


def state(model):
    return model.state() if isinstance(model, NftModel) else model.tables


def sync_and_compare(mode: str, old_plan, new_plan, node="node1") -> str:
    """Full load of old, partial to new; must equal a full load of new. Returns the partial."""
    old, new = render_node(old_plan, node, mode), render_node(new_plan, node, mode)
    live, ref = MODELS[mode](), MODELS[mode]()
    live.full(old.text())
    sync = plan_sync(old, new)
    assert not sync.full
    live.load(sync.text)
    ref.full(new.text())
    assert state(live) == state(ref)
    return sync.text


# --- plans and changes ------------------------------------------------------------------------


def web(i: int, eps=3, **kw):
    kw.setdefault("type", "NodePort")
    return service("default", f"web{i}", f"10.96.1.{i}",
                   port(80, "http", [ep(f"10.244.{1 + k % 2}.{i * 4 + k}", node=f"node{1 + k % 2}")
                                     for k in range(eps)], node_port=30000 + i), **kw)


BASE = [web(i) for i in range(1, 6)] + [
    web(6, session_affinity="ClientIP"), web(7, external_traffic_policy="Local"),
    web(8, eps=0), web(9, internal_traffic_policy="Local", type="ClusterIP")]


def replaced(i: int, svc):
    return [svc if k == i else s for k, s in enumerate(BASE)]


def with_eps(svc, eps):
    p = svc.ports[0]
    return dataclasses.replace(svc, ports=(dataclasses.replace(p, endpoints=tuple(eps)),))


CHANGES = {
    "add a service": BASE[:3] + [web(20)] + BASE[3:],
    "add a service at the end": BASE + [web(21)],
    "remove a service": BASE[:2] + BASE[3:],
    "change one endpoint": replaced(1, with_eps(BASE[1], [ep("10.244.1.99"), *BASE[1].ports[0].endpoints[1:]])),
    "add an endpoint": replaced(1, with_eps(BASE[1], [*BASE[1].ports[0].endpoints, ep("10.244.2.99", node="node2")])),
    "remove all endpoints": replaced(1, with_eps(BASE[1], [])),
    "first endpoints": replaced(7, with_eps(BASE[7], [ep("10.244.1.77")])),
    "affinity on": replaced(0, dataclasses.replace(BASE[0], session_affinity="ClientIP")),
    "affinity off": replaced(5, dataclasses.replace(BASE[5], session_affinity="None")),
    "affinity timeout": replaced(5, dataclasses.replace(BASE[5], affinity_timeout=60)),
    "endpoint of an affinity service": replaced(5, with_eps(BASE[5], BASE[5].ports[0].endpoints[:2])),
    "local policy on": replaced(2, dataclasses.replace(BASE[2], external_traffic_policy="Local")),
    "node port to cluster ip": replaced(3, dataclasses.replace(BASE[3], type="ClusterIP")),
    "new node port": replaced(3, dataclasses.replace(
        BASE[3], ports=(dataclasses.replace(BASE[3].ports[0], node_port=31999),))),
    "several at once": [web(1, eps=1), *BASE[2:6], web(30), *BASE[6:]],
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("change", list(CHANGES))
def test_full_then_partial_equals_full_of_the_new_state(mode, change):
    for node in ("node1", "node2"):
        sync_and_compare(mode, plan(*BASE), plan(*CHANGES[change]), node)


@pytest.mark.parametrize("mode", MODES)
def test_kube_proxys_own_services_removed_one_by_one(mode):
    services = list(kube_proxy_plan().services)
    for i in range(len(services)):
        old = dataclasses.replace(kube_proxy_plan(), services=tuple(services[i:]))
        new = dataclasses.replace(kube_proxy_plan(), services=tuple(services[i + 1:]))
        sync_and_compare(mode, old, new)


def test_one_endpoint_change_touches_only_that_service():
    new = CHANGES["change one endpoint"]
    ipt = sync_and_compare("iptables", plan(*BASE), plan(*new))
    assert ":KUBE-SERVICES" not in ipt and ":KUBE-NODEPORTS" not in ipt and "*filter" not in ipt
    declared = [line for line in ipt.splitlines() if line.startswith(":")]
    assert len(declared) == 3  # the new endpoint's chain, the SVC refilled, the stale SEP
    assert all("web" not in line or "web2" in line for line in ipt.splitlines())
    nft = sync_and_compare("nftables", plan(*BASE), plan(*new))
    assert "service-ips" not in nft and "delete table" not in nft
    assert all("/web2/" in line for line in nft.splitlines()[1:])


def test_an_added_service_is_inserted_in_place_not_rewritten():
    text = sync_and_compare("iptables", plan(*BASE), plan(*CHANGES["add a service"]))
    inserts = [line for line in text.splitlines() if line.startswith("-I KUBE-SERVICES")]
    assert len(inserts) == 1 and inserts[0].startswith("-I KUBE-SERVICES 4 ")
    assert not [line for line in text.splitlines() if line.startswith("-D")]


@pytest.mark.parametrize("mode", MODES)
def test_no_change_writes_nothing(mode):
    old, new = render_node(plan(*BASE), "node1", mode), render_node(plan(*BASE), "node1", mode)
    assert plan_sync(old, new).text == "" and not plan_sync(old, new).full


@pytest.mark.parametrize("mode", MODES)
def test_unknown_previous_state_mode_switch_or_new_skeleton_load_everything(mode):
    new = render_node(plan(*BASE), "node1", mode)
    other = render_node(plan(*BASE), "node1", "iptables" if mode == "nftables" else "nftables")
    moved = render_node(plan(*BASE), "node2", mode)  # nft: another node IP in the skeleton
    for old in (None, other) + ((moved,) if mode == "nftables" else ()):
        sync = plan_sync(old, new)
        assert sync.full and sync.text == new.text()


def test_big_iptables_changes_fall_back_to_a_complete_restore():
    many = [web(i) for i in range(1, 60)]
    old = render_node(plan(*many[:1]), "node1", "iptables")
    new = render_node(plan(*many), "node1", "iptables")
    assert not plan_sync(old, new).full
    limit = iptables.PARTIAL_MAX_CHAINS
    try:
        iptables.PARTIAL_MAX_CHAINS = 100
        assert plan_sync(old, new).full
    finally:
        iptables.PARTIAL_MAX_CHAINS = limit


def test_reordered_shared_rules_fall_back_to_a_complete_restore():
    old = render_node(plan(*BASE), "node1", "iptables")
    new = render_node(plan(*reversed(BASE[:-1]), web(9, eps=1)), "node1", "iptables")
    assert plan_sync(old, new).full


def test_affinity_entries_of_unchanged_endpoints_survive():
    """A client pinned to an endpoint stays pinned when another endpoint comes or goes."""
    svc = BASE[5]
    model = NftModel()
    old = render_node(plan(*BASE), "node1", "nftables")
    model.full(old.text())
    pinned = [s for s in model.sets if s.startswith("affinity-")]
    assert len(pinned) == 3
    for name in pinned:
        model.members[name]["10.244.1.200"] = "10.244.1.200"
    grown = with_eps(svc, [*svc.ports[0].endpoints[:2], ep("10.244.1.250")])
    sync = plan_sync(old, render_node(plan(*replaced(5, grown)), "node1", "nftables"))
    model.load(sync.text)
    kept = [s for s in pinned if s in model.sets]
    assert len(kept) == 2 and all(model.members[s] == {"10.244.1.200": "10.244.1.200"} for s in kept)
    assert "delete set" in sync.text and sync.text.count("delete set") == 1


def test_json_round_trip_and_bad_state():
    for mode in MODES:
        node = render_node(kube_proxy_plan(), "node1", mode)
        assert RenderedNode.from_json(node.to_json()) == node
    for bad in ("", "{}", '{"format": 99, "mode": "iptables"}', "[1]", "*nat\n-A X\nCOMMIT\n"):
        with pytest.raises(ValueError):
            RenderedNode.from_json(bad)


@pytest.mark.parametrize("mode", MODES)
def test_nodes_rendered_together_equal_nodes_rendered_alone(mode):
    p = plan(*BASE)
    together = render_nodes(p, mode)
    assert set(together) == {"node1", "node2"}
    for name, node in together.items():
        assert node == render_node(p, name, mode)
    # a service without Local policies is the same object on both nodes: rendered once
    key = "default/web1:http/tcp"
    assert together["node1"].fragments[key] is together["node2"].fragments[key]


# --- reusing the previous render ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_render_reusing_the_previous_one_equals_a_fresh_render(mode, change):
    old = render_nodes(plan(*BASE), mode)
    stored = {n: RenderedNode.from_json(r.to_json()) for n, r in old.items()}  # as app keeps it
    for previous in (old, stored):
        reused = render_nodes(plan(*CHANGES[change]), mode, previous=previous)
        fresh = render_nodes(plan(*CHANGES[change]), mode)
        assert reused == fresh
        for node, r in reused.items():
            assert r.text() == fresh[node].text()
            assert [f.fingerprint for f in r.fragments.values()] == \
                [f.fingerprint for f in fresh[node].fragments.values()]


def test_only_changed_service_ports_are_rendered_again():
    old = render_nodes(plan(*BASE), "nftables")
    new = render_nodes(plan(*CHANGES["change one endpoint"]), "nftables", previous=old)
    for node in old:
        again = [k for k, f in new[node].fragments.items() if f is not old[node].fragments[k]]
        assert again == ["default/web2:http/tcp"]


def test_a_local_policy_fragment_is_not_reused_on_another_node():
    """The node is part of a Local-policy fragment's fingerprint, not of the others'."""
    old = render_nodes(plan(*BASE), "nftables")
    swapped = render_nodes(plan(*BASE), "nftables", previous={"node1": old["node2"],
                                                               "node2": old["node1"]})
    assert swapped == old
    for node, other in (("node1", "node2"), ("node2", "node1")):
        for key, f in swapped[node].fragments.items():
            local = key in ("default/web7:http/tcp", "default/web9:http/tcp")
            assert (f is old[other].fragments[key]) is not local, key


def test_other_render_inputs_are_part_of_the_fingerprint():
    old = render_nodes(plan(*BASE), "nftables")
    for mode, options, p in (("nftables", {"vmap": False}, plan(*BASE)),
                             ("nftables", {}, with_balancing(plan(*BASE), "rules")),
                             ("nftables", {}, plan(*BASE, pod_subnet="10.0.0.0/8")),
                             ("iptables", {}, plan(*BASE))):
        reused = render_nodes(p, mode, previous=old, **options)
        assert reused == render_nodes(p, mode, **options)
        assert not any(f is old["node1"].fragments.get(k)
                       for k, f in reused["node1"].fragments.items())


def test_node_dependence_agrees_with_the_view():
    from kubenet_lab.proxy.endpoints import node_dependent, port_view, proxied_ports
    for p in (plan(*BASE), kube_proxy_plan(), *(plan(*c) for c in CHANGES.values())):
        for svc, svc_port in proxied_ports(p):
            assert node_dependent(svc, svc_port) == port_view(svc, svc_port, "node1").uses_local

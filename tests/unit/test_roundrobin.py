"""The userspace proxy's chooser alone, as kube-proxy's pkg/proxy/userspace/roundrobin_test.go
tests LoadBalancerRR (Kubernetes release-1.25; transcribed as test data: each test below names
the Go test it follows). Go's Endpoints subsets are written out as the "ip:port" lists
BuildPortsToEndpointsMap makes of them; OnEndpointsAdd/Update are `set_endpoints`, NewService is
`set_service`, OnEndpointsDelete empties a port's endpoints, and the shuffled order is read back
with `endpoints` as the Go tests read `loadBalancer.services[service].endpoints`."""
import random

import pytest

from kubenet_lab.proxy.roundrobin import DEFAULT_AFFINITY_TIMEOUT, NoEndpoints, NoService, RoundRobin

FOO_P = "testnamespace/foo:p"
FOO_Q = "testnamespace/foo:q"
BAR_P = "testnamespace/bar:p"
FOO = "testnamespace/foo"
BAR = "testnamespace/bar"
C1, C2, C3, C4, C5, C6 = (f"127.0.0.{i}" for i in range(1, 7))
NOW = 1000.0


def chooser(seed: int = 0) -> RoundRobin:
    return RoundRobin(shuffle=random.Random(seed).shuffle)


def expect(lb: RoundRobin, key: str, want: str, client: str | None = None, reset: bool = False) -> None:
    assert lb.next(key, client, NOW, reset=reset) == want


def test_fails_with_no_endpoints():  # TestLoadBalanceFailsWithNoEndpoints
    lb = chooser()
    with pytest.raises(NoService):
        lb.next("testnamespace/foo:does-not-exist", None, NOW)
    lb.set_service(FOO_P)
    with pytest.raises(NoEndpoints):
        lb.next(FOO_P, None, NOW)


def test_single_endpoint():  # TestLoadBalanceWorksWithSingleEndpoint
    lb = chooser()
    lb.set_endpoints(FOO_P, ["endpoint1:40"])
    for _ in range(4):
        expect(lb, FOO_P, "endpoint1:40")


@pytest.mark.parametrize("seed", range(6))
def test_multiple_endpoints(seed):  # TestLoadBalanceWorksWithMultipleEndpoints
    lb = chooser(seed)
    lb.set_endpoints(FOO_P, ["endpoint:1", "endpoint:2", "endpoint:3"])
    shuffled = lb.endpoints(FOO_P)
    assert sorted(shuffled) == ["endpoint:1", "endpoint:2", "endpoint:3"]
    for i in (0, 1, 2, 0):
        expect(lb, FOO_P, shuffled[i])


def test_six_requests_reach_each_of_three_endpoints_twice_in_a_repeating_order():
    lb = chooser(3)
    lb.set_endpoints(FOO_P, ["10.244.0.3:8080", "10.244.0.4:8080", "10.244.1.3:8080"])
    got = [lb.next(FOO_P, "10.244.0.2", NOW) for _ in range(6)]
    assert got[:3] == got[3:] and sorted(got[:3]) == ["10.244.0.3:8080", "10.244.0.4:8080", "10.244.1.3:8080"]


def test_multiple_endpoints_multiple_ports():  # TestLoadBalanceWorksWithMultipleEndpointsMultiplePorts
    lb = chooser()
    lb.set_endpoints(FOO_P, ["endpoint1:1", "endpoint2:1", "endpoint3:3"])
    lb.set_endpoints(FOO_Q, ["endpoint1:2", "endpoint2:2", "endpoint3:4"])
    for key, members in ((FOO_P, {"endpoint1:1", "endpoint2:1", "endpoint3:3"}),
                         (FOO_Q, {"endpoint1:2", "endpoint2:2", "endpoint3:4"})):
        shuffled = lb.endpoints(key)
        assert set(shuffled) == members
        for i in (0, 1, 2, 0):
            expect(lb, key, shuffled[i])


def test_multiple_endpoints_and_updates():  # TestLoadBalanceWorksWithMultipleEndpointsAndUpdates
    lb = chooser()
    lb.set_endpoints(FOO_P, ["endpoint1:1", "endpoint2:2", "endpoint3:3"])
    lb.set_endpoints(FOO_Q, ["endpoint1:10", "endpoint2:20", "endpoint3:30"])
    for key in (FOO_P, FOO_Q):
        shuffled = lb.endpoints(key)
        for i in (0, 1, 2, 0):
            expect(lb, key, shuffled[i])
    # one fewer endpoint: the round starts at the beginning again
    lb.set_endpoints(FOO_P, ["endpoint4:4", "endpoint5:5"])
    lb.set_endpoints(FOO_Q, ["endpoint4:40", "endpoint5:50"])
    for key, members in ((FOO_P, {"endpoint4:4", "endpoint5:5"}), (FOO_Q, {"endpoint4:40", "endpoint5:50"})):
        shuffled = lb.endpoints(key)
        assert set(shuffled) == members
        for i in (0, 1, 0, 1):
            expect(lb, key, shuffled[i])
    lb.set_endpoints(FOO_P, [])  # endpoints cleared
    with pytest.raises(NoEndpoints):
        lb.next(FOO_P, None, NOW)


def test_service_removal():  # TestLoadBalanceWorksWithServiceRemoval
    lb = chooser()
    lb.set_endpoints(FOO_P, ["endpoint1:123", "endpoint2:123", "endpoint3:123"])
    lb.set_endpoints(BAR_P, ["endpoint4:456", "endpoint5:456", "endpoint6:456"])
    foo, bar = lb.endpoints(FOO_P), lb.endpoints(BAR_P)
    for i in (0, 1, 2, 0, 1):
        expect(lb, FOO_P, foo[i])
    for i in (0, 1, 2, 0, 1):
        expect(lb, BAR_P, bar[i])
    lb.set_endpoints(FOO_P, [])  # OnEndpointsDelete(foo)
    with pytest.raises(NoEndpoints):
        lb.next(FOO_P, None, NOW)
    for i in (2, 0, 1, 2):  # bar goes on from where it left off
        expect(lb, BAR_P, bar[i])


def test_unchanged_endpoints_keep_their_order_and_turn():
    """OnEndpointsUpdate with the same set (in any order) is no change (slicesEquiv)."""
    lb = chooser()
    lb.set_endpoints(FOO_P, ["a:1", "b:1", "c:1"])
    order = lb.endpoints(FOO_P)
    expect(lb, FOO_P, order[0])
    assert not lb.set_endpoints(FOO_P, list(reversed(order)))
    assert lb.endpoints(FOO_P) == order
    expect(lb, FOO_P, order[1])


@pytest.mark.parametrize("declared_first", [True, False])
def test_sticky_new_service(declared_first):
    # TestStickyLoadBalanceWorksWithNewServiceCalledFirst / ...CalledSecond
    lb = chooser()
    if declared_first:
        lb.set_service(FOO, "ClientIP", DEFAULT_AFFINITY_TIMEOUT)
    lb.set_endpoints(FOO, ["endpoint1:1", "endpoint2:2", "endpoint3:3"])
    if not declared_first:
        lb.set_service(FOO, "ClientIP", DEFAULT_AFFINITY_TIMEOUT)
    eps = {}
    for client in (C1, C2, C3):
        eps[client] = lb.next(FOO, client, NOW)
        for _ in range(3):
            expect(lb, FOO, eps[client], client)
    assert len(set(eps.values())) == 3
    for client in (C1, C2, C3, C1, C2, C3):
        expect(lb, FOO, eps[client], client)


def test_sticky_remove_one():  # TestStickyLoadBalanaceWorksWithMultipleEndpointsRemoveOne
    lb = chooser()
    lb.set_service(FOO, "ClientIP", DEFAULT_AFFINITY_TIMEOUT)
    lb.set_endpoints(FOO, ["endpoint:1", "endpoint:2", "endpoint:3"])
    shuffled = lb.endpoints(FOO)
    expect(lb, FOO, shuffled[0], C1)
    expect(lb, FOO, shuffled[0], C1)
    expect(lb, FOO, shuffled[1], C2)
    expect(lb, FOO, shuffled[1], C2)
    expect(lb, FOO, shuffled[2], C3)
    bound = {C1: shuffled[0], C2: shuffled[1], C3: shuffled[2]}
    lb.set_endpoints(FOO, ["endpoint:1", "endpoint:2"])
    shuffled = lb.endpoints(FOO)
    moved = next(c for c, e in bound.items() if e == "endpoint:3")
    bound[moved] = shuffled[0]
    for client in (C1, C2, C3):
        expect(lb, FOO, bound[client], client)
    lb.set_endpoints(FOO, ["endpoint:1", "endpoint:2", "endpoint:4"])
    shuffled = lb.endpoints(FOO)
    for client in (C1, C2, C3):
        expect(lb, FOO, bound[client], client)
    for i, client in enumerate((C4, C5, C6)):
        expect(lb, FOO, shuffled[i], client)


def test_sticky_updates():  # TestStickyLoadBalanceWorksWithMultipleEndpointsAndUpdates
    lb = chooser()
    lb.set_service(FOO, "ClientIP", DEFAULT_AFFINITY_TIMEOUT)
    lb.set_endpoints(FOO, ["endpoint:1", "endpoint:2", "endpoint:3"])
    s = lb.endpoints(FOO)
    for i, client in ((0, C1), (0, C1), (1, C2), (1, C2), (2, C3), (0, C1), (1, C2)):
        expect(lb, FOO, s[i], client)
    lb.set_endpoints(FOO, ["endpoint:4", "endpoint:5"])
    s = lb.endpoints(FOO)
    for i, client in ((0, C1), (1, C2), (0, C1), (0, C1), (1, C2), (1, C2)):
        expect(lb, FOO, s[i], client)
    lb.set_endpoints(FOO, [])
    with pytest.raises(NoEndpoints):
        lb.next(FOO, None, NOW)


def test_sticky_service_removal():  # TestStickyLoadBalanceWorksWithServiceRemoval
    lb = chooser()
    lb.set_service(FOO, "ClientIP", DEFAULT_AFFINITY_TIMEOUT)
    lb.set_service(BAR, "ClientIP", DEFAULT_AFFINITY_TIMEOUT)
    lb.set_endpoints(FOO, ["endpoint:1", "endpoint:2", "endpoint:3"])
    lb.set_endpoints(BAR, ["endpoint:4", "endpoint:5"])
    foo = lb.endpoints(FOO)
    for i, client in ((0, C1), (1, C2), (2, C3), (0, C1), (0, C1), (1, C2), (1, C2), (2, C3), (2, C3)):
        expect(lb, FOO, foo[i], client)
    bar = lb.endpoints(BAR)
    for i, client in ((0, C1), (1, C2), (0, C1), (0, C1), (1, C2), (1, C2)):
        expect(lb, BAR, bar[i], client)
    lb.set_endpoints(FOO, [])
    with pytest.raises(NoEndpoints):
        lb.next(FOO, None, NOW)
    for i, client in ((0, C1), (1, C2), (0, C1), (1, C2), (0, C1), (0, C1)):
        expect(lb, BAR, bar[i], client)


def test_sticky_endpoint_fails():  # TestStickyLoadBalanceWorksWithEndpointFails
    lb = chooser()
    lb.set_service(FOO, "ClientIP", DEFAULT_AFFINITY_TIMEOUT)
    lb.set_endpoints(FOO, ["endpoint1:1", "endpoint2:2", "endpoint3:3"])
    ep1, ep2, ep3 = (lb.next(FOO, c, NOW) for c in (C1, C2, C3))
    expect(lb, FOO, ep1, C1, reset=True)
    expect(lb, FOO, ep2, C1, reset=True)
    expect(lb, FOO, ep3, C1, reset=True)
    expect(lb, FOO, ep2, C2)
    expect(lb, FOO, ep1, C2, reset=True)
    expect(lb, FOO, ep2, C3, reset=True)
    expect(lb, FOO, ep3, C1, reset=True)
    expect(lb, FOO, ep1, C2, reset=True)


def test_affinity_times_out():
    """A binding older than timeoutSeconds is not kept: the client takes the next in turn."""
    lb = chooser()
    lb.set_service(FOO, "ClientIP", 10)
    lb.set_endpoints(FOO, ["a:1", "b:1"])
    order = lb.endpoints(FOO)
    assert lb.next(FOO, C1, 0.0) == order[0]
    assert lb.next(FOO, C1, 9.5) == order[0]  # used again: its time renewed
    assert lb.next(FOO, C1, 19.0) == order[0]
    assert lb.next(FOO, C1, 29.5) == order[1]  # 10.5 s since last used
    lb.forget_stale(FOO, 100.0)
    assert lb.next(FOO, C1, 100.0) == order[0]


def test_no_affinity_ignores_the_client():
    lb = chooser()
    lb.set_endpoints(FOO, ["a:1", "b:1"])
    order = lb.endpoints(FOO)
    assert [lb.next(FOO, C1, NOW) for _ in range(4)] == order * 2

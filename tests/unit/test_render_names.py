"""Chain names against the ones kube-proxy's own tests expect for the same inputs
(pkg/proxy/iptables/proxier_test.go TestOverallIPTablesRules, pkg/proxy/nftables/proxier_test.go
TestOverallNFTablesRules)."""
from kubenet_lab.proxy import names


def test_documented_service_chain():
    assert names.svc_chain("ns1", "svc1", "p80", "TCP") == "KUBE-SVC-XPGD46QRK7WJZT7O"


def test_iptables_chain_names_match_kube_proxy():
    assert names.svc_chain("ns2", "svc2", "p80", "tcp") == "KUBE-SVC-GNZBNJ2PO5MGZ6GT"
    assert names.ext_chain("ns2", "svc2", "p80", "tcp") == "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
    assert names.svl_chain("ns2", "svc2", "p80", "tcp") == "KUBE-SVL-GNZBNJ2PO5MGZ6GT"
    assert names.svc_chain("ns3", "svc3", "p80", "tcp") == "KUBE-SVC-X27LE4BHSL4DOUIK"
    assert names.svc_chain("ns4", "svc4", "p80", "tcp") == "KUBE-SVC-4SW47YFZTEDKD3PK"
    assert names.fw_chain("ns5", "svc5", "p80", "tcp") == "KUBE-FW-NUKIZ6OKUXPJNT4C"
    assert names.sep_chain("ns1", "svc1", "p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert names.sep_chain("ns4", "svc4", "p80", "tcp", "10.180.0.4:80") == "KUBE-SEP-UKSFD7AGPMPPLUHC"
    assert names.sep_chain("ns4", "svc4", "p80", "tcp", "10.180.0.5:80") == "KUBE-SEP-C6EBXVWJJZMIWKLZ"
    assert names.sep_chain("ns5", "svc5", "p80", "tcp", "10.180.0.3:80") == "KUBE-SEP-I77PXRDZVX7PMWMN"


def test_nftables_chain_names_match_kube_proxy():
    assert names.nft_service_chain("ns1", "svc1", "p80", "tcp") == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert (names.nft_endpoint_chain("ns1", "svc1", "p80", "tcp", "10.180.0.1:80")
            == "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80")
    assert names.nft_external_chain("ns3", "svc3", "p80", "tcp") == "external-4AT6LBPK-ns3/svc3/tcp/p80"
    assert (names.nft_affinity_set("ns5", "svc5", "p80", "tcp", "10.180.0.3:80")
            == "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80")
    assert names.nft_firewall_chain("ns5", "svc5", "p80", "tcp") == "firewall-HVFWP5L3-ns5/svc5/tcp/p80"


def test_unnamed_port_leaves_the_port_out():
    assert names.port_name("default", "web", None) == "default/web"
    assert names.port_name("default", "web", "http") == "default/web:http"
    assert names.svc_chain("default", "web", None, "tcp") != names.svc_chain("default", "web", "", "udp")
    assert names.nft_service_chain("default", "web", None, "tcp").endswith("-default/web/tcp/")

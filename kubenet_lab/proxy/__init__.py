"""kube-proxy's side, pure: services and endpoints into per-node rules (iptables and nftables
modes, one shared sync), the CNI portmap rules for hostPorts and the load balancer's rules."""

"""The lab on the kernel: host prerequisites, ownership and discovery, the lab's state on disk,
nodes and pods wired by netlink, the outside world (external client, load balancer)."""

"""The kernel, with no knowledge of labs: netlink batches, namespaces, entering them, rule loaders,
conntrack, processes."""

"""Pure per-node data of the pod network (no I/O): backends/, how nodes reach each other's pods."""

"""The pod sandbox: a pod's files, its containers' processes and the emulated servers they run."""

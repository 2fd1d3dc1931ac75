"""A differential TCP conformance bench: the same probes sent to the Linux kernel (in a
network namespace, through a TUN device) and to l3l4 (through its core API), their
answers compared by class. ``python -m conformance`` runs the full matrix; see
``docs/conformance.md``."""

"""IP-layer services above the codec: fragment reassembly, output with fragmentation,
and mapping ICMP errors to the flows they quote."""

"""The stateless packet codec: parse and verify incoming headers, build outgoing ones."""

"""The wire format: what gateway and clients exchange, with no server library inside."""

"""The transport-neutral core: sessions, namespaces, rooms, acks, the delivery log."""

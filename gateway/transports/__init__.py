"""Transports: thin adapters from a wire protocol to the hub.

``sse`` serves SSE + POST; ``socketio_server`` serves Socket.IO through python-socketio.
"""

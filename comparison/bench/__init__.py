"""Room fan-out benchmark: ``python -m comparison.bench`` (issue 7).

One invocation measures every server with the same load generator: the gateway's SSE +
POST path and its Socket.IO WebSocket and polling paths, a plain python-socketio server
(the baseline) and Node's socket.io 4 (the anchor), each N subscribers in one room.

    __main__.py   the command line                runner.py     for each N, each server: start, measure, stop
    servers/      the servers, how they start       generator.py  the load generator process (one per run)
    client_sse.py / client_socketio.py  the generator's clients over raw asyncio sockets
    connection.py base protocol, keep-alive pool    publisher.py  seq numbering and acks
    wire.py       sans-I/O codecs                   sink.py       latency samples, loss accounting
    csink.c / csink.py  the subscribers' receive path in C (epoll, kernel receive stamps)
    machine.py    what it ran on                    report.py     markdown and issue 7's targets
"""

"""Run by test_blocking_client under gevent's monkey-patching, as Locust runs code.

Usage: python -m tests.gevent_check URL TRANSPORT ; prints one JSON line of results.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402

from rtclient.blocking import BlockingClient  # noqa: E402
from rtclient.protocol import RoomEvent  # noqa: E402


def main(url: str, transport: str) -> None:
    room = f"gevent-{uuid.uuid4().hex[:8]}"
    got: list[int] = []
    enough = threading.Event()

    def on_event(event) -> None:
        if isinstance(event, RoomEvent):
            got.append(event.data)
            if len(got) >= 20:
                enough.set()

    sub = BlockingClient(url, "/chat", transport=transport, on_event=on_event)
    pub = BlockingClient(url, "/chat", transport="sse")
    sub.backoff.base = 0.05
    sub.connect(), pub.connect()
    sub.join(room), pub.join(room)
    acks = [pub.publish(room, i) for i in range(10)]
    sub.drop()  # lose the connection mid-stream; the supervisor resumes
    acks += [pub.publish(room, i) for i in range(10, 20)]
    ok = enough.wait(20)
    print(json.dumps({
        "ok": ok, "got": got, "acked": len(acks), "sid_kept": sub.sid is not None,
        "reconnects": sub.state.stats.reconnects, "duplicates": sub.state.stats.duplicates,
        "sum": sub.emit("sum", [1, 2]), "transport": sub.transport_name,
    }))
    sub.close(), pub.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

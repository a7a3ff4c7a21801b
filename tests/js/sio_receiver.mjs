// The official socket.io-client, driven line by line from stdin (tests/test_fuzz.py): it
// connects to URL's /chat over WebSocket and prints one JSON line per thing that happens:
//   {"type": "connect"} | {"type": "disconnect", "reason"} | {"type": "connect_error", "message"}
//   {"type": "event", "event", "args"}        every event, as socket.io-client hands it over
//   {"type": "ack", "id", "ack", "error"}     the answer to a command
// Commands on stdin, one JSON object a line: {"id", "emit": "join" | "leave", "data": {...}}.
// Usage: node sio_receiver.mjs URL   (NODE_PATH or cwd giving socket.io-client)
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url] = process.argv.slice(2);
const out = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const socket = io(`${url}/chat`, { transports: ["websocket"], reconnection: false, forceNew: true });
socket.on("connect", () => out({ type: "connect" }));
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.on("connect_error", (err) => out({ type: "connect_error", message: err.message }));
socket.onAny((event, ...args) => out({ type: "event", event, args }));

createInterface({ input: process.stdin }).on("line", (line) => {
  const { id, emit, data } = JSON.parse(line);
  socket.timeout(10000).emit(emit, data, (err, ack) => out({ type: "ack", id, ack, error: err?.message }));
});
process.stdin.on("end", () => {
  socket.close();
  process.exit(0);
});

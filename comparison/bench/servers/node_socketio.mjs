// The anchor: Node's socket.io 4 reference server with the same events as the baseline.
//
//   node comparison/bench/servers/node_socketio.mjs PORT   (env BENCH_PING_INTERVAL_MS: see below)
//
// Namespaces /chat and /bench (the gateway's namespace for load): `join {room}` joins the room; `publish {room, data}` broadcasts the whole
// body as `message` to the room, the sender excluded (socket.to), then acks. socket.io's
// defaults otherwise (permessage-deflate off, as socket.io ships it).
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node node_socketio.mjs PORT");
  process.exit(2);
}

// Anything but /socket.io/ gets a 404 (socket.io passes it on): the runner's readiness probe.
const http = createServer((req, res) => {
  res.writeHead(404, { "content-length": "0" });
  res.end();
});
// BENCH_PING_INTERVAL_MS: the 100k profile (comparison/bench/c100k.py) holds idle connections for two
// ping intervals, as the gateway's GATEWAY_PING_INTERVAL; socket.io's default (25 s) otherwise.
const pingInterval = Number(process.env.BENCH_PING_INTERVAL_MS) || 25000;
const io = new Server(http, { serveClient: false, cors: { origin: "*" }, pingInterval });

for (const name of ["/chat", "/bench"]) {
  io.of(name).on("connection", (socket) => {
    socket.on("join", (data, ack) => {
      socket.join(data.room);
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("publish", (data, ack) => {
      socket.to(data.room).emit("message", data);
      if (typeof ack === "function") ack({ ok: true });
    });
  });
}

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
http.listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));

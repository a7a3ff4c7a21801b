// The official socket.io-client v4 talking to the gateway: join a room, print the
// first room event it receives, publish one back, print the ack, exit.
// Usage: node sio_chat.mjs URL ROOM ; one JSON object per line on stdout.
import { io } from "socket.io-client";

const [url, room] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const socket = io(`${url}/chat`, { reconnection: false, timeout: 5000 });
const deadline = setTimeout(() => { say({ error: "timeout" }); process.exit(2); }, 15000);

socket.on("connect_error", (err) => { say({ error: "connect_error", data: err.data ?? err.message }); process.exit(1); });
socket.on("open", async (info) => {
  const joined = await socket.emitWithAck("join", { room });
  say({ ready: true, sid: info.sid, joined, transport: socket.io.engine.transport.name });
});
socket.on("message", async (envelope) => {
  say({ received: envelope });
  const ack = await socket.emitWithAck("publish", { room, event: "message", data: "from-js", clientEventId: "js-1" });
  say({ ack, transport: socket.io.engine.transport.name });
  clearTimeout(deadline);
  socket.disconnect();
});

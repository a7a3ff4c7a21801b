// Binary payloads between the official socket.io-client (a Buffer) and rtgateway.js on SSE + POST
// (an ArrayBuffer in, a Uint8Array, a Blob and a DataView out), in one room of a real gateway.
// Prints one JSON object (what each side received: its type and SHA-256) for tests/test_binary.py.
// Usage: RTGW_CLIENT=/path/rtgateway.js BINARY_B64=<base64> node binary_exchange.mjs URL ROOM
import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { io } from "socket.io-client";
import { runScenario } from "./scenario.mjs";

const { connect } = await import(pathToFileURL(process.env.RTGW_CLIENT).href);
const [url, room] = process.argv.slice(2);
const bytes = Buffer.from(process.env.BINARY_B64, "base64");
const WAIT = 10000 * Number(process.env.TIMEOUT_FACTOR ?? 1);
// A digest, not the bytes: a long line on a pipe may be cut when the script exits.
const sha = (value) => createHash("sha256").update(value instanceof ArrayBuffer ? new Uint8Array(value) : value).digest("hex");
const kind = (value) => (Buffer.isBuffer(value) ? "Buffer" : value?.constructor?.name);

/** The first `event` `target` emits, within WAIT ms. */
function first(target, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${WAIT} ms`)), WAIT);
    const off = target.on(event, (value) => {
      clearTimeout(timer);
      if (typeof off === "function") off();
      else target.off(event);
      resolve(value);
    });
  });
}

async function exchange() {
  const sio = io(`${url}/chat`, { reconnection: false, transports: ["websocket"] });
  const sse = connect({ url, namespace: "/chat", transport: "sse", minDelay: 50 });
  try {
    await first(sio, "open");
    const joined = await sio.emitWithAck("join", { room });
    if (!joined.ok) throw new Error(`socket.io join: ${JSON.stringify(joined)}`);
    await sse.ready;
    await sse.join(room);

    // socket.io-client -> rtgateway.js on SSE: a Buffer, nested
    const atSse = first(sse, "message");
    const published = await sio.emitWithAck("publish", { room, data: { name: "from-sio", body: bytes } });
    if (!published.ok) throw new Error(`socket.io publish: ${JSON.stringify(published)}`);
    const envelope = await atSse;

    // rtgateway.js on SSE -> socket.io-client: a Uint8Array, a Blob and a DataView
    const atSio = first(sio, "message");
    const view = new DataView(bytes.buffer, bytes.byteOffset + 1, 16);
    const ack = await sse.publish(room, { body: new Uint8Array(bytes), blob: new Blob([bytes]), view });
    const back = await atSio;

    // and a call's answer: the echo handler returns what rtgateway.js sent, as bytes
    const echoed = await sse.emit("echo", [bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)]);
    return {
      sse: { kind: kind(envelope.data.body), body: sha(envelope.data.body), offset: envelope.offset, ackOffset: published.result.offset },
      sio: {
        kinds: [kind(back.data.body), kind(back.data.blob), kind(back.data.view)],
        body: sha(back.data.body), blob: sha(back.data.blob), view: sha(back.data.view),
        offset: back.offset, ackOffset: ack.offset,
      },
      echoed: { kind: kind(echoed[0]), body: sha(echoed[0]) },
    };
  } finally {
    sio.disconnect();
    await sse.close();
  }
}

await runScenario({ exchange }, "exchange", WAIT * 3);

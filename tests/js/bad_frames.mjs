// rtgateway.js under Node against a server that sends frames it cannot use (tests/test_bad_frames.py).
// Joins "lobby", then waits until UNTIL, makes one publish round trip (the connection still
// works), and prints one JSON object: what reached the application and what the client counted.
// Usage: RTGW_CLIENT=/path/rtgateway.js node bad_frames.mjs URL TRANSPORT UNTIL [MODE ROOM]
//   TRANSPORT: sse | socketio   UNTIL: the data of the room event to stop after (e.g. "live"),
//   or "gap" to stop after a gap has been reported and the session is open again.
//   MODE: fake (default) | replay: once "after" has come, drop the connection, hold the
//   reconnect back (its token function waits), print {"away": true}, and come back when a line
//   arrives on stdin (meanwhile the test puts in the room's log what the resume must replay).
//   ROOM: the room to join (default lobby).   RTGW_DEBUG=1 logs every client event on stderr.
import { pathToFileURL } from "node:url";

const { connect } = await import(pathToFileURL(process.env.RTGW_CLIENT).href);
const [url, transport, until, mode = "fake", room = "lobby"] = process.argv.slice(2);
const WAIT = 15000 * Number(process.env.TIMEOUT_FACTOR ?? 1);
// Node cannot run the browser build the gateway serves: give the client the Node one.
const socketioUrl = import.meta.resolve("socket.io-client");

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

let hold = null; // while set, a connection attempt waits for it (its token is not ready)
let dialing = deferred(); // resolved when a connection attempt asks for its token
const token = () => {
  dialing.resolve();
  return hold?.promise;
};
const client = connect({ url, namespace: "/chat", transport, socketioUrl, token, minDelay: 20, maxDelay: 100, requestTimeout: WAIT });
const got = [];
const errors = [];
const gaps = [];
const sids = [];
client.on("*", (e) => got.push({ event: e.event, room: e.room, offset: e.offset, data: e.data }));
client.on("error", (e) => errors.push(e.code));
client.on("gap", (g) => gaps.push(g));
client.on("state", (s) => {
  if (s === "open") sids.push(client.sid);
});
if (process.env.RTGW_DEBUG) {
  for (const event of ["state", "reconnect", "recovery", "error", "*", "gap"]) {
    client.on(event, (v) => console.error(event, JSON.stringify(v?.code ? { code: v.code, message: v.message } : v)?.slice(0, 300)));
  }
}

/** Resolves when check() holds after some client event (checked now, and on each event). */
function when(check) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not reached within ${WAIT} ms (state ${client.state})`)), WAIT);
    const offs = [];
    const test = () => {
      if (!check()) return;
      clearTimeout(timer);
      for (const off of offs) off();
      resolve();
    };
    for (const event of ["*", "gap", "state", "recovery"]) offs.push(client.on(event, () => queueMicrotask(test)));
    test();
  });
}

try {
  await client.ready;
  await client.join(room);
  if (mode === "replay") {
    await when(() => got.some((e) => e.data === "after"));
    hold = deferred();
    dialing = deferred();
    const go = new Promise((resolve) => process.stdin.once("data", resolve));
    client.drop();
    await dialing.promise;
    console.log(JSON.stringify({ away: true }));
    await go;
    hold.resolve();
  }
  if (until === "gap") await when(() => gaps.length > 0 && client.state === "open");
  else await when(() => got.some((e) => e.data === until));
  const probe = await client.publish(room, "probe");
  console.log(JSON.stringify({
    got, errors, gaps, sids, probe, state: client.state, reconnects: client.reconnects, stats: client.stats,
  }));
  await client.close();
  process.exit(0);
} catch (err) {
  console.log(JSON.stringify({ error: String(err?.message ?? err), got, errors, gaps, sids, state: client.state, stats: client.stats }));
  process.exit(1);
}

// rtgateway.js (the browser client) under Node against a peer that does not answer: every
// promise must settle within its bound, with a clear error. For tests/test_js_bounds.py.
// Usage: RTGW_CLIENT=/path/rtgateway.js node bounds.mjs SCENARIO URL TRANSPORT
//   silent:  URL accepts connections and never answers. `ready`, join, publish, emit and leave
//            must reject with `timeout` within callTimeout, close() return within closeTimeout.
//   stopped: URL is a real gateway. The client opens and joins, prints {"ready": true}, then
//            waits for a line on stdin (the test has SIGSTOPped the gateway meanwhile); then the
//            same calls, plus one aborted mid-way through its AbortSignal.
// Prints one JSON object: {calls: {name: {code, ms}}, bounds: {callTimeout, closeTimeout}}.
import { once } from "node:events";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { runScenario } from "./scenario.mjs";

const { connect } = await import(pathToFileURL(process.env.RTGW_CLIENT).href);
const [scenario, url, transport] = process.argv.slice(2);
const FACTOR = Number(process.env.TIMEOUT_FACTOR ?? 1);
const bounds = { connectTimeout: 500, requestTimeout: 400, callTimeout: 1500, closeTimeout: 500 };
const socketioUrl = import.meta.resolve("socket.io-client"); // Node's build, not the browser's
const open = () => connect({ url, namespace: "/chat", transport, socketioUrl, minDelay: 20, maxDelay: 200, ...bounds });

/** How `promise` settled and how long it took: {code, ms} (code "ok" if it resolved). */
async function timed(promise) {
  const started = Date.now();
  try {
    await promise;
    return { code: "ok", ms: Date.now() - started };
  } catch (err) {
    return { code: err?.code ?? String(err), ms: Date.now() - started };
  }
}

/** The calls every scenario makes against a peer that stopped answering, all at once. */
async function unanswered(client, room) {
  const abort = new AbortController();
  const pending = {
    join: timed(client.join(`${room}-2`)),
    publish: timed(client.publish(room, "into the void")),
    emit: timed(client.emit("echo", 1)),
    leave: timed(client.leave(room)),
    shortTimeout: timed(client.publish(room, "short", { timeout: 300 })),
    aborted: timed(client.publish(room, "aborted", { signal: abort.signal })),
  };
  setTimeout(() => abort.abort(new Error("the caller gave up")), 200);
  const calls = {};
  for (const [name, promise] of Object.entries(pending)) calls[name] = await promise;
  calls.close = await timed(client.close());
  calls.afterClose = await timed(client.publish(room, "late"));
  return calls;
}

const scenarios = {
  async silent() {
    const client = open();
    const ready = timed(client.ready);
    const calls = await unanswered(client, "bounds-silent");
    return { calls: { ready: await ready, ...calls }, bounds, state: client.state };
  },

  async stopped() {
    const client = open();
    // Before the gateway stops, a loaded machine may take longer than callTimeout to open and
    // join: ready rejects then, but the client keeps trying; these are not the calls under test.
    const opened = new Promise((resolve) => client.on("state", (state) => state === "open" && resolve()));
    await client.ready.catch(async (err) => {
      if (err.code !== "timeout") throw err;
      await opened; // bounded by the scenario runner's own deadline
    });
    const room = `bounds-stopped-${transport}`;
    for (let attempt = 1; ; attempt++) {
      try {
        await client.join(room);
        break;
      } catch (err) {
        if (err.code !== "timeout" || attempt >= 10) throw err;
      }
    }
    process.stdout.write(JSON.stringify({ ready: true }) + "\n");
    const lines = createInterface({ input: process.stdin });
    await once(lines, "line"); // the gateway is stopped now
    lines.close();
    const calls = await unanswered(client, room);
    return { calls, bounds, state: client.state };
  },
};

await runScenario(scenarios, scenario, 20000 * FACTOR);

// rtgateway.js's `transport: "auto"` under Node, against a real gateway behind a proxy. One
// scenario per run; prints one JSON object for tests/test_js_auto.py, or {error} and exit 1.
// Usage: RTGW_CLIENT=/path/rtgateway.js node auto.mjs SCENARIO ARGS...
//   first URL TRANSPORT:ROUNDS...   time to the first usable session (open, then a join acked),
//                                    median of ROUNDS rounds per transport, after a warm-up
//   ends URL EXPECTED               auto settles on the transport EXPECTED; its history
//   burst URL DIRECT_URL COUNT      two auto receivers behind URL while a publisher on DIRECT_URL
//                                    sends COUNT numbered events; the receivers move (or are cut)
//                                    meanwhile: what each received, lost, got twice
//   RTGW_DEBUG=1 logs every client event on stderr.
import { pathToFileURL } from "node:url";
import { runScenario } from "./scenario.mjs";

const { connect, loadSocketIO } = await import(pathToFileURL(process.env.RTGW_CLIENT).href);
const [scenario, url, ...args] = process.argv.slice(2);
const FACTOR = Number(process.env.TIMEOUT_FACTOR ?? 1);
const WAIT = 20000 * FACTOR;
// Node cannot run the browser build the gateway serves: give the client the Node one.
const socketioUrl = import.meta.resolve("socket.io-client");
const t0 = Date.now();
let rooms = 0;
const room = () => `auto-${process.pid}-${++rooms}`;

function open(options) {
  const client = connect({ namespace: "/chat", socketioUrl, minDelay: 50, maxDelay: 500, closeTimeout: 500, ...options });
  if (process.env.RTGW_DEBUG) {
    const tag = `${options.transport}@${options.url}`;
    for (const event of ["state", "reconnect", "recovery", "error", "transport", "attempt", "gap"]) {
      client.on(event, (v) => console.error(Date.now() - t0, tag, event, JSON.stringify(v?.code ? { code: v.code, message: v.message } : v)));
    }
  }
  return client;
}

/** Resolves when `check()` holds, re-checked on every `event` of `client`; fails after `ms`. */
function until(client, event, check, ms = WAIT, what = event) {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`not within ${ms} ms: ${what} (transport ${client.transport}, state ${client.state})`));
    }, ms);
    const off = client.on(event, () => {
      if (!check()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One connection from nothing to a first acknowledged request: [ms to open, ms to the join's ack]. */
async function firstSession(transport) {
  const started = performance.now();
  const client = open({ url, transport });
  try {
    await client.ready;
    const ready = performance.now() - started;
    await client.join(room());
    return { ready, joined: performance.now() - started, transport: client.transport };
  } finally {
    await client.close();
  }
}

const scenarios = {
  async first() {
    // Warm-up, not measured: the module loads, the route's first connections.
    await loadSocketIO(socketioUrl);
    await firstSession("sse");
    const result = {};
    for (const spec of args) {
      const [transport, rounds] = spec.split(":");
      const runs = [];
      for (let i = 0; i < Number(rounds); i++) runs.push(await firstSession(transport));
      result[transport] = {
        ready: median(runs.map((r) => r.ready)),
        joined: median(runs.map((r) => r.joined)),
        transports: runs.map((r) => r.transport),
      };
    }
    return result;
  },

  async ends() {
    const [expected] = args;
    const client = open({ url, transport: "auto" });
    const seen = [];
    client.on("transport", (name) => seen.push(name));
    const where = room();
    try {
      await client.ready;
      await client.join(where);
      await until(client, "transport", () => client.transport === expected, WAIT, `transport ${expected}`);
      // Settled: nothing still being tried (a probe, a move) that could change it.
      await until(client, "attempt", () => !client._probe && !client._moving && !client._upgradeTimer, WAIT, "settled");
      const ack = await client.publish(where, { n: 1 }).then(() => "acked", (err) => err.code);
      return { transport: client.transport, seen, history: client.history.map(({ transport, outcome }) => `${transport}:${outcome}`), ack };
    } finally {
      await client.close();
    }
  },

  async burst() {
    const [direct, count] = args;
    const total = Number(count);
    const where = room();
    // Two receivers, moving (or being cut) at different points of the burst.
    const receivers = [150, 400].map((upgradeDelay) => {
      const client = open({ url, transport: "auto", upgradeDelay });
      const got = [];
      const moves = [];
      client.on("message", (envelope) => got.push(envelope.data.n));
      client.on("transport", (name) => moves.push({ name, at: got.length }));
      return { client, got, moves };
    });
    const publisher = open({ url: direct, transport: "sse" });
    try {
      await Promise.all(receivers.map(({ client }) => client.join(where)));
      await publisher.join(where); // a room's members publish to it
      for (let n = 1; n <= total; n++) {
        await publisher.publish(where, { n });
        if (n % 20 === 0) await new Promise((r) => setTimeout(r, 10)); // spread the burst over the moves
      }
      await Promise.all(receivers.map(({ client, got }) => until(client, "message", () => got.length >= total, WAIT, `${total} messages`)));
      return receivers.map(({ client, got, moves }) => {
        const seen = new Set(got);
        return {
          received: got.length,
          unique: seen.size,
          missing: Array.from({ length: total }, (_, i) => i + 1).filter((n) => !seen.has(n)).length,
          inOrder: got.every((n, i) => i === 0 || n > got[i - 1]),
          moves,
          transport: client.transport,
          reconnects: client.reconnects,
          overlap: client.stats.duplicates, // delivered twice by the gateway, dropped by offset
          gaps: client.stats.gaps,
          history: client.history.map(({ transport, outcome }) => `${transport}:${outcome}`),
        };
      });
    } finally {
      await Promise.all([publisher, ...receivers.map((r) => r.client)].map((c) => c.close()));
    }
  },
};

runScenario(scenarios, scenario, 80000 * FACTOR);

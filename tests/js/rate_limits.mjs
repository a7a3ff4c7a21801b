// rtgateway.js (the browser client) under Node against a gateway with small limits: it honours
// retryAfter for requests and for connects. Prints one JSON object for tests/test_limits.py,
// or {error} and exits 1.
// Usage: RTGW_CLIENT=/path/rtgateway.js node rate_limits.mjs SCENARIO URL TRANSPORT
//   publish: six publishes at once against a small per-session bucket: every one resolves, once.
//   connect: the address's new-session bucket is empty: the first dial is refused with
//            rate_limited, the next waits at least its retryAfter, then the session opens.
import { pathToFileURL } from "node:url";
import { runScenario } from "./scenario.mjs";

const { connect } = await import(pathToFileURL(process.env.RTGW_CLIENT).href);
const [scenario, url, transport] = process.argv.slice(2);
const WAIT = 10000 * Number(process.env.TIMEOUT_FACTOR ?? 1);
const socketioUrl = import.meta.resolve("socket.io-client"); // Node's build, not the browser's
const open = () => connect({ url, namespace: "/chat", transport, socketioUrl, minDelay: 20 });

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${WAIT} ms`)), WAIT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const scenarios = {
  async publish() {
    const client = open();
    const failed = [];
    client.on("failed", (entry) => failed.push(entry.error?.code));
    await within(client.ready, "open");
    const room = `js-limits-${transport}`;
    await client.join(room);
    const started = Date.now();
    const acks = await within(Promise.all([1, 2, 3, 4, 5, 6].map((n) => client.publish(room, n))), "acks");
    const result = {
      offsets: acks.map((ack) => ack.offset), failed, took: Date.now() - started,
      retransmits: client.stats.retransmits, reconnects: client.reconnects, state: client.state,
    };
    await client.close();
    return result;
  },

  async connect() {
    const client = open();
    const reconnects = [];
    client.on("reconnect", ({ delay, reason }) => reconnects.push({ delay, code: reason?.code, retryAfter: reason?.detail?.retryAfter }));
    const started = Date.now();
    await within(client.ready, "open");
    const result = { reconnects, took: Date.now() - started, state: client.state, sid: client.sid };
    await client.close();
    return result;
  },
};

await runScenario(scenarios, scenario, 3 * WAIT);

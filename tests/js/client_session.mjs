// rtgateway.js itself (the browser client) under Node, against a real gateway: the session's
// private key, close frames and token functions. One scenario per run; prints one JSON
// object (what happened) on stdout for tests/test_js_client.py to check, or {error} and exit 1.
// Usage: RTGW_CLIENT=/path/rtgateway.js node client_session.mjs SCENARIO URL TRANSPORT
//   SCENARIO: resume | replaced | token   TRANSPORT: sse | socketio
//   token needs JWT_SECRET (the gateway's GATEWAY_JWT_SECRET, HS256).
//   RTGW_DEBUG=1 logs every client event on stderr.
import { createHmac } from "node:crypto";
import { pathToFileURL } from "node:url";
import { runScenario } from "./scenario.mjs";

const { connect } = await import(pathToFileURL(process.env.RTGW_CLIENT).href);
const [scenario, url, transport] = process.argv.slice(2);
const WAIT = 10000 * Number(process.env.TIMEOUT_FACTOR ?? 1);
// Node cannot run the browser build the gateway serves: give the client the Node one.
const socketioUrl = import.meta.resolve("socket.io-client");
const t0 = Date.now();
const open = (options) => {
  const client = connect({ url, namespace: "/chat", transport, socketioUrl, minDelay: 50, ...options });
  if (process.env.RTGW_DEBUG) {
    const tag = options?.transport ?? transport;
    for (const event of ["state", "reconnect", "recovery", "error", "*", "transport"]) {
      client.on(event, (v) => console.error(Date.now() - t0, tag, event, JSON.stringify(v?.code ? { code: v.code, message: v.message } : v)));
    }
  }
  return client;
};

/** The first `event` from `client` for which `check` holds; fails after WAIT ms. */
function next(client, event, check = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} within ${WAIT} ms (state ${client.state})`));
    }, WAIT);
    const off = client.on(event, (value) => {
      if (!check(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** An HS256 JWT, as the application's auth service would issue it. */
function mint(claims, secret = process.env.JWT_SECRET) {
  const signing = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}`;
  return `${signing}.${createHmac("sha256", secret).update(signing).digest("base64url")}`;
}

/** Another connection resuming `sid` with its key, as a second tab or a thief holding the key would. */
async function resumeElsewhere(sid, key) {
  if (transport === "sse") {
    const abort = new AbortController();
    const response = await fetch(`${url}/sse/connect?namespace=/chat&sid=${encodeURIComponent(sid)}`, {
      headers: { Accept: "text/event-stream", "X-Session-Key": key },
      signal: abort.signal,
    });
    if (!response.ok) throw new Error(`resume elsewhere: HTTP ${response.status} ${await response.text()}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!/event: open\ndata: .*\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`resume elsewhere: the stream ended: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
    const info = JSON.parse(/event: open\ndata: (.*)\n/.exec(text)[1]);
    const join = async (room) => {
      const answer = await fetch(`${url}/sse/sessions/${encodeURIComponent(sid)}/join`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Session-Key": key },
        body: JSON.stringify({ room }),
      });
      return answer.json();
    };
    return { info, join, close: () => abort.abort() };
  }
  const { io } = await import(socketioUrl);
  const socket = io(`${url}/chat`, { auth: { sid, key }, forceNew: true, reconnection: false, timeout: WAIT });
  const info = await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("connect_error", (err) => reject(new Error(`resume elsewhere: ${JSON.stringify(err.data ?? err.message)}`)));
  });
  return { info, join: (room) => socket.timeout(WAIT).emitWithAck("join", { room }), close: () => socket.close() };
}

const scenarios = {
  /** A drop, a reconnect held back while the room moves on, then the resume: same sid and key, nothing missed. */
  async resume() {
    const room = `js-resume-${transport}`;
    let hold = null; // while set, a connection attempt waits for it (its token is not ready)
    let dialing = deferred(); // resolved when a connection attempt asks for its token
    const client = open({
      token: () => {
        dialing.resolve();
        return hold?.promise;
      },
    });
    const publisher = open({ transport: "sse" });
    const got = [];
    client.on("message", (envelope) => got.push(envelope.data));
    await Promise.all([client.ready, publisher.ready]);
    await Promise.all([client.join(room), publisher.join(room)]);
    const before = { sid: client.sid, key: client.key };

    hold = deferred();
    dialing = deferred();
    const reconnecting = next(client, "reconnect");
    client.drop();
    await reconnecting;
    await dialing.promise; // the reconnect waits for its token: the client is away
    for (const text of ["missed-1", "missed-2", "missed-3"]) await publisher.publish(room, text);
    const recovered = next(client, "recovery");
    hold.resolve(undefined); // anonymous: no token
    const recovery = await recovered;
    const live = next(client, "message", (envelope) => envelope.data === "live"); // the stream may beat the ack
    await publisher.publish(room, "live");
    await live;
    const result = {
      before, after: { sid: client.sid, key: client.key }, recovery, got, state: client.state,
      stats: client.stats, transport: client.transport,
    };
    await Promise.all([client.close(), publisher.close()]);
    return result;
  },

  /** The session is resumed by another connection: this client gets `replaced` and stops for good. */
  async replaced() {
    const room = `js-replaced-${transport}`;
    const client = open();
    const states = [];
    const errors = [];
    const reconnects = [];
    client.on("state", (state) => states.push(state));
    client.on("error", (err) => errors.push({ code: err.code, message: err.message }));
    client.on("reconnect", ({ reason }) => reconnects.push(reason?.code));
    await client.ready;
    await client.join(room);
    const { sid, key } = client;
    const closed = next(client, "state", (state) => state === "closed");
    const other = await resumeElsewhere(sid, key);
    await closed;
    // The new owner keeps the session: its requests work after this client has stopped.
    const joined = await other.join(`${room}-2`);
    const refused = await client.publish(room, "after the end").then(
      () => null,
      (err) => err.code,
    );
    const result = {
      sid, otherSid: other.info.sid, otherRooms: other.info.rooms, states, errors, reconnects,
      reconnectCount: client.reconnects, joined, refused, transport: client.transport,
    };
    other.close();
    return result;
  },

  /** The token expires while connected: close {token_expired}, a fresh token from the function, same session. */
  async token() {
    const room = `js-token-${transport}`;
    const issued = [];
    const token = async () => {
      // The first token lives ~2 s; the ones after it long enough for the test.
      const life = issued.length === 0 ? 2 : 60;
      const exp = Math.floor(Date.now() / 1000) + life;
      issued.push(exp);
      return mint({ sub: "ada", exp });
    };
    const client = open({ token });
    const reasons = [];
    client.on("reconnect", ({ reason }) => reasons.push(reason?.code));
    // Listening from the start: on a loaded machine the first token may expire before the join is answered.
    const expired = next(client, "reconnect", ({ reason }) => reason?.code === "token_expired");
    const recovered = next(client, "recovery");
    await client.ready;
    const before = { sid: client.sid, key: client.key };
    await client.join(room);
    await expired;
    const recovery = await recovered;
    const echoed = next(client, "message", (envelope) => envelope.data === "still here"); // the stream may beat the ack
    await client.publish(room, "still here", { includeSelf: true });
    await echoed;
    const result = {
      before, after: { sid: client.sid, key: client.key }, calls: issued.length, reasons, recovery, state: client.state,
    };
    await client.close();
    return result;
  },
};

await runScenario(scenarios, scenario, 3 * WAIT);

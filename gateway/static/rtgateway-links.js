/**
 * rtgateway-links.js: one connection each, over SSE + POST or Socket.IO.
 *
 * A link is a single connection attempt. It reports to its owner through `events`:
 * frame(link, event, data), lost(link, reason), malformed(what), unusable(link) (after a
 * malformed frame that could not even be read), call(event, data, reply),
 * transport(link, name), cursor(link, id). The owner (rtgateway.js) keeps sessions,
 * reconnection, the outbox and delivery. A link offers open(resume), opened(info),
 * request(kind, body), drop(), close(), `name`, the transport actually in use ("sse",
 * "sse-poll", "polling", "websocket"), and `kind`, what was asked for ("sse", "websocket",
 * "polling", "socketio": polling, then WebSocket if it can). An SSE link also reports
 * buffered(link) when it finds its stream held back by a proxy and polls instead.
 * open() gets {sid, key, cursor, offsets, token}: the session to resume (sid is public, key is
 * the private proof of ownership from the open frame) and the credential for this attempt.
 *
 * For `transport: "auto"`, two more pieces: WebSocketProbe opens a WebSocket engine with no
 * namespace (so no session) to learn whether WebSocket passes this network, and can then carry a
 * SocketIOLink; networkMemory remembers, per gateway URL and for a while, what failed.
 */

import { GatewayError, SseParser, isCursor, isObject, parseWire, problemError, toWire, unwrapAck } from "./rtgateway-protocol.js";

// -- Socket.IO, loaded only when asked for ---------------------------------------

let socketIO = null;

/** Import socket.io-client's ESM build (served by the gateway from node_modules). */
export function loadSocketIO(url = new URL("socket.io.esm.min.js", import.meta.url).href) {
  socketIO ??= import(url).catch((err) => {
    socketIO = null;
    throw new GatewayError(
      "socketio_unavailable",
      `socket.io-client is not served at ${url}: run \`npm ci\` (or \`make serve\`, which does it) (${err.message})`,
    );
  });
  return socketIO;
}

/** Whether the Socket.IO transports can be used from this page. */
export async function socketIOAvailable(url) {
  try {
    await loadSocketIO(url);
    return true;
  } catch {
    return false;
  }
}

/**
 * socket.io-client closes the whole connection ("parse error") on one packet it will not
 * decode: JSON it cannot parse (NaN, Infinity), or an event named like one it keeps for itself
 * (connect, connect_error, disconnect, disconnecting, newListener, removeListener). Such a packet
 * in a room's log would come back with every replay, and every reconnect would end the same way.
 * So its Manager's decoder is wrapped: a text packet that fails to decode goes to `onBad`
 * instead, and the connection goes on.
 *
 * This reaches into socket.io-client (4.8): `Manager.decoder`, whose `add` its `ondata` calls
 * in a try/catch that closes with "parse error". If a version renames it, the guard is skipped
 * (the client is then only as robust as socket.io-client itself), and
 * tests/test_bad_frames.py's Socket.IO cases for rtgateway.js fail.
 */
export function guardDecoder(manager, onBad) {
  const decoder = manager?.decoder;
  if (typeof decoder?.add !== "function") return false;
  const add = decoder.add;
  decoder.add = function guarded(packet) {
    try {
      add.call(this, packet);
    } catch (err) {
      if (typeof packet !== "string") throw err; // binary attachments: socket.io-client's own business
      onBad(packet, err);
    }
  };
  return true;
}

// -- what this network lets through, remembered ------------------------------------

const remembered = new Map(); // where there is no localStorage (Node, a sandboxed frame)

function store() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // storage refused (a sandboxed frame, privacy settings)
  }
}

/**
 * What failed on this network, per gateway URL, each fact with its own expiry: `websocket:
 * "failed"` (a proxy refused it), `sse: "poll"` (a proxy buffers streams) or `sse: "failed"`.
 * Kept in localStorage in a browser, so a reload does not try a blocked WebSocket first; in
 * memory elsewhere.
 */
export const networkMemory = {
  recall(url, now = Date.now()) {
    const key = `rtgateway:network:${url}`;
    let facts = remembered.get(key) ?? {};
    try {
      const text = store()?.getItem(key);
      if (text) facts = JSON.parse(text);
    } catch {
      /* unreadable: nothing remembered */
    }
    const live = {};
    for (const [what, fact] of Object.entries(isObject(facts) ? facts : {})) {
      if (isObject(fact) && typeof fact.value === "string" && fact.until > now) live[what] = fact.value;
    }
    return live;
  },

  note(url, what, value, forMs, now = Date.now()) {
    const key = `rtgateway:network:${url}`;
    let facts = remembered.get(key) ?? {};
    try {
      facts = JSON.parse(store()?.getItem(key) ?? "null") ?? facts;
    } catch {
      /* unreadable: start again */
    }
    facts = { ...(isObject(facts) ? facts : {}), [what]: { value, until: now + forMs } };
    remembered.set(key, facts);
    try {
      store()?.setItem(key, JSON.stringify(facts));
    } catch {
      /* full or refused: the in-memory copy still serves this page */
    }
  },

  forget(url) {
    const key = `rtgateway:network:${url}`;
    remembered.delete(key);
    try {
      store()?.removeItem(key);
    } catch {
      /* refused */
    }
  },
};

/**
 * A WebSocket engine opened on its own, with no namespace: it costs the gateway no session,
 * and once open it can carry a SocketIOLink ({manager}), so moving there takes one more round
 * trip. `opened` resolves to the engine's Manager or rejects with a GatewayError; `elapsed` is
 * how long the engine took to open (ms).
 */
export class WebSocketProbe {
  constructor(options) {
    this.options = options;
    this.manager = null;
    this.cancelled = false;
    this.elapsed = null;
    const started = Date.now();
    this.opened = this._open().then((manager) => {
      this.elapsed = Date.now() - started;
      return manager;
    });
    this.opened.catch(() => {}); // the owner listens; a probe given up on is not an unhandled rejection
  }

  async _open() {
    const { url, connectTimeout, socketioUrl } = this.options;
    const { Manager } = await loadSocketIO(socketioUrl);
    if (this.cancelled) throw new GatewayError("client_closed", "the probe was cancelled");
    const manager = new Manager(url, { transports: ["websocket"], reconnection: false, autoConnect: false, timeout: connectTimeout });
    this.manager = manager;
    await new Promise((resolve, reject) => {
      this.abandon = reject;
      manager.open((err) => (err ? reject(new GatewayError(err.message === "timeout" ? "timeout" : "network_error", `WebSocket failed: ${err.message}`)) : resolve()));
    });
    if (this.cancelled) throw new GatewayError("client_closed", "the probe was cancelled");
    return manager;
  }

  /** Give up on it: the engine (open or opening) is closed, unless a link took it. */
  cancel() {
    this.cancelled = true;
    this.manager?.disconnect();
    this.abandon?.(new GatewayError("client_closed", "the probe was cancelled"));
  }
}

// -- the links --------------------------------------------------------------------

/**
 * SSE + POST. The stream is read with fetch() and parsed here rather than with EventSource:
 * EventSource hides comment lines, so the `: ping` the gateway sends every pingInterval
 * could not prove the stream alive (a quiet room would look dead, or a dead one alive
 * until TCP noticed); it resends Last-Event-ID only on its own automatic reconnects, not
 * when we open a new stream after our own backoff; it cannot send an Authorization header;
 * and a refused connect is an opaque `error` with no status or problem body to read a code from.
 */
export class SseLink {
  /**
   * `mode`: "stream" keeps one response open; "poll" asks the gateway to end each response
   * after a batch of events and asks again at once, resuming from the cursor (for proxies that
   * buffer responses); "auto" streams, and polls from the moment the response headers came but
   * no byte of the stream did within options.bufferTimeout: the mark of a buffering proxy.
   */
  constructor(options, events, seq, { mode = "auto" } = {}) {
    this.options = options;
    this.events = events;
    this.seq = seq;
    this.kind = "sse";
    this.mode = mode;
    this.polling = mode === "poll";
    this.sid = null; // the session its requests are for, from the open frame
    this.key = null; // its private key: sent as X-Session-Key on every request
    this.cursor = null; // the last id: read: where the next poll resumes
    this.token = undefined;
    this.answered = false; // the first response's headers came
    this.abort = new AbortController();
    this.timer = null;
    this.held = null; // the buffering watch of a streaming response
    this.ended = false;
  }

  get name() {
    return this.polling ? "sse-poll" : "sse";
  }

  async open({ sid, key, cursor, token }) {
    // Known before the open frame, so that close() during a resume still ends the session.
    this.sid = sid ?? null;
    this.key = key ?? null;
    this.cursor = cursor ?? null;
    this.token = token;
    const response = await this._get();
    this.answered = true;
    this._read(response);
  }

  /** One GET /sse/connect: a new session, or a resume from the cursor (or sid and key). */
  async _get() {
    const { url, namespace, name, connectTimeout } = this.options;
    const query = new URLSearchParams({ namespace });
    if (name) query.set("name", name); // extra query parameters reach the namespace's middleware
    if (this.polling) query.set("mode", "poll");
    const headers = { Accept: "text/event-stream" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (this.cursor) {
      headers["Last-Event-ID"] = this.cursor; // "<sid>:<key>;<room>=<offset>,…": it carries the key
    } else if (this.sid && this.key) {
      query.set("sid", this.sid);
      headers["X-Session-Key"] = this.key;
    }
    this._watch(connectTimeout); // the connect and the open frame must come in time
    let response;
    try {
      response = await fetch(`${url}/sse/connect?${query}`, { headers, cache: "no-store", signal: this.abort.signal });
    } catch (err) {
      clearTimeout(this.timer);
      throw this.abort.signal.reason ?? new GatewayError("network_error", `cannot reach ${url}: ${err.message}`);
    }
    if (!response.ok) {
      clearTimeout(this.timer);
      throw await problemError(response);
    }
    if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      clearTimeout(this.timer);
      this.abort.abort();
      throw new GatewayError("malformed_frame", `/sse/connect answered ${response.headers.get("content-type")}, not an event stream`);
    }
    // A poll after the first: the gateway holds it up to pingInterval before answering.
    if (this.deadline) this._watch(this.deadline);
    return response;
  }

  /** Dead-stream detection: anything read (an event or a `: ping`) resets the watchdog. */
  _watch(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.abort.abort(new GatewayError("timeout", `nothing heard from the stream for ${ms} ms`)),
      ms,
    );
  }

  /** The open frame tells how often pings come. */
  opened(info) {
    this.sid = info.sid;
    this.key = info.key;
    this.deadline = info.pingInterval + info.pingTimeout;
    this._watch(this.deadline);
  }

  /** Responses until the link ends: one when streaming, one after another when polling. */
  async _read(response) {
    let reason = null;
    try {
      for (;;) {
        const buffered = await this._consume(response);
        if (this.ended) return;
        if (buffered) {
          this.polling = true;
          this.events.buffered?.(this);
          this.events.transport(this, this.name);
        } else if (!this.polling) {
          break;
        }
        response = await this._get(); // the next poll, at once
      }
      reason = new GatewayError("network_error", "the event stream ended");
    } catch (err) {
      reason = this.abort.signal.reason ?? (err instanceof GatewayError ? err : new GatewayError("network_error", `the event stream broke: ${err.message}`));
      this.abort.abort(reason); // a parse failure: do not leave the response open behind us
    } finally {
      clearTimeout(this.timer);
      clearTimeout(this.held);
    }
    this._end(reason);
  }

  /** Read one response to its end; true if it was given up as held back by a proxy. */
  async _consume(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    // A poll after the session opened starts again with open (and recovery): the gateway's way
    // of resuming, not news for the client, which hears only what the poll brings.
    const again = Boolean(this.gotOpen);
    let heard = false;
    let buffered = false;
    if (this.mode === "auto" && !this.polling) {
      this.held = setTimeout(() => {
        buffered = !heard;
        if (buffered) reader.cancel().catch(() => {});
      }, this.options.bufferTimeout ?? 3000);
    }
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.ended) return buffered;
        heard = true;
        clearTimeout(this.held);
        this._watch(this.deadline ?? this.options.connectTimeout);
        for (const frame of parser.push(decoder.decode(value, { stream: true }))) {
          if (this.ended) return false;
          if (frame.comment !== undefined) continue; // a ping: its bytes already fed the watchdog
          if (frame.id !== undefined) {
            // A cursor the gateway would refuse is not kept: a resume would lose the session.
            if (isCursor(frame.id)) {
              this.cursor = frame.id;
              this.events.cursor(this, frame.id);
            } else {
              this.events.malformed(`an id: line that is not a cursor: ${frame.id.slice(0, 80)}`);
            }
          }
          if (frame.data === undefined) continue;
          const name = frame.event.slice(0, 80);
          if (frame.overlong) {
            this.events.malformed(`"${name}" frame with a line too long to keep`);
            this.events.unusable(this);
            continue;
          }
          let data;
          try {
            data = parseWire(frame.data); // binary markers as ArrayBuffers
          } catch {
            this.events.malformed(`"${name}" frame whose data is not JSON: ${frame.data.slice(0, 80)}`);
            this.events.unusable(this);
            continue;
          }
          if (again && (frame.event === "open" || (frame.event === "recovery" && data?.complete === true))) continue;
          this.events.frame(this, frame.event, data);
        }
      }
    } finally {
      clearTimeout(this.held);
    }
  }

  _end(reason) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    this.events.lost(this, reason);
  }

  async _post(path, body, method = "POST") {
    const { url, requestTimeout } = this.options;
    const headers = { "X-Session-Key": this.key ?? "" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    // Binaries (ArrayBuffer, typed arrays, Blob) as marker objects: the gateway hands them on as bytes.
    const json = body === undefined ? undefined : JSON.stringify(await toWire(body));
    let response;
    try {
      response = await fetch(`${url}/sse/sessions/${encodeURIComponent(this.sid)}${path}`, {
        method,
        headers,
        body: json,
        signal: AbortSignal.timeout(requestTimeout),
        keepalive: method === "DELETE",
      });
    } catch (err) {
      if (err.name === "TimeoutError") throw new GatewayError("timeout", `no answer to ${path} in ${requestTimeout} ms`);
      throw new GatewayError("network_error", `${path} failed: ${err.message}`);
    }
    if (!response.ok) throw await problemError(response);
    return response;
  }

  async request(kind, body) {
    const response = await this._post(`/${kind}`, body);
    let answer;
    try {
      answer = parseWire(await response.text());
    } catch {
      throw new GatewayError("malformed_frame", `the answer to ${kind} is not JSON`);
    }
    return unwrapAck(answer);
  }

  answer(ackId, result) {
    return this._post("/ack", { ackId, result: result ?? null });
  }

  drop() {
    this.abort.abort(new GatewayError("network_error", "connection dropped by the client"));
  }

  async close() {
    this.ended = true;
    clearTimeout(this.timer);
    this.abort.abort(new GatewayError("client_closed", "closed by the client"));
    if (this.sid && this.key) await this._post("", undefined, "DELETE").catch(() => {});
  }
}

/**
 * socket.io-client's long-polling transport (`Fetch`, its fetch() one) whose polls, once the
 * handshake has given the connection its Engine.IO sid, wait in the long-poll the tabs share
 * (`share.poll`, docs/protocol.md "One long-poll for many Socket.IO connections"). The
 * handshake and the POSTs stay this tab's own, short requests. A gateway without the shared
 * poll: this connection polls on its own, as socket.io-client would.
 */
function sharedPolling(Fetch, share) {
  return class SharedPolling extends Fetch {
    doPoll() {
      const sid = this.query?.sid;
      if (!sid || this.alone) return super.doPoll();
      this.received ??= 0; // answers of the shared poll this connection has had: the gateway resends the last if one is missing
      share.poll({ sid, n: this.received }).then(
        ({ n, text }) => {
          if (this.readyState === "closed") return;
          this.received = n;
          this.onData(text);
        },
        (err) => {
          if (this.readyState === "closed") return;
          if (err.code === "share_unavailable") {
            this.alone = true; // no shared poll here: its own polls from now on
            super.doPoll();
          } else if (err.detail?.leaderLeft) {
            this.doPoll(); // leader mode: the tab holding the shared poll closed; the next one asks again
          } else {
            this.onError("shared poll failed", err);
          }
        },
      );
    }
  };
}

/**
 * Socket.IO, wrapping the official socket.io-client. socket.io-client's own reconnection is
 * off: each attempt is a new connection whose auth carries {sid, key, offsets} to resume (and
 * the token of that attempt), which a reconnecting Manager would not update. Its engine does detect dead connections (the
 * server pings every pingInterval; silence for pingInterval + pingTimeout closes it).
 */
export class SocketIOLink {
  /**
   * `transports`: socket.io-client's (polling then WebSocket by default); `manager`: an engine
   * already open (a WebSocketProbe's), to connect the namespace over instead of a new one.
   */
  constructor(options, events, seq, { transports = ["polling", "websocket"], manager = null, share = null } = {}) {
    this.options = options;
    this.events = events;
    this.seq = seq;
    this.transports = transports;
    this.kind = transports.length > 1 ? "socketio" : transports[0];
    this.manager = manager;
    // Long-polling only: its polls wait in the one the tabs share (rtgateway-shared.js).
    this.share = this.kind === "polling" ? share : null;
    this.sharing = this.share?.mode ?? null;
    this.socket = null;
    this.ended = false;
  }

  get name() {
    return this.socket?.io?.engine?.transport?.name ?? null;
  }

  async open({ sid, key, offsets, token }) {
    const { url, namespace, name, connectTimeout, socketioUrl } = this.options;
    const { io, Fetch } = await loadSocketIO(socketioUrl);
    if (this.ended) throw new GatewayError("client_closed", "closed by the client");
    const transports = this.share ? [sharedPolling(Fetch, this.share)] : this.transports;
    const auth = {};
    if (token) auth.token = token;
    if (name) auth.name = name;
    if (sid && key) Object.assign(auth, { sid, key, offsets });
    const socket = this.manager
      ? this.manager.socket(namespace, { auth })
      : io(url + namespace, {
        auth,
        reconnection: false,
        forceNew: true,
        autoConnect: false, // guardDecoder first
        timeout: connectTimeout,
        transports,
      });
    this.socket = socket;
    guardDecoder(socket.io, (packet) => this._undecodable(packet));
    socket.connect();
    socket.onAny((event, ...args) => this._incoming(event, args));
    socket.io.on("open", () => socket.io.engine.on("upgrade", (t) => this.events.transport(this, t.name)));
    socket.on("disconnect", (reason) => this._end(new GatewayError("network_error", `Socket.IO disconnected: ${reason}`)));
    await new Promise((resolve, reject) => {
      this.abandon = reject;
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => {
        socket.close();
        const data = err.data;
        reject(isObject(data) && typeof data.code === "string"
          ? new GatewayError(data.code, data.message ?? data.code, data, true)
          : new GatewayError(err.message === "timeout" ? "timeout" : "network_error", `Socket.IO connect failed: ${err.message}`));
      });
    });
  }

  _incoming(event, args) {
    if (this.ended) return;
    if (typeof args[args.length - 1] === "function") {
      // A server call: answered through Socket.IO's own ack.
      const reply = args.pop();
      this.events.call(event, args[0], async (result) => reply(result ?? null));
    } else {
      this.events.frame(this, event, args[0]);
    }
  }

  /**
   * A packet socket.io-client would not decode. An event under a name it keeps for itself
   * (newListener, disconnect...) still carries an envelope: handed on, so the client skips it
   * knowing its offset; anything else (JSON with NaN, say) is counted.
   */
  _undecodable(packet) {
    if (this.ended) return;
    let args = null;
    try {
      const start = packet.indexOf("[");
      args = packet[0] === "2" && start > 0 ? JSON.parse(packet.slice(start)) : null;
    } catch {
      /* not JSON */
    }
    if (Array.isArray(args) && typeof args[0] === "string" && args.length === 2) {
      this.events.frame(this, args[0], args[1]);
    } else {
      this.events.malformed(`a Socket.IO packet socket.io-client cannot decode: ${packet.slice(0, 80)}`);
      this.events.unusable(this);
    }
  }

  _end(reason) {
    if (this.ended) return;
    this.ended = true;
    this.events.lost(this, reason);
  }

  opened() {}

  request(kind, body) {
    const { requestTimeout } = this.options;
    return new Promise((resolve, reject) => {
      const done = (err, ack) => {
        if (err) return reject(new GatewayError("timeout", `no ack for ${kind} in ${requestTimeout} ms (or disconnected)`));
        try {
          resolve(unwrapAck(ack));
        } catch (error) {
          reject(error);
        }
      };
      const socket = this.socket.timeout(requestTimeout);
      if (kind === "emit") {
        const meta = body.volatile ? { clientEventId: null, volatile: true } : { clientEventId: body.clientEventId };
        socket.emit(body.event, body.data ?? null, meta, done);
      }
      else socket.emit(kind, body, done);
    });
  }

  drop() {
    const transport = this.socket?.io?.engine?.transport;
    if (transport?.ws) {
      transport.ws.close(); // WebSocket: a real close; the server sees "transport close" and keeps the session
    } else if (transport) {
      // Polling: stop as if the network went away. engine.close() would send Engine.IO's
      // close packet, which the server rightly takes as "the client is leaving for good".
      transport.onClose({ description: "connection dropped by the client" });
    }
  }

  async close() {
    this.ended = true;
    this.socket?.disconnect(); // a Socket.IO DISCONNECT: the server closes the session
    this.abandon?.(new GatewayError("client_closed", "closed by the client"));
  }
}

/**
 * The HTTP version the page reached `url` over ("http/1.1", "h2", "h3"), from the Resource
 * Timing entries of what it loaded there (this module, for one), or null if none says.
 */
export function httpVersion(url) {
  const perf = globalThis.performance;
  if (typeof perf?.getEntriesByType !== "function") return null;
  const origin = new URL(url).origin;
  for (const entry of [...perf.getEntriesByType("navigation"), ...perf.getEntriesByType("resource")].reverse()) {
    if (entry.nextHopProtocol && entry.name.startsWith(origin)) return entry.nextHopProtocol;
  }
  return null;
}

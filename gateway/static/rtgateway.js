/**
 * rtgateway.js: the browser client of rtgateway, one API over SSE + POST and Socket.IO.
 * No dependencies; beside it, rtgateway-protocol.js (its pure pieces) and rtgateway-links.js
 * (its connections). socket.io-client is imported only when a Socket.IO transport is chosen.
 *
 *   import { connect } from "/client/rtgateway.js";
 *   const client = connect({ namespace: "/chat", transport: "sse" });   // or "socketio", "socketio-polling"
 *   // with a credential: token: "<JWT>", or a (possibly async) function returning one, called
 *   // before every connection attempt, e.g. token: () => fetchFreshJwt()
 *   client.on("message", (envelope) => show(envelope.data));
 *   await client.join("lobby");
 *   const { offset } = await client.publish("lobby", { text: "hi" });
 *
 * The wire format is docs/protocol.md. What this module adds on top of either transport:
 *
 * - An outbox. Every publish() and emit() carries a random clientEventId and stays pending
 *   until the gateway acknowledges it; whatever is unacknowledged is sent again after a
 *   reconnect (the gateway deduplicates by clientEventId). join/leave/publish go one at a
 *   time, so a room sees one client's messages in the order publish() was called: the
 *   gateway serves concurrent requests concurrently (python-socketio runs each event in its
 *   own task; POSTs travel on parallel connections) and would not keep that order.
 * - Reconnection with exponential backoff and full jitter, resuming the session: SSE sends
 *   the last `id:` it read as Last-Event-ID (it starts with "<sid>:<key>"), Socket.IO sends
 *   {sid, key, offsets} in its auth. `sid` is the session's public id; `key`, from the open
 *   frame, is its private proof of ownership (SSE requests carry it as X-Session-Key) and
 *   is never shown to anyone else.
 * - Rate limits: a connect or a request refused with `rate_limited` is tried again, not before
 *   the refusal's retryAfter (seconds; HTTP's Retry-After), with jitter.
 * - The gateway's close frames: {reason, reconnect: true} (shutdown, token_expired) are
 *   reconnected and resumed, with a fresh token when `token` is a function; {reconnect:
 *   false} (replaced: another connection resumed this session with its key) ends the client
 *   with that reason as the error code, without reconnecting (it would fight the new owner).
 * - Each room event reaches the application once, in order: an event at or before the last
 *   offset delivered for its room is dropped (offsets compare as the pair of integers ms-seq).
 * - Losses are explicit: a recovery that could not replay everything, or a session that
 *   expired while away (a new one is opened and its rooms joined again), emits `gap` events.
 * - A frame it cannot use is skipped and counted (stats.malformed, and an `error` event with
 *   code malformed_frame), never a reconnect: a bad event in a room's log comes back with every
 *   replay. A room event under a name the gateway reserves (close, open, newListener...) is
 *   skipped but its offset taken, so a resume does not ask for it again; a packet
 *   socket.io-client would not decode no longer closes the connection ("parse error"); an id:
 *   line that is not a cursor is not kept. A resume answered again and again with no usable
 *   open frame (or refused for its positions) starts a new session, with gaps, instead.
 *
 * - Every promise settles in bounded time, whatever the network does. join / leave / publish /
 *   emit resolve or reject within callTimeout (retries and reconnects included; per call:
 *   {timeout}), and reject at once with `aborted` when their {signal} (an AbortSignal) fires;
 *   a call given up that way leaves the outbox, so it is not sent again, but its outcome is
 *   unknown: an earlier attempt may have reached the gateway. `ready` settles within
 *   callTimeout too (rejected with `timeout` if no session opened by then; the client goes on
 *   trying and `state` tells when it opens). A token function and a connection attempt each
 *   get connectTimeout; close() returns within closeTimeout even if the gateway never answers.
 *
 * - Stalls are said, not hidden: a connection with no open frame, or a request with no answer,
 *   after stallAfter ms emits `stalled` {what: "connection" | "join" | "publish"..., waited,
 *   transport, protocol, cause}, and `unstalled` {what, waited} once it is answered. cause
 *   "connection_limit": the page is on HTTP/1.1 and the transport holds an HTTP connection per
 *   stream or long-poll; a browser opens six per host, shared by every tab of the profile, so
 *   the seventh request waits for one to end (docs: README, "Many tabs"); "no_answer" otherwise.
 * - One stream per browser: over SSE (transport "sse", and "auto" while on SSE) the tabs of one
 *   origin share one stream, held by a SharedWorker or else by a leader tab (Web Locks +
 *   BroadcastChannel), which sends their requests too (rtgateway-shared.js); each tab keeps its
 *   own session and everything above. `share: false` gives each tab its own stream (as does a
 *   browser without SharedWorker and Web Locks); `client.sharing` says "worker", "leader" or null.
 *   Over Socket.IO long-polling ("socketio-polling", and "auto"'s last resort) the tabs share
 *   one long-poll the same way: each tab's polls wait in it, its handshake and POSTs stay its own.
 *
 * Errors are GatewayError {code, message, status?, detail}: the server's codes
 * (docs/protocol.md#errors) from problem bodies, error acks and connect_error, plus the
 * client's own: network_error, timeout, aborted, malformed_frame, no_call_handler, client_closed,
 * socketio_unavailable, token_error (the token function threw), replaced / closed_by_server
 * (the gateway ended the session: see close frames above).
 *
 * - Volatile events (docs/protocol.md): publish(room, data, {volatile: true}) is sent once if
 *   the session is open, never queued nor retried, and resolves to {room, volatile: true}, or
 *   to null when there was no connection (stats.volatileDropped); a volatile room event
 *   arrives with offset null and volatile: true and moves no offset.
 * - Presence: presence(room, {cursor}) resolves to {room, members: [{sid, user, claims}], next};
 *   on namespaces that announce them, "presence.join" / "presence.leave" listeners get
 *   {room, members}.
 * - Binary payloads (docs/protocol.md): an ArrayBuffer, typed array (Uint8Array, Node's
 *   Buffer), DataView or Blob anywhere in publish/emit data or a call's answer reaches the
 *   others as bytes, whatever the transport; binaries received arrive as ArrayBuffers on SSE,
 *   as socket.io-client gives them on Socket.IO (ArrayBuffer in a page, Buffer in Node).
 *
 * Events for on(): room events by name (and "*" for all of them) get the envelope;
 * lifecycle: state (connecting | open | reconnecting | closed), transport (name in use),
 * recovery {recovered, complete, replayed, gaps}, gap {room, after}, pending / acked / failed
 * (outbox entries), stalled / unstalled (see above), reconnect {attempt, delay, reason} (after a close frame, reason.code is
 * the frame's reason: shutdown, token_expired), error (GatewayError). Room event
 * names are the application's: one named like a lifecycle event reaches the same listeners,
 * so prefer "*" if you use such names.
 */

import {
  GatewayError, compareOffsets, cursorOf, deliveryProblem, envelopeProblem, isEnvelope, isName, isObject, isOffset,
  openProblem, randomId, recoveryProblem, retryAfterMs,
} from "./rtgateway-protocol.js";
import { SocketIOLink, SseLink, WebSocketProbe, httpVersion, loadSocketIO, networkMemory } from "./rtgateway-links.js";

export { GatewayError, SseParser, compareOffsets, parseOffset } from "./rtgateway-protocol.js";
export { loadSocketIO, networkMemory, socketIOAvailable } from "./rtgateway-links.js";

export const TRANSPORTS = ["auto", "sse", "socketio", "socketio-polling"];

// A resume refused for one of these means the old session is gone: open a new one.
const SESSION_LOST = new Set(["unknown_sid", "session_expired", "bad_last_event_id", "offset_from_future"]);
// A connect refused for one of these will be refused again: stop instead of retrying.
const FATAL = new Set([
  "unauthorized", "invalid_token", "malformed_token", "forbidden", "forbidden_origin", "unknown_namespace",
  "validation_error", "socketio_unavailable",
]);
const CONTROL = new Set(["open", "joined", "left", "recovery", "close", "call"]);
// The gateway's presence announcements (volatile room events with no sender): their own events for on().
const PRESENCE = new Set(["presence.join", "presence.leave"]);
// Resumes in a row that the gateway answered but that gave no usable open frame (the stream
// ended, or its first frame was malformed) before the client stops resuming and starts a new
// session: resuming again would replay the same.
const UNUSABLE_RESUMES = 3;
// auto: SSE attempts in a row that failed for the network's sake (no answer from the gateway)
// before Socket.IO polling is tried instead.
const SSE_FAILURES = 2;
// auto: ms after an SSE attempt began by which WebSocket is tried beside it, answered or not.
const PROBE_LATEST = 500;
/** The network's trouble, not the gateway's answer: the kind of failure a transport switch may cure. */
const networkTrouble = (err) => !err.fromServer || /^http_/.test(err.code);
const show = (v) => String(typeof v === "string" ? v : JSON.stringify(v)).slice(0, 80);

const DEFAULTS = {
  url: undefined, // the gateway's origin; default: the page's
  namespace: "/",
  transport: "auto", // or "sse", "socketio", "socketio-polling"
  token: undefined, // a string, or a (possibly async) function returning one, called before every connection attempt
  name: undefined,
  minDelay: 250, // ms: the first reconnect waits 0..minDelay, then doubling, up to maxDelay
  maxDelay: 10000,
  connectTimeout: 10000, // ms for a connection to answer
  requestTimeout: 10000, // ms for one request's ack before it is retried
  callTimeout: 30000, // ms for join / leave / publish / emit in all (and for `ready`), then `timeout`
  closeTimeout: 3000, // ms close() waits for the gateway to hear the goodbye
  socketioUrl: undefined, // where socket.io-client's ESM build is; default: beside this module
  bufferTimeout: 3000, // ms: SSE response headers came but no byte of the stream: a buffering proxy, poll instead
  remember: 10 * 60 * 1000, // ms: auto remembers this long what failed on this network
  upgradeDelay: 0, // ms: auto waits this long before trying WebSocket beside the first connection
  stallAfter: 3000, // ms without an answer to a connection or a request before a `stalled` event
  share: true, // SSE and Socket.IO polling: the tabs of this origin share one stream / long-poll (rtgateway-shared.js); false: one per tab; "leader": no SharedWorker
};

/** The error of a call whose AbortSignal fired: its reason stays in `detail.reason`. */
function aborted(kind, signal) {
  return new GatewayError("aborted", `${kind} aborted by the caller; it may or may not have been done`, { reason: signal.reason });
}

/** Worth sending again: not answered, or the gateway's trouble rather than a refusal (session_closed:
 * sent on a connection the session had just left, so not done). */
function retryable(error) {
  return !error.fromServer || error.status >= 500 || SESSION_LOST.has(error.code) || ["rate_limited", "session_closed"].includes(error.code);
}

/** `promise`, or a `timeout` GatewayError if it has not settled within `ms`. */
function within(promise, ms, what) {
  let timer;
  const expiry = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new GatewayError("timeout", `${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

/** Connect to a gateway; returns the client at once (listeners added now see every event). */
export function connect(options = {}) {
  return new Client(options);
}

export class Client {
  constructor(options) {
    this.options = { ...DEFAULTS, ...options };
    if (!TRANSPORTS.includes(this.options.transport)) {
      throw new TypeError(`transport must be one of ${TRANSPORTS.join(", ")}, not ${this.options.transport}`);
    }
    this.options.url = (this.options.url ?? globalThis.location.origin).replace(/\/+$/, "");
    this.sid = null; // the session's public id
    this.key = null; // its private key: proves ownership when resuming; never shared
    this.state = "idle";
    this.transport = null; // what is actually carrying the session: "sse", "polling", "websocket"
    this.reconnects = 0; // reconnect attempts so far
    this.info = null; // the last open frame
    this.stats = { delivered: 0, duplicates: 0, malformed: 0, replayed: 0, gaps: 0, retransmits: 0, volatileDropped: 0 };
    this._listeners = new Map();
    this._callHandlers = new Map();
    this._offsets = new Map(); // room -> last offset delivered to the app
    this._rooms = new Set(); // rooms the app asked for: joined again if the session is lost
    this._ordered = []; // join / leave / publish, one at a time
    this._free = new Set(); // emits, concurrently
    this._link = null;
    this._seq = 0;
    this._events = {
      frame: (link, event, data) => this._frame(link, event, data),
      lost: (link, reason) => this._linkLost(link, reason),
      malformed: (what) => this._malformed(what),
      // A frame that could not be read at all: if it came first, there is no open frame to wait for.
      unusable: (link) => {
        if (link === this._link && !link.gotOpen) link.drop();
      },
      call: (event, data, reply) => this._call(event, data, reply),
      transport: (link, name) => this._transportChanged(link, name),
      cursor: (link, id) => {
        if (link === this._link) this._cursor = id; // "<sid>:<key>;<room>=<offset>,…"
      },
      buffered: (link) => {
        if (this.options.transport !== "auto") return;
        this._learn("sse", "poll");
        this._note("sse", "buffered");
      },
    };
    this._attempt = 0;
    this._unusable = 0; // resumes in a row that gave no usable open frame
    this._timer = null;
    this._wake = null; // the outbox's timer for requests held back by a rate_limited refusal
    this._cursor = null; // SSE: the last id: read
    this._lost = null; // gaps to report once a replacement session is open
    this._offlineUntil = 0; // drop({offlineFor}): no connection attempt before this (Date.now())
    this._replaying = false; // between a resume's open frame and its recovery frame
    // auto (see _nextLink):
    this.history = []; // [{at, transport, outcome}]: what was tried and how it went, oldest first
    this._network = this.options.url;
    this._probe = null; // a WebSocket engine opening beside the session's connection
    this._moving = null; // a link resuming the session on WebSocket, not yet its carrier
    this._wsWorks = false; // WebSocket carried this session: reconnect on it directly
    this._wsRefused = false; // WebSocket failed here (remembered once HTTP gets through)
    this._sseFailures = 0;
    // auto on a page served over HTTP/1.1: socket.io-client is fetched before the first SSE
    // stream opens. Fetched after, it could wait behind this origin's streams (a browser opens
    // six connections per host, for all its tabs), and the move to WebSocket that would give
    // one of them back would never come.
    this._socketIO = this.options.transport === "auto" && httpVersion(this.options.url) === "http/1.1"
      ? loadSocketIO(this.options.socketioUrl).catch(() => {}) // missing: the probe reports it
      : null;
    // The stream shared with the other tabs (rtgateway-shared.js, which decides whether this page
    // can): imported only in a page, for SSE and Socket.IO long-polling, before the first connection (see _dial).
    this._shared = this.options.share !== false && globalThis.document !== undefined && ["sse", "auto", "socketio-polling"].includes(this.options.transport)
      ? import("./rtgateway-shared.js").catch(() => null) // missing: each tab its own stream
      : null;
    this.ready = new Promise((resolve, reject) => {
      this._ready = { resolve, reject };
    });
    this.ready.catch(() => {});
    this._readyTimer = setTimeout(
      () => this._ready.reject(new GatewayError("timeout", `no session opened in ${this.options.callTimeout} ms; still trying`)),
      this.options.callTimeout,
    );
    // Back online: try now rather than wait out the backoff.
    this._online = () => {
      if (this.state === "reconnecting" && !this._link) {
        clearTimeout(this._timer);
        this._dial();
      }
    };
    globalThis.addEventListener?.("online", this._online);
    queueMicrotask(() => this._dial());
  }

  // -- the API -------------------------------------------------------------------

  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this._listeners.get(event)?.delete(fn);
  }

  /** Answer the server's calls of `event`: fn(data) returns (or resolves to) the ack. */
  onCall(event, fn) {
    this._callHandlers.set(event, fn);
  }

  /** Join a room; resolves to {room, offset}. `options`: {signal, timeout} as for publish(). */
  join(room, options = {}) {
    this._rooms.add(room);
    return this._enqueue("join", { room }, true, true, options).then(
      (result) => {
        this._advance(result.room, result.offset);
        return result;
      },
      (err) => {
        this._rooms.delete(room);
        throw err;
      },
    );
  }

  leave(room, options = {}) {
    this._rooms.delete(room);
    return this._enqueue("leave", { room }, true, true, options);
  }

  /**
   * Publish a room event; resolves to the gateway's ack {room, offset}. `signal` (an
   * AbortSignal) gives up at once with `aborted`; `timeout` (ms, default callTimeout) bounds
   * the whole call, retries and reconnects included, then `timeout`.
   */
  publish(room, data, { event = "message", includeSelf = false, volatile = false, signal, timeout } = {}) {
    const body = { room, event, data };
    if (includeSelf) body.includeSelf = true;
    if (volatile) return this._volatile("publish", body, timeout);
    body.clientEventId = randomId();
    return this._enqueue("publish", body, true, false, { signal, timeout });
  }

  /**
   * Send an application event; resolves to its handler's return value. `options`: {signal,
   * timeout}, and {volatile: true} as for publish().
   */
  emit(event, data, { volatile = false, ...options } = {}) {
    if (volatile) return this._volatile("emit", { event, data }, options.timeout);
    return this._enqueue("emit", { event, data, clientEventId: randomId() }, false, false, options);
  }

  /**
   * Who is in `room`, on every node: resolves to {room, members: [{sid, user, claims}], next};
   * `next` (null on the last page) is the `cursor` of the next page. `options`: {cursor, signal, timeout}.
   */
  presence(room, { cursor, ...options } = {}) {
    return this._enqueue("presence", cursor ? { room, cursor } : { room }, false, true, options);
  }

  /** How many publish / emit / join / leave requests await their ack. */
  get pending() {
    return this._ordered.length + this._free.size;
  }

  /**
   * Cut the connection as a network failure would; the session survives and is resumed.
   * `offlineFor` (ms): stay offline that long first, as a train through a tunnel would, so the
   * room moves on and the resume replays what was missed.
   */
  drop({ offlineFor = 0 } = {}) {
    this._offlineUntil = Math.max(this._offlineUntil, Date.now() + offlineFor);
    if (offlineFor > 0) this._stopMoving();
    this._link?.drop();
  }

  /** End the session for good; returns within closeTimeout even if the gateway does not answer. */
  async close() {
    if (this.state === "closed") return;
    clearTimeout(this._timer);
    globalThis.removeEventListener?.("online", this._online);
    // The goodbye (SSE: a DELETE) gets closeTimeout, not requestTimeout: a gateway that stopped
    // answering must not hold the caller, nor keep a Node process alive, for longer.
    const options = { ...this.options, requestTimeout: Math.min(this.options.requestTimeout, this.options.closeTimeout) };
    // Between connections there is no link to close: SSE + POST can still end the session
    // (a Socket.IO session without a connection expires after the recovery window).
    this._stopMoving();
    // Any transport's session can be ended by the DELETE; Socket.IO alone needs a connection.
    const http = this.options.transport === "sse" || this.options.transport === "auto";
    const link = this._link ?? (http && this.sid ? Object.assign(new SseLink(options, this._events, 0), { sid: this.sid, key: this.key }) : null);
    if (link) link.options = options; // the link is being discarded: nothing else reads its options
    this._link = null;
    this._shutdown(new GatewayError("client_closed", "the client was closed"));
    await within(link?.close(), options.closeTimeout, "close").catch(() => {}); // best effort: the session expires anyway
  }

  // -- connections -----------------------------------------------------------------

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }

  _dial() {
    if (this.state === "closed") return;
    if (this.state === "idle") this._setState("connecting");
    const offline = this._offlineUntil - Date.now();
    if (offline > 0) {
      clearTimeout(this._timer);
      this._timer = setTimeout(() => this._dial(), offline);
      return;
    }
    if (this._shared instanceof Promise) {
      this._shared.then((module) => {
        if (!(this._shared instanceof Promise)) return; // a dial asked for meanwhile made it
        this._shared = module;
        this._dial();
      });
      return;
    }
    this._connect(this._nextLink());
  }

  /** The link for the next attempt: the transport asked for, or auto's choice (see _probed). */
  _nextLink() {
    const { transport } = this.options;
    const seq = ++this._seq;
    if (transport === "sse") return this._sseLink(seq);
    if (transport === "socketio") return new SocketIOLink(this.options, this._events, seq);
    if (transport === "socketio-polling") return this._pollingLink(seq);
    const known = networkMemory.recall(this._network);
    const websocket = known.websocket !== "failed" && !this._noSocketIO;
    if (this._wsWorks && websocket) return new SocketIOLink(this.options, this._events, seq, { transports: ["websocket"] });
    // The last resort: Socket.IO's long-polling (had WebSocket passed, the probe beside SSE
    // would have taken the session there).
    if (known.sse === "failed" || this._sseFailures >= SSE_FAILURES) {
      return this._pollingLink(seq);
    }
    // Behind a proxy that buffers streams SSE can only long-poll, a connection per tab: from the
    // sixth tab on HTTP/1.1 nothing is left. Socket.IO's long-poll survives buffering (each answer
    // ends) and the tabs share one: take it where they can.
    if (known.sse === "poll" && this._shared && !this._noShare && !this._noSocketIO) return this._pollingLink(seq);
    // SSE answers with the session in one round trip; WebSocket, if it passes, takes the
    // session over as soon as its engine is open.
    if (websocket) this._planProbe();
    return this._sseLink(seq, known.sse === "poll" ? "poll" : "auto");
  }

  /** An SSE link: on the stream this browser's tabs share where it can (rtgateway-shared.js), else its own. */
  _sseLink(seq, mode = "auto") {
    const share = mode !== "poll" && !this._noShare && this._shared ? this._shared.Share.for(this.options) : null;
    return share ? new this._shared.SharedLink(this.options, this._events, seq, share) : new SseLink(this.options, this._events, seq, { mode });
  }

  /** A Socket.IO long-polling link: its polls wait in the one the tabs share where they can, else its own. */
  _pollingLink(seq) {
    const share = !this._noShare && this._shared ? this._shared.Share.for(this.options) : null;
    return new SocketIOLink(this.options, this._events, seq, { transports: ["polling"], share });
  }

  /** How this client's connection is shared with the other tabs: "worker", "leader", or null (its own). */
  get sharing() {
    return this._link?.sharing ?? null;
  }

  async _connect(link) {
    this._link = link;
    link.resuming = Boolean(this.sid);
    this._note(link.kind, "trying");
    const { connectTimeout } = this.options;
    const started = Date.now();
    try {
      // A function token: a fresh one for every attempt. Neither it nor the connection may
      // stall the client: a token service or a gateway that never answers is a failed attempt.
      const token = await within(this._token(), connectTimeout, "the token function");
      if (link.kind === "sse" && this._socketIO) await within(this._socketIO, connectTimeout, "loading socket.io-client");
      if (this._link !== link) return; // closed meanwhile
      // An SSE resume after the session was on another transport: the cursor of the positions held.
      const cursor = this._cursor ?? (this.sid ? cursorOf(this.sid, this.key, this._offsets) : null);
      const resume = { sid: this.sid, key: this.key, cursor, offsets: Object.fromEntries(this._offsets), token };
      link.stall = this._watchStall(link, "connection", () => link.gotOpen || this._link !== link);
      await within(link.open(resume), connectTimeout, "connecting");
    } catch (err) {
      link.stall?.();
      if (this._upgradeTimer) this._scheduleProbe(0); // SSE failed: WebSocket may not
      if (this._link !== link) return;
      this._link = null;
      // Still connecting when the time ran out: cut it (unlinked first, so its loss is ignored).
      if (err.code === "timeout") link.drop();
      if (err.code === "share_unavailable") {
        // The tabs cannot share a stream here (a buffering proxy, a full carrier): its own. auto
        // behind a buffering proxy learns it and takes the shared Socket.IO long-poll instead.
        const shareAnother = err.detail?.buffered && this.options.transport === "auto";
        if (!shareAnother) this._noShare = true;
        if (err.detail?.buffered) this._events.buffered(link);
        this._dial();
        return;
      }
      this._failed(link, err);
      if (this.sid && SESSION_LOST.has(err.code)) {
        this._sessionLost(err);
        this._dial();
      } else if (FATAL.has(err.code) || (err.code === "token_expired" && typeof this.options.token !== "function")) {
        this._emit("error", err);
        this._shutdown(err);
      } else {
        this._retry(err);
      }
      return;
    }
    // SSE answered: its open frame should follow at once (then WebSocket's turn comes, see
    // _opened); if it has not come in as long again as the answer took, a proxy may be holding
    // it back, and WebSocket is tried anyway.
    if (this._upgradeTimer) this._scheduleProbe(Date.now() - started);
    this._transportChanged(link, link.name);
  }

  /** The credential for the next connection attempt. */
  async _token() {
    const { token } = this.options;
    if (typeof token !== "function") return token;
    try {
      return await token();
    } catch (err) {
      throw err instanceof GatewayError ? err : new GatewayError("token_error", `the token function failed: ${err?.message ?? err}`);
    }
  }

  _retry(reason) {
    if (this.state === "closed") return;
    this._setState("reconnecting");
    const ceiling = Math.min(this.options.maxDelay, this.options.minDelay * 2 ** this._attempt++);
    // Full jitter, so a crowd of clients does not come back in step; never before a
    // rate_limited refusal's retryAfter, nor while held offline.
    const delay = Math.max(Math.random() * ceiling, retryAfterMs(reason), this._offlineUntil - Date.now());
    this.reconnects += 1;
    this._emit("reconnect", { attempt: this.reconnects, delay, reason });
    this._timer = setTimeout(() => this._dial(), delay);
  }

  _linkLost(link, reason) {
    link.stall?.();
    if (link !== this._link) return; // an older connection, already replaced
    this._link = null;
    if (this.state === "closed") return;
    // The session is already being resumed on WebSocket: that is the reconnect (or, if it
    // fails, _migrate retries).
    if (this._moving) return;
    if (link.kind === "websocket" && !link.gotOpen) this._failed(link, reason);
    if (reason?.code === "share_unavailable") this._noShare = true;
    if (!link.gotOpen && this.sid && ++this._unusable >= UNUSABLE_RESUMES) {
      // The gateway keeps answering our resume with nothing usable: a new session, with gaps.
      this._unusable = 0;
      this._sessionLost(new GatewayError("unusable_stream", "resuming the session gave no usable open frame, again and again"));
    }
    // After a close frame, that is the reason (shutdown, token_expired), not "the stream ended".
    const frame = link.closeFrame;
    this._retry(frame ? new GatewayError(frame.reason, `the gateway closed the connection: ${frame.reason}`, frame, true) : reason);
  }

  /** A close frame: remembered for the loss that follows, or the end if it says not to come back. */
  _closing(link, frame) {
    const reason = typeof frame.reason === "string" && frame.reason ? frame.reason : "closed_by_server";
    link.closeFrame = { ...frame, reason };
    if (frame.reconnect !== false) return;
    // Another connection owns the session now (replaced), or the gateway says it is over.
    // Nothing is sent back: a DELETE or Socket.IO DISCONNECT would end the new owner's session.
    if (reason === "replaced" && this._moving) {
      // Our own move: the session went to the link being opened. This one is simply done.
      link.ended = true;
      link.drop();
      if (this._link === link) this._link = null;
      return;
    }
    const code = reason === "replaced" ? "replaced" : "closed_by_server";
    const why = reason === "replaced"
      ? "another connection resumed this session with its key; this client stops instead of taking it back"
      : `the gateway closed the session: ${reason}`;
    const error = new GatewayError(code, why, { ...frame, reason }, true);
    this._link = null;
    link.ended = true;
    link.drop();
    this._emit("error", error);
    this._shutdown(error);
  }

  /** The resume was refused: the session is gone. Start another; what it missed is a gap. */
  _sessionLost(reason) {
    const gaps = [...this._rooms].map((room) => ({ room, after: this._offsets.get(room) ?? null }));
    this._lost = { reason, gaps };
    this.sid = null;
    this.key = null;
    this._cursor = null;
    // The new session must be in the rooms before anything queued is published to them.
    const rejoin = [...this._rooms].filter((room) => !this._ordered.some((e) => e.kind === "join" && e.body.room === room));
    this._ordered.unshift(...rejoin.map((room) => this._entry("join", { room }, true, () => {}, () => {})));
  }

  _shutdown(error) {
    this._stopMoving();
    clearTimeout(this._timer);
    clearTimeout(this._wake);
    clearTimeout(this._readyTimer);
    globalThis.removeEventListener?.("online", this._online);
    this._setState("closed");
    for (const entry of [...this._ordered, ...this._free]) this._settle(entry, undefined, error);
    this._ready.reject(error);
  }

  _transportChanged(link, name) {
    if (link !== this._link || !name || name === this.transport) return;
    this.transport = name;
    this._emit("transport", name);
  }

  // -- auto: the transport that works, and moving the session to a better one --------

  /** A line of `history` (the demo shows them; tests read them). */
  _note(transport, outcome, detail) {
    if (this.options.transport !== "auto") return;
    const entry = { at: Date.now(), transport, outcome };
    if (detail) entry.detail = detail;
    this.history.push(entry);
    if (this.history.length > 100) this.history.shift();
    this._emit("attempt", entry);
  }

  _learn(what, value) {
    networkMemory.note(this._network, what, value, this.options.remember);
  }

  /**
   * A link that could not connect: what auto learns from it about this network. A failure is
   * remembered only once another transport reached the same gateway (see _opened): a gateway
   * that is down fails every transport, and must not leave its clients on the worst one.
   */
  _failed(link, err) {
    if (this.options.transport !== "auto" || this.state === "closed") return;
    this._note(link.kind, "failed", err?.code);
    if (err?.code === "socketio_unavailable") {
      this._noSocketIO = true; // this page has no socket.io-client: SSE only, and no memory of it
      return;
    }
    if (!err || !networkTrouble(err)) return;
    if (link.kind === "websocket") {
      this._wsWorks = false;
      this._wsRefused = true;
      if (this._link?.answered || this._link?.gotOpen) this._learn("websocket", "failed"); // SSE got through
    } else if (link.kind === "sse") {
      this._sseFailures += 1;
    } else if (link.kind === "polling") {
      this._sseFailures = 0; // polling fails too: the gateway is away, not SSE blocked; SSE again
    }
  }

  /**
   * Try WebSocket beside an SSE attempt: once that attempt has given a session (or failed, or
   * looks held back), so the two do not compete for the first round trips, but at the latest
   * PROBE_LATEST ms after it began,
   * so a stalled SSE does not hold WebSocket back; never before options.upgradeDelay.
   */
  _planProbe() {
    if (this._probe || this._moving || this._upgradeTimer) return;
    this._probeNotBefore = Date.now() + this.options.upgradeDelay;
    this._scheduleProbe(PROBE_LATEST);
  }

  /** Start the planned probe in `ms` (or at its earliest allowed time), if that is sooner than planned. */
  _scheduleProbe(ms) {
    const at = Math.max(Date.now() + ms, this._probeNotBefore);
    if (this._upgradeTimer && this._upgradeAt <= at) return;
    clearTimeout(this._upgradeTimer);
    this._upgradeAt = at;
    const start = () => {
      this._upgradeTimer = null;
      if (this.state === "closed" || this._probe || this._moving) return;
      const probe = new WebSocketProbe(this.options);
      this._probe = probe;
      this._note("websocket", "probing");
      probe.opened.then(() => this._probed(probe), (err) => {
        if (probe !== this._probe) return;
        this._probe = null;
        this._failed({ kind: "websocket" }, err);
      });
    };
    this._upgradeTimer = setTimeout(start, at - Date.now());
  }

  /**
   * The probe's WebSocket engine is open. A session open on SSE moves to it; with no session yet,
   * the SSE attempt is given up and the session starts on WebSocket if SSE is held back (headers
   * came, no open frame: a buffering proxy), failed, or has not answered within as long again as
   * the engine took to open. So the first usable session comes from whichever answers first.
   */
  _probed(probe, waited = false) {
    if (probe !== this._probe || this.state === "closed") return;
    const link = this._link;
    clearTimeout(probe.grace);
    if (link?.gotOpen) {
      this._probe = null;
      this._migrate(probe.manager);
      return;
    }
    if (link && !link.answered && !waited) {
      probe.grace = setTimeout(() => this._probed(probe, true), Math.max(5, probe.elapsed));
      return;
    }
    this._probe = null;
    if (link) {
      this._link = null;
      link.ended = true;
      link.drop();
      this._note(link.kind, "abandoned", link.answered ? "held back" : "slower");
    }
    clearTimeout(this._timer);
    this._connect(new SocketIOLink(this.options, this._events, ++this._seq, { transports: ["websocket"], manager: probe.manager }));
  }

  /** Resume the session over the probe's open engine; the current link carries it until the open frame. */
  async _migrate(manager) {
    const link = new SocketIOLink(this.options, this._events, ++this._seq, { transports: ["websocket"], manager });
    link.migration = true;
    link.resuming = true;
    this._moving = link;
    const { connectTimeout } = this.options;
    try {
      const token = await within(this._token(), connectTimeout, "the token function");
      if (this._moving !== link) return;
      await within(link.open({ sid: this.sid, key: this.key, offsets: Object.fromEntries(this._offsets), token }), connectTimeout, "moving");
    } catch (err) {
      if (this._moving !== link) return;
      this._moving = null;
      link.ended = true;
      link.drop();
      // The probe's engine had opened: a move cut by the network is not WebSocket refused here.
      this._note(link.kind, "failed", err?.code);
      if (!this._link) this._retry(err); // the old connection was lost meanwhile
    }
  }

  /** The session's open frame came on the link it is moving to: that link carries it from now on. */
  _moved(link) {
    const old = this._link;
    this._moving = null;
    this._link = link;
    clearTimeout(this._timer); // a reconnect planned after losing the old connection: not needed
    this._note(link.kind, "moved", old?.name ?? this.transport);
    if (old) {
      // Its stream gets close {replaced}: expected, and ignored as it is no longer the link.
      old.ended = true;
      old.drop();
    }
  }

  /** Give up a probe or a move under way (offline, closing). */
  _stopMoving() {
    clearTimeout(this._upgradeTimer);
    this._upgradeTimer = null;
    if (this._probe) clearTimeout(this._probe.grace);
    this._probe?.cancel();
    this._probe = null;
    const moving = this._moving;
    this._moving = null;
    if (moving) {
      moving.ended = true;
      moving.drop();
    }
  }

  // -- frames from the server ------------------------------------------------------

  _malformed(what) {
    this.stats.malformed += 1;
    this._emit("error", new GatewayError("malformed_frame", `ignored a malformed frame from the gateway: ${what}`));
  }

  _frame(link, event, data) {
    if (link === this._moving && event === "open" && !isEnvelope(data)) this._moved(link);
    if (link !== this._link) return;
    if (!link.gotOpen && (event !== "open" || isEnvelope(data))) {
      // The gateway's first frame is always the open: without it there is no session here.
      this._malformed(`the first frame is not an open frame but "${show(event)}"`);
      link.drop();
      return;
    }
    // An envelope is a room event whatever the frame's name: a frame named like one of the
    // gateway's own but carrying an envelope (an event named "close" or "open" that got into a
    // log) must not close the connection or reset the session, or its replay would do it again.
    if (isEnvelope(data)) return this._deliver(event, data);
    if (CONTROL.has(event) && !isObject(data)) {
      this._malformed(`"${show(event)}" must carry a JSON object, got ${show(data)}`);
      return;
    }
    switch (event) {
      case "open":
        return this._opened(link, data);
      case "joined":
        if (!isName(data.room) || !isOffset(data.offset)) return this._malformed(`joined ${show(data)}`);
        return this._advance(data.room, data.offset);
      case "left":
        if (!isName(data.room)) return this._malformed(`left ${show(data)}`);
        // Forgotten, so the offsets a resume sends (Socket.IO) list only the session's rooms.
        this._offsets.delete(data.room);
        return;
      case "recovery": {
        const problem = recoveryProblem(data);
        if (problem) return this._malformed(problem);
        return this._recovered(data);
      }
      case "close":
        if (typeof (data.reason ?? "") !== "string" || typeof (data.reconnect ?? true) !== "boolean") {
          return this._malformed(`close ${show(data)}`);
        }
        return this._closing(link, data);
      case "call":
        if (!isObject(data) || typeof data.ackId !== "string" || typeof data.event !== "string") {
          return this._malformed(`call ${JSON.stringify(data)}`);
        }
        return this._call(data.event, data.data, (result) => link.answer(data.ackId, result));
      default:
        return this._deliver(event, data);
    }
  }

  _opened(link, info) {
    if (link.gotOpen) return this._malformed("a second open frame on one connection"); // not the gateway's way
    const problem = openProblem(info);
    if (problem) {
      this._malformed(problem);
      link.drop(); // nothing works without a session: try again
      return;
    }
    link.gotOpen = true;
    link.stall?.();
    clearTimeout(this._readyTimer);
    // A resume's replay comes next, up to its recovery frame; a move's overlap is not news.
    this._replaying = link.resuming && !link.migration;
    if (link.kind !== "sse") this._cursor = null; // an SSE resume later starts from the offsets
    if (link.kind === "sse") {
      if (this._wsRefused) this._learn("websocket", "failed");
      this._sseFailures = 0;
    }
    if (link.kind === "polling" && this._sseFailures >= SSE_FAILURES) this._learn("sse", "failed");
    if (link.kind === "websocket") this._wsWorks = true;
    this._note(link.kind, "open", link.name);
    this.sid = info.sid;
    this.key = info.key;
    this.info = info;
    this._attempt = 0;
    this._unusable = 0;
    link.opened(info);
    this._transportChanged(link, link.name);
    this._setState("open");
    this._ready.resolve(this);
    if (this._upgradeTimer) this._scheduleProbe(0); // the session is usable: WebSocket's turn
    if (this._probe?.elapsed !== null && this._probe?.elapsed !== undefined) this._probed(this._probe);
    if (this._lost) {
      const { reason, gaps } = this._lost;
      this._lost = null;
      this._recovered({ recovered: false, complete: gaps.length === 0, replayed: 0, gaps, reason: reason.code });
    }
    this._pump();
  }

  _recovered(data) {
    const gaps = Array.isArray(data.gaps) ? data.gaps : [];
    const report = { recovered: data.recovered !== false, complete: data.complete === true, replayed: data.replayed ?? 0, gaps };
    if (data.reason) report.reason = data.reason;
    this._replaying = false;
    this.stats.gaps += gaps.length;
    // A move to another transport that lost nothing is only a `transport` event to the application.
    if (this._link?.migration && report.complete && !gaps.length) return;
    this.stats.replayed += report.replayed;
    this._emit("recovery", report);
    for (const gap of gaps) this._emit("gap", gap);
  }

  _advance(room, offset) {
    if (!isOffset(offset)) return;
    const last = this._offsets.get(room);
    if (last === undefined || compareOffsets(offset, last) > 0) this._offsets.set(room, offset);
  }

  _deliver(event, envelope) {
    if (envelope.volatile === true && envelope.offset === null) return this._deliverVolatile(event, envelope);
    const problem = envelopeProblem(envelope);
    if (problem) return this._malformed(`"${show(event)}": ${problem}`);
    const last = this._offsets.get(envelope.room);
    if (last !== undefined && compareOffsets(envelope.offset, last) <= 0) {
      this.stats.duplicates += 1; // at-least-once: a replay overlapping what we have
      return;
    }
    // Consumed, delivered or not: a resume starts after it rather than bringing it back. A room
    // with no joined frame yet is delivered too: the gateway sends a room's events only to its
    // members, and one may come just before the joined frame.
    this._offsets.set(envelope.room, envelope.offset);
    const unusable = deliveryProblem(event, envelope);
    if (unusable) return this._malformed(`room event in "${envelope.room}" at ${envelope.offset} skipped: ${unusable}`);
    this.stats.delivered += 1;
    const meta = { replayed: this._replaying };
    this._emit(envelope.event, envelope, meta);
    this._emit("*", envelope, meta);
  }

  /** A volatile room event: delivered as it comes, its room's offset untouched (it has none). */
  _deliverVolatile(event, envelope) {
    if (!isName(envelope.room) || event !== envelope.event) return this._malformed(`volatile "${show(event)}" in ${show(envelope.room)}`);
    if (PRESENCE.has(event) && envelope.sender === null) {
      const members = envelope.data?.members;
      if (!Array.isArray(members) || !members.every((m) => isObject(m) && isName(m.sid))) {
        return this._malformed(`${event} in "${envelope.room}" without a list of members`);
      }
      this.stats.delivered += 1;
      return this._emit(event, { room: envelope.room, members });
    }
    const unusable = deliveryProblem(event, envelope);
    if (unusable) return this._malformed(`volatile event in "${envelope.room}" skipped: ${unusable}`);
    this.stats.delivered += 1;
    const meta = { replayed: false, volatile: true };
    this._emit(envelope.event, envelope, meta);
    this._emit("*", envelope, meta);
  }

  _call(event, data, reply) {
    const handler = this._callHandlers.get(event);
    if (!handler) {
      this._emit("error", new GatewayError("no_call_handler", `the gateway called "${event}" and nothing answers it (onCall); it will time out`));
      return;
    }
    Promise.resolve()
      .then(() => handler(data))
      .then(reply)
      .catch((err) => this._emit("error", err instanceof GatewayError ? err : new GatewayError("call_failed", `answering "${event}" failed: ${err.message}`)));
  }

  // -- the outbox ------------------------------------------------------------------

  _entry(kind, body, silent, resolve, reject) {
    return { kind, body, silent, resolve, reject, sentOn: 0, attempts: 0, done: false, release: null };
  }

  _enqueue(kind, body, ordered, silent = false, { signal, timeout = this.options.callTimeout } = {}) {
    if (this.state === "closed") return Promise.reject(new GatewayError("client_closed", "the client is closed"));
    if (signal?.aborted) return Promise.reject(aborted(kind, signal));
    return new Promise((resolve, reject) => {
      const entry = this._entry(kind, body, silent, resolve, reject);
      // Given up: it leaves the outbox (a later _settle from a late ack is ignored).
      const expiry = setTimeout(
        () => this._settle(entry, undefined, new GatewayError("timeout", `${kind} not acknowledged in ${timeout} ms; it may or may not have been done`)),
        timeout,
      );
      const onAbort = () => this._settle(entry, undefined, aborted(kind, signal));
      signal?.addEventListener("abort", onAbort, { once: true });
      entry.release = () => {
        clearTimeout(expiry);
        signal?.removeEventListener("abort", onAbort);
      };
      if (ordered) this._ordered.push(entry);
      else this._free.add(entry);
      if (!silent) this._emit("pending", this._describe(entry));
      this._pump();
    });
  }

  _describe(entry) {
    const { kind, body } = entry;
    return { kind, clientEventId: body.clientEventId, room: body.room, event: body.event, data: body.data };
  }

  /** Send what has not been sent on the current connection: every emit, the head of the ordered lane. */
  /**
   * A volatile publish or emit: sent once on the connection there is, never queued nor sent
   * again. Resolves to the gateway's answer, or to null (counted in stats.volatileDropped)
   * without a connection or when the connection is lost under it; a refusal rejects as any.
   */
  _volatile(kind, body, timeout = this.options.callTimeout) {
    if (this.state === "closed") return Promise.reject(new GatewayError("client_closed", "the client is closed"));
    const link = this._link;
    const dropped = () => {
      this.stats.volatileDropped += 1;
      return null;
    };
    if (this.state !== "open" || !link) return Promise.resolve(dropped());
    return within(link.request(kind, { ...body, volatile: true }), timeout, kind).catch((error) => {
      if (error.fromServer && !networkTrouble(error)) throw error;
      return dropped();
    });
  }

  _pump() {
    const link = this._link;
    if (this.state !== "open" || !link) return;
    const now = Date.now();
    let wake = Infinity; // the earliest notBefore (a rate_limited refusal's wait) still ahead
    const due = (entry) => {
      if (entry.sentOn === link.seq) return false;
      if (entry.notBefore > now) {
        wake = Math.min(wake, entry.notBefore);
        return false;
      }
      return true;
    };
    for (const entry of this._free) if (due(entry)) this._send(link, entry);
    const head = this._ordered[0];
    if (head && due(head)) this._send(link, head);
    if (wake < Infinity) {
      // One timer, re-armed on every pump (a timer may fire a millisecond before Date.now() agrees).
      clearTimeout(this._wake);
      this._wake = setTimeout(() => this._pump(), wake - now + 1);
    }
  }

  _send(link, entry) {
    entry.sentOn = link.seq;
    if (entry.attempts++ > 0) this.stats.retransmits += 1;
    const stall = this._watchStall(link, entry.kind, () => entry.done);
    link.request(entry.kind, entry.body).finally(stall).then(
      (result) => this._settle(entry, result),
      (error) => {
        if (entry.kind === "leave" && error.code === "not_joined" && entry.attempts > 1) {
          return this._settle(entry, { room: entry.body.room }); // the first attempt did it
        }
        if (!retryable(error)) return this._settle(entry, undefined, error);
        // Unanswered: it stays pending and goes again on the next connection, or in a
        // moment on this one if it is still up (the gateway deduplicates either way).
        if (SESSION_LOST.has(error.code)) link.drop();
        if (entry.sentOn === link.seq) entry.sentOn = 0;
        const asked = retryAfterMs(error);
        if (asked) {
          // Refused by a rate limit, nothing done: not before retryAfter (whatever else pumps
          // meanwhile), plus jitter growing with each refusal, so a burst of refused requests
          // does not come back all at once.
          entry.refusals = (entry.refusals ?? 0) + 1;
          const spread = Math.min(this.options.maxDelay, Math.max(asked, this.options.minDelay / 4) * 2 ** Math.min(entry.refusals - 1, 10));
          entry.notBefore = Date.now() + asked + Math.random() * spread;
          this._pump(); // arms the timer for it
          return;
        }
        setTimeout(() => this._pump(), Math.min(this.options.maxDelay, this.options.minDelay * 4));
      },
    );
  }

  _settle(entry, result, error) {
    if (entry.done) return;
    entry.done = true;
    entry.release?.();
    const at = this._ordered.indexOf(entry);
    if (at >= 0) this._ordered.splice(at, 1);
    this._free.delete(entry);
    if (error) entry.reject(error);
    else entry.resolve(result);
    if (!entry.silent) this._emit(error ? "failed" : "acked", { ...this._describe(entry), result, error });
    this._pump();
  }

  /**
   * Emit `stalled` if `answered()` is still false after stallAfter ms, and `unstalled` when the
   * returned function is called after that; it also ends the watch. The browser's connection
   * pool gives no sign of a request queued behind others: time is the only tell.
   */
  _watchStall(link, what, answered) {
    const began = Date.now();
    let stalled = false;
    const timer = setTimeout(() => {
      if (answered() || this.state === "closed") return;
      stalled = true;
      const protocol = httpVersion(this.options.url);
      const pooled = link.kind !== "websocket" && (protocol === "http/1.1" || protocol === null);
      this._emit("stalled", { what, waited: Date.now() - began, transport: link.name ?? link.kind, protocol, cause: pooled ? "connection_limit" : "no_answer" });
    }, this.options.stallAfter);
    return () => {
      clearTimeout(timer);
      if (stalled) this._emit("unstalled", { what, waited: Date.now() - began });
      stalled = false;
    };
  }

  _emit(event, value, meta) {
    const listeners = this._listeners.get(event);
    if (!listeners?.size) {
      if (event === "error") console.warn("rtgateway:", value.message);
      return;
    }
    for (const fn of [...listeners]) {
      try {
        fn(value, meta);
      } catch (err) {
        console.error(`rtgateway: a "${event}" listener threw`, err);
      }
    }
  }
}

/**
 * rtgateway-shared.js: the tabs of one origin share one event stream (SSE + POST), and one
 * long-poll for their Socket.IO long-polling connections.
 *
 * Over HTTP/1.1 a browser opens six connections per host for all the tabs of a profile, and an
 * event stream holds one for as long as it lasts: with a stream per tab, the sixth tab leaves
 * nothing for anyone's requests. Here one *connection owner* holds one stream, a carrier
 * (`GET /sse/multiplex`, docs/protocol.md "One stream for many sessions"), attaches each tab's
 * session to it and hands each session's frames to its tab; the tabs' requests (their POSTs)
 * go out through the owner too. Each tab keeps its own session, rooms, acks, resume and
 * exactly-once-in-order delivery (rtgateway.js does all that as over its own stream): only
 * the connection is shared.
 *
 * Where the owner runs (`shareMode`):
 * - "worker": a SharedWorker running this very file, where the browser has SharedWorker;
 * - "leader": else, in one of the tabs, elected with Web Locks (`navigator.locks`) and reached
 *   over a BroadcastChannel. When the leader tab closes, the next tab waiting for the lock takes
 *   over: it opens a carrier, and every tab's link, told the old leader is gone, resumes its
 *   session there from its own cursor (the gateway replays what it missed).
 * - null: neither (or `share: false`): each tab opens its own stream, as before.
 *
 * The parts: `Share` (one per page and gateway: talks to the owner), `SharedLink` (the link
 * rtgateway.js uses in place of an SseLink: same interface, see rtgateway-links.js) and `Owner`
 * (holds the carrier). Messages between tab and owner are plain objects with an `op`:
 * tab -> owner: hello {lock}, attach {ref, link, namespace, name, token, cursor, sid, key,
 * timeout}, request {ref, sid, key, path, method, body, timeout}, detach {sid, link}, poll {ref,
 * sid, n} (a Socket.IO long-poll, see `Owner._poll`), bye;
 * owner -> tab: attached / answer / failed {ref, ...}, frame {link, raw}, lost {link, reason},
 * alive (the carrier is heard: feeds every link's dead-stream watchdog), and, in leader mode,
 * leader {leader}.
 */

import { GatewayError, SseParser, isCursor, isObject, parseWire, problemError, randomId, toWire } from "./rtgateway-protocol.js";
import { SseLink } from "./rtgateway-links.js";

// Frames kept for sessions whose attach has not been answered yet (their sid is not known).
const UNCLAIMED_MAX = 1000;
// ms the owner keeps a carrier that carries no session, for the next tab or reconnect.
const IDLE_CARRIER = 5000;
// ms the owner waits for a session's detached frame before it attaches it again anyway.
const DETACH_WAIT = 5000;
// ms between two `alive` messages to the tabs.
const ALIVE_EVERY = 1000;
// ms a shared Socket.IO long-poll may take: the gateway answers it within pingInterval (25 s by
// default) with what came, the ping at the latest.
const POLL_WAIT = 90000;
// ms the owner waits before asking, so that the tabs' polls that come together go in one request.
const POLL_GATHER = 2;
// A wake that came before its poll (404) is sent again this often (ms), this many times at most.
const WAKE_AGAIN = 50;
const WAKE_TRIES = 40;
// Connections one shared poll names at most: the gateway's GATEWAY_MULTIPLEX_MAX_SESSIONS by
// default; a gateway set lower refuses a larger poll (422 on `s`), and the owner asks for fewer.
const POLL_GROUP = 64;

const unavailable = (why, detail = {}) => new GatewayError("share_unavailable", `the tabs cannot share a stream here: ${why}`, detail);
const asError = (e) => (e instanceof GatewayError ? e : new GatewayError(e?.code ?? "network_error", e?.message ?? String(e), e?.detail ?? {}, Boolean(e?.fromServer)));
const plain = (e) => ({ code: e.code, message: e.message, detail: e.detail, fromServer: e.fromServer });

/**
 * How this page can share a stream: "worker", "leader" or null (each tab its own stream).
 * `option` is connect()'s `share`: true (the default: the best there is), false, or "leader"
 * (leader election even where SharedWorker exists: the fallback, for tests and old engines).
 */
export function shareMode(option) {
  if (option === false || globalThis.document === undefined) return null; // a page only (not Node, not a worker)
  const worker = typeof globalThis.SharedWorker === "function";
  const leader = typeof globalThis.BroadcastChannel === "function" && typeof globalThis.navigator?.locks?.request === "function";
  if (option === "leader") return leader ? "leader" : null;
  return worker ? "worker" : leader ? "leader" : null;
}

/** Hold the Web Lock `name` for as long as this page lives; resolves once it is held. */
function holdForLife(name) {
  return new Promise((held) => {
    globalThis.navigator.locks.request(name, () => {
      held();
      return new Promise(() => {});
    });
  });
}

// -- the tab's side ---------------------------------------------------------------

/** This page's way to the connection owner for one gateway URL (one per URL and mode). */
export class Share {
  static _pages = new Map();

  /** The page's Share for `options.url`, or null where this page cannot share (see shareMode). */
  static for(options) {
    const mode = shareMode(options.share);
    if (!mode) return null;
    const id = `${mode} ${options.url}`;
    let share = Share._pages.get(id);
    if (!share) Share._pages.set(id, (share = new Share(options.url, mode, options)));
    return share.broken ? null : share;
  }

  constructor(url, mode, options) {
    this.url = url;
    this.mode = mode;
    this.tab = randomId();
    this.broken = false;
    this.links = new Map(); // link ref -> SharedLink
    this.calls = new Map(); // ref -> {resolve, reject, timer, via}
    this.leader = null; // leader mode: the owner's id
    this._waiting = []; // leader mode: resolvers waiting for a leader to be known
    const locks = typeof globalThis.navigator?.locks?.request === "function";
    // The owner learns that this tab is gone when it can take this lock (a tab that is killed
    // says no goodbye); without Web Locks, the goodbye on pagehide is all there is.
    this.lock = locks ? `rtgateway tab ${this.tab}` : null;
    this._held = this.lock ? holdForLife(this.lock) : Promise.resolve();
    const name = `rtgateway ${url}`;
    if (mode === "worker") {
      const worker = new SharedWorker(new URL("rtgateway-shared.js", import.meta.url), { type: "module", name });
      worker.addEventListener("error", () => this._broke("its SharedWorker did not start"));
      this.port = worker.port;
      this.port.onmessage = ({ data }) => this._receive(data);
      this.port.start();
      this._held.then(() => this.port.postMessage({ op: "hello", tab: this.tab, url, lock: this.lock, options: ownerOptions(options) }));
    } else {
      // Three channels, so that nobody reads what is not theirs: the leader's announcements (to
      // every tab), the requests to the owner, and this tab's own inbox (its frames and answers).
      const heard = ({ data }) => isObject(data) && this._receive(data);
      this.announcements = new BroadcastChannel(name);
      this.announcements.onmessage = heard;
      this.inbox = new BroadcastChannel(`${name} ${this.tab}`);
      this.inbox.onmessage = heard;
      this.toOwner = new BroadcastChannel(`${name} owner`);
      this._elect(name, options);
      this.toOwner.postMessage({ op: "who", from: this.tab });
    }
    globalThis.addEventListener?.("pagehide", () => this._post({ op: "bye" }));
  }

  /** Leader mode: wait in line for the leader's lock; holding it, be the owner until the page goes. */
  _elect(name, options) {
    globalThis.navigator.locks.request(`rtgateway leader ${this.url}`, () => {
      const id = randomId();
      const inboxes = new Map(); // tab -> its inbox channel
      const post = (tab, msg) => {
        if (!inboxes.has(tab)) inboxes.set(tab, new BroadcastChannel(`${name} ${tab}`));
        inboxes.get(tab).postMessage(msg);
      };
      const owner = new Owner(this.url, post, ownerOptions(options));
      owner.onTabGone = (tab) => {
        inboxes.get(tab)?.close();
        inboxes.delete(tab);
      };
      const requests = new BroadcastChannel(`${name} owner`);
      requests.onmessage = ({ data }) => {
        if (!isObject(data) || typeof data.from !== "string") return;
        if (data.op === "who") post(data.from, { op: "leader", leader: id });
        else if (data.leader === id) owner.receive(data.from, data); // sent to an older leader: its tab learns of this one
      };
      this.owner = owner; // for tests and the curious: this tab holds the connection
      this.announcing = new BroadcastChannel(name); // kept: it is this leader's voice
      this.announcing.postMessage({ op: "leader", leader: id });
      return new Promise(() => {}); // held for the page's life: closing it hands over
    });
  }

  _broke(why) {
    if (this.broken) return;
    this.broken = true;
    const error = unavailable(why);
    for (const call of this.calls.values()) call.reject(error);
    this.calls.clear();
    for (const link of this.links.values()) link.receive({ op: "lost", reason: plain(error) });
  }

  /** Leader mode: the owner is now `id`. Links and calls that went through another one are lost. */
  _leaderIs(id) {
    if (id === this.leader) return;
    const old = this.leader;
    this.leader = id;
    for (const resolve of this._waiting.splice(0)) resolve();
    this._held.then(() => this._post({ op: "hello", lock: this.lock }));
    if (old === null) return;
    const gone = { code: "network_error", message: "the tab that held the shared connection left", detail: { leaderLeft: true } };
    for (const [ref, call] of this.calls) {
      if (call.via !== id) {
        this.calls.delete(ref);
        call.reject(asError(gone));
      }
    }
    for (const link of [...this.links.values()]) if (link.via !== id) link.receive({ op: "lost", reason: gone });
  }

  /** Resolves once there is an owner to talk to (at once with a SharedWorker). */
  _owner(ms) {
    if (this.mode === "worker" || this.leader !== null) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new GatewayError("timeout", `no tab took the shared connection in ${ms} ms`)), ms);
      this._waiting.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  _post(msg) {
    if (this.broken) return;
    // After the hello, which waits for this tab's lock (then-callbacks run in order).
    if (this.mode === "worker") this._held.then(() => this.port.postMessage({ ...msg, tab: this.tab }));
    else if (this.leader !== null) this.toOwner.postMessage({ ...msg, from: this.tab, leader: this.leader });
  }

  _receive(msg) {
    switch (msg.op) {
      case "leader":
        return this._leaderIs(msg.leader);
      case "attached":
      case "answer":
      case "failed": {
        const call = this.calls.get(msg.ref);
        if (!call) return;
        this.calls.delete(msg.ref);
        clearTimeout(call.timer);
        if (msg.op === "failed") call.reject(asError(msg.error));
        else call.resolve(msg);
        return;
      }
      case "alive":
        for (const link of this.links.values()) link.receive(msg);
        return;
      default:
        this.links.get(msg.link)?.receive(msg);
    }
  }

  /** Ask the owner; resolves to its answer, or rejects within `ms` (and when its leader goes). */
  async _call(msg, ms) {
    await this._owner(ms);
    if (this.broken) throw unavailable("its SharedWorker did not start");
    const ref = randomId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(ref);
        reject(new GatewayError("timeout", `no answer from the tab or worker holding the shared connection in ${ms} ms`));
      }, ms);
      this.calls.set(ref, { resolve, reject, timer, via: this.leader });
      this._post({ ...msg, ref });
    });
  }

  /** Open or resume `link`'s session on the shared stream; resolves to its sid. */
  async attach(link, params) {
    this.links.set(link.ref, link);
    link.via = this.leader;
    try {
      const answer = await this._call({ op: "attach", link: link.ref, ...params }, params.timeout);
      link.via = this.leader;
      return answer.sid;
    } catch (err) {
      this.links.delete(link.ref);
      throw err;
    }
  }

  /** One request on a session through the owner: the HTTP answer, as a Response. */
  async request(params) {
    const answer = await this._call({ op: "request", ...params }, params.timeout + 1000);
    const headers = {};
    if (answer.type) headers["content-type"] = answer.type;
    if (answer.retryAfter) headers["retry-after"] = answer.retryAfter;
    return new Response(answer.status === 204 ? null : answer.text, { status: answer.status, headers });
  }

  /**
   * The next answer of the shared long-poll for Engine.IO connection `sid`, of which this tab
   * has had `n`: resolves to {n, text} (`text`: the body its own poll would have had).
   */
  poll({ sid, n }) {
    return this._call({ op: "poll", sid, n }, POLL_WAIT + 5000);
  }

  detach(link) {
    if (link.sid) this._post({ op: "detach", sid: link.sid, link: link.ref });
  }

  forget(link) {
    this.links.delete(link.ref);
  }
}

/** What the owner needs of a client's options. */
const ownerOptions = ({ bufferTimeout, connectTimeout }) => ({ bufferTimeout, connectTimeout });

/**
 * A session on the shared stream: an SseLink whose stream is the owner's carrier and whose
 * requests the owner sends. rtgateway.js drives it as any link (open, opened, request, answer,
 * drop, close; lost and frames through its events).
 */
export class SharedLink extends SseLink {
  constructor(options, events, seq, share) {
    super(options, events, seq, { mode: "stream" });
    this.share = share;
    this.sharing = share.mode; // "worker" or "leader": how the connection is shared
    this.ref = randomId();
    this.via = null; // leader mode: the leader it attached through
    this.early = []; // frames that came before the attach's answer
    this.detached = false; // the owner said the session left the carrier
    // drop(), the dead-stream watchdog and close() all end in an abort, as for an SseLink.
    this.abort.signal.addEventListener("abort", () => this._lose(this.abort.signal.reason));
  }

  get name() {
    return "sse";
  }

  async open({ sid, key, cursor, token }) {
    this.sid = sid ?? null;
    this.key = key ?? null;
    this.cursor = cursor ?? null;
    this.token = token;
    const { namespace, name, connectTimeout } = this.options;
    this._watch(connectTimeout);
    const params = { namespace, name, token, cursor: this.cursor, sid: this.sid, key: this.key, timeout: connectTimeout };
    let attached;
    try {
      attached = await this.share.attach(this, params);
    } catch (err) {
      clearTimeout(this.timer);
      throw this.abort.signal.reason ?? err;
    }
    if (this.ended) throw this.abort.signal.reason ?? new GatewayError("client_closed", "closed by the client");
    this.sid = attached;
    this.answered = true;
    for (const msg of this.early.splice(0)) this._frame(msg.raw);
  }

  /** A message from the owner for this link. */
  receive(msg) {
    if (this.ended) return;
    if (msg.op === "alive") {
      this._watch(this.deadline ?? this.options.connectTimeout);
    } else if (msg.op === "lost") {
      this.detached = true;
      this.abort.abort(asError(msg.reason));
    } else if (msg.op === "frame") {
      if (this.answered) this._frame(msg.raw);
      else this.early.push(msg);
    }
  }

  /** One frame of this session, as the carrier carried it: {"sid", "event", "id"?, "data"}. */
  _frame(raw) {
    this._watch(this.deadline ?? this.options.connectTimeout);
    let frame;
    try {
      frame = parseWire(raw); // binary markers as ArrayBuffers
    } catch {
      this.events.malformed(`a shared frame whose data is not JSON: ${String(raw).slice(0, 80)}`);
      this.events.unusable(this);
      return;
    }
    if (!isObject(frame) || typeof frame.event !== "string") {
      this.events.malformed(`a shared frame without an event: ${String(raw).slice(0, 80)}`);
      return;
    }
    if (frame.id !== undefined) {
      if (isCursor(frame.id)) {
        this.cursor = frame.id;
        this.events.cursor(this, frame.id);
      } else {
        this.events.malformed(`an id that is not a cursor: ${String(frame.id).slice(0, 80)}`);
      }
    }
    this.events.frame(this, frame.event.slice(0, 128), frame.data);
  }

  _lose(reason) {
    this.share.forget(this);
    // Cut by this tab (drop, a silent stream): the session leaves the carrier, recoverable, so
    // that resuming it (here or anywhere) finds it free.
    if (!this.ended && this.answered && !this.detached) this.share.detach(this);
    clearTimeout(this.timer);
    this._end(reason);
  }

  async _post(path, body, method = "POST") {
    const { requestTimeout } = this.options;
    const json = body === undefined ? undefined : JSON.stringify(await toWire(body));
    const response = await this.share.request({ sid: this.sid, key: this.key ?? "", path, method, body: json, timeout: requestTimeout });
    if (!response.ok) throw await problemError(response);
    return response;
  }
}

// -- the owner's side -----------------------------------------------------------------

/**
 * Holds the carrier for every tab: attaches their sessions, routes each session's frames to its
 * tab, sends their requests. `post(tab, msg)` reaches a tab. Runs in the SharedWorker or the
 * leader tab.
 */
export class Owner {
  constructor(url, post, { bufferTimeout = 3000, connectTimeout = 10000 } = {}) {
    this.url = url;
    this.post = post;
    this.bufferTimeout = bufferTimeout;
    this.connectTimeout = connectTimeout;
    this.carrier = null; // {id, key, abort, ...} once its carrier frame came
    this.opening = null; // the carrier being opened
    this.routes = new Map(); // sid -> {tab, link, key}
    this.attaching = 0; // attaches of new sessions in flight: their frames may come first
    this.unclaimed = []; // [sid, raw] of those frames
    this.detaching = new Map(); // sid -> {promise, done}: attached again only once detached
    this.idle = null;
    this.lastAlive = 0;
    this.polls = new Map(); // Engine.IO sid -> {tab, ref, n}: a tab's Socket.IO long-poll, waiting in the shared one
    this.polling = null; // the shared long-poll in flight: {hold, sids}
    this.pollGroup = POLL_GROUP; // connections it names at most; the rest wait for the next (see _pollLoop)
    this.stats = { carriers: 0, attached: 0, requests: 0, malformed: 0, unclaimed: 0, polls: 0 };
  }

  receive(tab, msg) {
    switch (msg.op) {
      case "hello":
        if (msg.lock && typeof globalThis.navigator?.locks?.request === "function") {
          // Granted once the tab is gone, however it went.
          globalThis.navigator.locks.request(msg.lock, () => this.tabGone(tab));
        }
        return;
      case "attach":
        return void this._attach(tab, msg);
      case "request":
        return void this._request(tab, msg);
      case "poll":
        return this._poll(tab, msg);
      case "detach": {
        const route = this.routes.get(msg.sid);
        if (route?.tab === tab && route.link === msg.link) this._detach(msg.sid, route);
        return;
      }
      case "bye":
        return this.tabGone(tab);
    }
  }

  /** A tab left: its sessions leave the carrier (recoverable until they expire, as after a cut). */
  tabGone(tab) {
    for (const [sid, route] of this.routes) if (route.tab === tab) this._detach(sid, route);
    for (const [sid, poll] of this.polls) if (poll.tab === tab) this.polls.delete(sid);
    this.onTabGone?.(tab);
  }

  async _attach(tab, msg) {
    const { ref, link, namespace, name, token, cursor, key, timeout } = msg;
    const sid = msg.sid ?? (cursor ? cursor.slice(0, cursor.indexOf(":")) : null);
    clearTimeout(this.idle);
    this.attaching += sid ? 0 : 1;
    try {
      if (sid) await this.detaching.get(sid)?.promise;
      const carrier = await this._ensure(timeout ?? this.connectTimeout);
      const query = new URLSearchParams({ namespace });
      if (name) query.set("name", name);
      const headers = { "X-Carrier-Key": carrier.key };
      if (token) headers.Authorization = `Bearer ${token}`;
      if (cursor) headers["Last-Event-ID"] = cursor;
      else if (sid && key) {
        query.set("sid", sid);
        headers["X-Session-Key"] = key;
      }
      // A resumed session's frames may come before the answer: routed from now on.
      if (sid) this.routes.set(sid, { tab, link, key: cursor ? cursor.slice(sid.length + 1, cursor.indexOf(";")) : key });
      let response;
      try {
        response = await fetch(`${this.url}/sse/multiplex/${encodeURIComponent(carrier.id)}/attach?${query}`, {
          method: "POST", headers, cache: "no-store", signal: AbortSignal.timeout(timeout ?? this.connectTimeout),
        });
      } catch (err) {
        throw new GatewayError(err.name === "TimeoutError" ? "timeout" : "network_error", `attaching to the shared stream failed: ${err.message}`);
      }
      if (!response.ok) {
        const error = await problemError(response);
        if (error.code === "not_found" || error.detail?.limit === "carrier_sessions") {
          // The carrier is unknown here (another node behind a balancer) or full: this tab's own stream.
          throw unavailable(error.message);
        }
        throw error;
      }
      const opened = (await response.json())?.result?.sid;
      if (typeof opened !== "string") throw new GatewayError("malformed_frame", "the attach answer has no sid");
      if (this.carrier !== carrier || (sid && this.routes.get(opened)?.link !== link)) {
        throw new GatewayError("network_error", "the shared stream was lost while attaching");
      }
      if (!sid) this.routes.set(opened, { tab, link, key: null });
      this.stats.attached += 1;
      this.post(tab, { op: "attached", ref, sid: opened });
      if (!sid) {
        // Its frames that came first, in their order.
        const mine = this.unclaimed.filter(([s]) => s === opened);
        this.unclaimed = this.unclaimed.filter(([s]) => s !== opened);
        for (const [, raw, data] of mine) this._route(opened, raw, data);
      }
    } catch (err) {
      if (sid && this.routes.get(sid)?.link === link) this.routes.delete(sid);
      this.post(tab, { op: "failed", ref, error: plain(asError(err)) });
    } finally {
      if (!sid && --this.attaching === 0) {
        this.stats.unclaimed += this.unclaimed.length; // frames of a session no tab claimed
        this.unclaimed = [];
      }
      this._idleSoon();
    }
  }

  async _request(tab, { ref, sid, key, path, method, body, timeout }) {
    this.stats.requests += 1;
    const headers = { "X-Session-Key": key };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      const response = await fetch(`${this.url}/sse/sessions/${encodeURIComponent(sid)}${path}`, {
        method, headers, body, cache: "no-store", signal: AbortSignal.timeout(timeout),
      });
      const text = await response.text();
      this.post(tab, {
        op: "answer", ref, status: response.status, text,
        type: response.headers.get("content-type"), retryAfter: response.headers.get("retry-after"),
      });
    } catch (err) {
      const error = err.name === "TimeoutError"
        ? new GatewayError("timeout", `no answer to ${path} in ${timeout} ms`)
        : new GatewayError("network_error", `${path} failed: ${err.message}`);
      this.post(tab, { op: "failed", ref, error: plain(error) });
    }
  }

  /**
   * A tab's Socket.IO long-poll: it waits in the one shared poll (`GET /sio/multiplex`), which
   * is woken to be asked again with it if it is already waiting without it.
   */
  _poll(tab, { ref, sid, n }) {
    if (typeof sid !== "string" || !Number.isSafeInteger(n)) return;
    this.polls.set(sid, { tab, ref, n });
    if (!this.polling) return void this._pollLoop();
    const { hold, sids, woken } = this.polling;
    // A full group is not woken for a newcomer: the next round would name the same connections.
    if (hold && !sids.has(sid) && !woken && sids.size < this.pollGroup) {
      this.polling.woken = true;
      this._wake(hold, WAKE_TRIES);
    }
  }

  /** Wake the shared poll `hold`. Its GET can reach the gateway after the wake does (another
   * connection of the pool): "no such poll" (404) is asked again while that poll is the one
   * waiting here; lost, the tab's poll waited for the next round (up to pingInterval). */
  _wake(hold, tries) {
    fetch(`${this.url}/sio/multiplex/wake?${new URLSearchParams({ hold })}`, { method: "POST", keepalive: true }).then(
      (response) => {
        if (response.status === 404 && tries > 1 && this.polling?.hold === hold) setTimeout(() => this._wake(hold, tries - 1), WAKE_AGAIN);
      },
      () => {},
    );
  }

  async _pollLoop() {
    while (this.polls.size) {
      // The tabs answered last time poll again within a moment of each other: one request for all.
      this.polling = { hold: null };
      await new Promise((resolve) => setTimeout(resolve, POLL_GATHER));
      // The polls waiting longest first (a tab's new poll goes to the end of the map): past the
      // group's size, the others are asked in the next round, which a ping starts within pingInterval.
      const asked = new Map([...this.polls].slice(0, this.pollGroup));
      if (!asked.size) break;
      const hold = randomId();
      this.polling = { hold, sids: new Set(asked.keys()), woken: false };
      const query = new URLSearchParams({ hold });
      for (const [sid, { n }] of asked) query.append("s", `${sid}.${n}`);
      this.stats.polls += 1;
      let body;
      try {
        const response = await fetch(`${this.url}/sio/multiplex?${query}`, { cache: "no-store", signal: AbortSignal.timeout(POLL_WAIT) });
        if (!response.ok) {
          const error = await problemError(response);
          if (response.status === 422 && error.detail?.field === "s" && asked.size > 1) {
            this.pollGroup = Math.max(1, Math.floor(asked.size / 2)); // more than this gateway takes in one poll
            continue;
          }
          throw response.status === 404 || response.status === 405 ? unavailable(error.message) : error; // no shared poll here
        }
        body = await response.json();
      } catch (err) {
        // Every poll asked fails: a tab's transport then errs, and its client reconnects (and recovers).
        const error = plain(err.name === "TimeoutError" ? new GatewayError("timeout", `no shared poll answer in ${POLL_WAIT} ms`) : asError(err));
        this._answerPolls(asked, Object.fromEntries([...asked.keys()].map((sid) => [sid, { error }])));
        continue;
      }
      const answers = {};
      for (const [sid, payload] of Object.entries(isObject(body?.payloads) ? body.payloads : {})) answers[sid] = payload;
      for (const sid of Array.isArray(body?.gone) ? body.gone : []) {
        answers[sid] = { error: { code: "unknown_sid", message: `the gateway has no polling connection ${sid}` } };
      }
      this._answerPolls(asked, answers);
    }
    this.polling = null;
  }

  /** Hand each asked poll its answer ({n, data} or {error}); a tab that left meanwhile is skipped. */
  _answerPolls(asked, answers) {
    for (const [sid, answer] of Object.entries(answers)) {
      const poll = asked.get(sid);
      if (!poll || this.polls.get(sid) !== poll || !isObject(answer)) continue;
      this.polls.delete(sid);
      if (answer.error) this.post(poll.tab, { op: "failed", ref: poll.ref, error: answer.error });
      else this.post(poll.tab, { op: "answer", ref: poll.ref, n: answer.n, text: String(answer.data) });
    }
  }

  /** Take a session off the carrier; attaching it again waits for its detached frame. */
  _detach(sid, route) {
    this.routes.delete(sid);
    const carrier = this.carrier;
    if (!carrier || !route.key) return this._idleSoon();
    let finish;
    const promise = new Promise((resolve) => {
      finish = resolve;
    });
    const timer = setTimeout(() => done(), DETACH_WAIT);
    const done = () => {
      clearTimeout(timer);
      if (this.detaching.get(sid)?.promise === promise) this.detaching.delete(sid);
      finish();
    };
    this.detaching.set(sid, { promise, done });
    fetch(`${this.url}/sse/multiplex/${encodeURIComponent(carrier.id)}/detach?${new URLSearchParams({ sid })}`, {
      method: "POST", headers: { "X-Carrier-Key": carrier.key, "X-Session-Key": route.key }, keepalive: true,
    }).then((response) => {
      if (!response.ok) done(); // not on the carrier any more: no detached frame will come
    }, done);
    this._idleSoon();
  }

  /** The carrier, opened if there is none. */
  _ensure(timeout) {
    if (this.carrier) return Promise.resolve(this.carrier);
    this.opening ??= this._open(timeout).finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  async _open(timeout) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new GatewayError("timeout", `no shared stream in ${timeout} ms`)), timeout);
    let response;
    try {
      response = await fetch(`${this.url}/sse/multiplex`, { headers: { Accept: "text/event-stream" }, cache: "no-store", signal: abort.signal });
    } catch (err) {
      clearTimeout(timer);
      throw abort.signal.reason ?? new GatewayError("network_error", `cannot reach ${this.url}: ${err.message}`);
    }
    clearTimeout(timer);
    if (!response.ok) {
      const error = await problemError(response);
      // No such route (a gateway without multiplexing): the tabs' own streams. Anything else is
      // what a stream of their own would be told too (a limit, an origin refused).
      throw response.status === 404 || response.status === 405 ? unavailable(error.message) : error;
    }
    const carrier = { id: null, key: null, abort, deadline: null, timer: null };
    const hello = new Promise((resolve, reject) => {
      carrier.hello = { resolve, reject };
    });
    // Headers came but not the carrier frame: a proxy holding the stream back (the tabs then
    // use their own streams, which poll through such a proxy).
    carrier.timer = setTimeout(() => abort.abort(unavailable("the stream is held back (a buffering proxy?)", { buffered: true })), this.bufferTimeout);
    this.stats.carriers += 1;
    this._read(carrier, response);
    return hello;
  }

  async _read(carrier, response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    let reason = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this._heard(carrier);
        for (const frame of parser.push(decoder.decode(value, { stream: true }))) {
          if (frame.data === undefined || frame.overlong) {
            if (frame.overlong) this.stats.malformed += 1;
            continue;
          }
          this._carried(carrier, frame);
        }
      }
      reason = new GatewayError("network_error", "the shared stream ended");
    } catch (err) {
      reason = asError(abort(carrier) ?? err);
    }
    this._lost(carrier, carrier.closed ?? reason);
  }

  /** Anything read: the carrier lives (its watchdog), and so the tabs' streams (theirs). */
  _heard(carrier) {
    if (carrier.deadline) {
      clearTimeout(carrier.timer);
      carrier.timer = setTimeout(() => carrier.abort.abort(new GatewayError("timeout", `nothing heard from the shared stream for ${carrier.deadline} ms`)), carrier.deadline);
    }
    const now = Date.now();
    if (now - this.lastAlive < ALIVE_EVERY) return;
    this.lastAlive = now;
    for (const tab of new Set([...this.routes.values()].map((r) => r.tab))) this.post(tab, { op: "alive" });
  }

  _carried(carrier, frame) {
    let data;
    try {
      data = JSON.parse(frame.data);
    } catch {
      this.stats.malformed += 1;
      return;
    }
    if (frame.event === "message") {
      if (!isObject(data) || typeof data.sid !== "string") {
        this.stats.malformed += 1;
        return;
      }
      if (this.routes.has(data.sid)) return this._route(data.sid, frame.data, data);
      if (this.attaching && this.unclaimed.length < UNCLAIMED_MAX) this.unclaimed.push([data.sid, frame.data, data]);
      else this.stats.unclaimed += 1; // a session whose tab left it, or beyond the bound: its open will time out and retry
      return;
    }
    if (frame.event === "carrier" && isObject(data) && carrier.id === null) {
      clearTimeout(carrier.timer);
      Object.assign(carrier, { id: data.carrier, key: data.key, deadline: data.pingInterval + data.pingTimeout });
      this.carrier = carrier;
      this._heard(carrier);
      carrier.hello.resolve(carrier);
    } else if (frame.event === "detached" && isObject(data)) {
      this.detaching.get(data.sid)?.done();
      const route = this.routes.get(data.sid);
      if (!route) return;
      this.routes.delete(data.sid);
      this.post(route.tab, { op: "lost", link: route.link, reason: { code: "network_error", message: `the session left the shared stream: ${data.reason}` } });
      this._idleSoon();
    } else if (frame.event === "close" && isObject(data)) {
      // The gateway ends the carrier (shutdown): every session comes back, on a new one.
      carrier.closed = new GatewayError(String(data.reason ?? "closed_by_server"), `the gateway closed the shared stream: ${data.reason}`, data, true);
    }
  }

  _route(sid, raw, data) {
    const route = this.routes.get(sid);
    if (!route) return;
    if (data.event === "open" && isObject(data.data) && typeof data.data.key === "string") route.key = data.data.key;
    this.post(route.tab, { op: "frame", link: route.link, raw });
  }

  _lost(carrier, reason) {
    clearTimeout(carrier.timer);
    carrier.abort.abort(reason);
    carrier.hello.reject(reason);
    if (this.carrier !== carrier) return;
    this.carrier = null;
    const routes = [...this.routes.values()];
    this.routes.clear();
    for (const { done } of [...this.detaching.values()]) done();
    const why = plain(reason);
    for (const { tab, link } of routes) this.post(tab, { op: "lost", link, reason: why });
  }

  /** A carrier that carries nothing is closed after a while (a tab may be about to attach). */
  _idleSoon() {
    clearTimeout(this.idle);
    if (this.routes.size || this.attaching || !this.carrier) return;
    const carrier = this.carrier;
    this.idle = setTimeout(() => {
      if (this.carrier === carrier && !this.routes.size && !this.attaching) this._lost(carrier, new GatewayError("client_closed", "no session left on the shared stream"));
    }, IDLE_CARRIER);
  }
}

/** The carrier's abort reason, if it was aborted (a watchdog, a buffering proxy, idle). */
function abort(carrier) {
  return carrier.abort.signal.aborted ? carrier.abort.signal.reason : null;
}

// -- run as the SharedWorker ---------------------------------------------------------

if (typeof globalThis.SharedWorkerGlobalScope === "function" && globalThis instanceof globalThis.SharedWorkerGlobalScope) {
  // One worker per gateway URL (its name): one owner, for every tab that connects.
  const ports = new Map(); // tab -> MessagePort
  let owner = null;
  globalThis.addEventListener("connect", (event) => {
    const port = event.ports[0];
    port.onmessage = ({ data }) => {
      if (!isObject(data) || typeof data.tab !== "string") return;
      if (data.op === "hello") {
        ports.set(data.tab, port);
        if (!owner) {
          owner = new Owner(data.url, (tab, msg) => ports.get(tab)?.postMessage(msg), data.options ?? {});
          owner.onTabGone = (tab) => ports.delete(tab);
        }
      }
      owner?.receive(data.tab, data);
    };
    port.start();
  });
}

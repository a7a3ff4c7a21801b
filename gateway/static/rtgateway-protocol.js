/**
 * rtgateway-protocol.js: the pure pieces of the rtgateway client — names, offsets, envelope,
 * frame and ack checks, problem bodies, the SSE parser. No connections, no timers: the same in
 * a page, a worker or Node.
 * Wire format: docs/protocol.md.
 *
 * Whatever a frame holds, the client skips and counts what it cannot use and goes on: a bad
 * frame sits in a room's delivery log and comes back with every replay, so a reconnect (or a
 * throw out of the reader) would trap the client in a loop. What it keeps stays valid (names
 * by the wire format's rule, offsets as ASCII digits), so its resume position is one the
 * gateway reads.
 */

export class GatewayError extends Error {
  /** @param {string} code  @param {string} message  @param {object} [detail]  @param {boolean} [fromServer] */
  constructor(code, message, detail = {}, fromServer = false) {
    super(message);
    this.name = "GatewayError";
    this.code = code;
    this.status = detail.status;
    this.detail = detail;
    this.fromServer = fromServer;
  }
}

// An event-stream line longer than this (in characters) is thrown away, and its frame skipped:
// the gateway's default maxPayload is 1 MB, and a stream must not make its reader hold unbounded memory.
export const MAX_LINE = 16 * 1024 * 1024;

// docs/protocol.md: names are 1-128 of these characters; offsets are two runs of digits (64-bit each).
export const NAME = /^[A-Za-z0-9_.:@~-]{1,128}$/;
export const OFFSET = /^([0-9]{1,20})-([0-9]{1,20})$/;
// No room event may carry these names: the gateway's own frames, and the names Socket.IO clients
// keep for themselves. The gateway refuses them; one that arrives anyway is skipped.
export const RESERVED_EVENTS = new Set([
  "open", "recovery", "call", "close", "error", "joined", "left",
  "connect", "connect_error", "disconnect", "disconnecting", "message_ack",
  "newListener", "removeListener",
  "join", "leave", "publish", "ack",
  "presence", "presence.join", "presence.leave",
]);
const ALL_ROOM = "*"; // the namespace room every session is in (server-side emits without a room)

export const isName = (v) => typeof v === "string" && NAME.test(v);
export const isRoom = (v) => v === ALL_ROOM || isName(v);
export const isOffset = (v) => typeof v === "string" && OFFSET.test(v);

/** "1795710639760-7" -> [1795710639760, 7]; throws on anything else. */
export function parseOffset(offset) {
  const m = typeof offset === "string" ? OFFSET.exec(offset) : null;
  if (!m) throw new TypeError(`not an offset: ${JSON.stringify(offset)?.slice(0, 80)}`);
  return [Number(m[1]), Number(m[2])];
}

// Digits compared as numbers, exactly (beyond 2**53 a Number is not): by length, then as text.
function compareDigits(a, b) {
  a = a.replace(/^0+(?=.)/, "");
  b = b.replace(/^0+(?=.)/, "");
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** <0, 0, >0 as offset a is before, at, after offset b. */
export function compareOffsets(a, b) {
  const am = typeof a === "string" ? OFFSET.exec(a) : null;
  const bm = typeof b === "string" ? OFFSET.exec(b) : null;
  if (!am || !bm) throw new TypeError(`not an offset: ${JSON.stringify(am ? b : a)?.slice(0, 80)}`);
  return compareDigits(am[1], bm[1]) || compareDigits(am[2], bm[2]);
}

/** 128 random bits, URL-safe base64 (crypto.randomUUID needs a secure context; this does not). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** A room event envelope, by its shape (no frame of the gateway's own has these three keys). */
export const isEnvelope = (v) => isObject(v) && "offset" in v && "room" in v && "event" in v;

const show = (v) => JSON.stringify(v)?.slice(0, 80);

/**
 * Where a room event belongs; returns an error message or null. An envelope that passes can
 * at least be placed (its room and offset are good) even if it cannot be delivered.
 */
export function envelopeProblem(env) {
  if (!isObject(env)) return "a room event must be a JSON object";
  if (!isRoom(env.room)) return `a room event needs a room name, not ${show(env.room)}`;
  if (!isOffset(env.offset)) return `bad offset ${show(env.offset)}`;
  return null;
}

/**
 * Whether a placed room event (envelopeProblem said null) can be delivered under the frame's
 * name `name`; returns an error message or null.
 */
export function deliveryProblem(name, env) {
  if (!isName(env.event)) return `its event is not a name: ${show(env.event)}`;
  if (RESERVED_EVENTS.has(env.event)) return `its event ${show(env.event)} is reserved`;
  if (name !== env.event) return `the frame's name ${show(name)} is not its event ${show(env.event)}`;
  const orNull = (v) => v === undefined || v === null || typeof v === "string";
  if (!orNull(env.sender) || !orNull(env.clientEventId) || !Number.isSafeInteger(env.ts)) {
    return "sender, clientEventId or ts has the wrong type";
  }
  return null;
}

/** Check an open frame; returns an error message or null. */
export function openProblem(info) {
  if (!isObject(info)) return "open must carry a JSON object";
  if (!isName(info.sid) || !isName(info.key)) return "open needs a sid and a key (names by the wire format's rule)";
  const positive = (v) => typeof v === "number" && Number.isFinite(v) && v > 0;
  if (!positive(info.pingInterval) || !positive(info.pingTimeout)) return "open needs positive pingInterval and pingTimeout";
  if (info.rooms !== undefined && !(Array.isArray(info.rooms) && info.rooms.every(isName))) return "open's rooms must be room names";
  return null;
}

/** Check a recovery frame; returns an error message or null. */
export function recoveryProblem(data) {
  if (!isObject(data)) return "recovery must carry a JSON object";
  if (typeof data.complete !== "boolean" || !Number.isSafeInteger(data.replayed) || data.replayed < 0 || !Array.isArray(data.gaps)) {
    return "recovery needs complete (boolean), replayed (integer >= 0) and gaps (array)";
  }
  if (data.recovered !== undefined && typeof data.recovered !== "boolean") return "recovery's recovered must be a boolean";
  for (const gap of data.gaps) {
    if (!isObject(gap) || !isRoom(gap.room) || !(gap.after === null || gap.after === undefined || isOffset(gap.after))) {
      return `a recovery gap needs a room and an offset or null, not ${show(gap)}`;
    }
  }
  return null;
}

/** Whether an SSE id: line is a cursor the gateway would read back: "<sid>:<key>;<room>=<offset>,...". */
export function isCursor(id) {
  if (typeof id !== "string") return false;
  const semi = id.indexOf(";");
  const head = semi < 0 ? "" : id.slice(0, semi);
  const colon = head.indexOf(":");
  if (colon < 0 || !isName(head.slice(0, colon)) || !isName(head.slice(colon + 1))) return false;
  const rest = id.slice(semi + 1);
  return rest === "" || rest.split(",").every((part) => {
    const eq = part.lastIndexOf("=");
    return eq > 0 && isRoom(part.slice(0, eq)) && isOffset(part.slice(eq + 1));
  });
}

/**
 * The cursor a stream would have carried at these positions: what an SSE resume sends after the
 * session was on another transport (the same positions a Socket.IO resume sends as `offsets`).
 */
export function cursorOf(sid, key, offsets) {
  return `${sid}:${key};${[...offsets].map(([room, offset]) => `${room}=${offset}`).join(",")}`;
}

/** The {ok, result} / {ok: false, error} answer both transports give; returns result or throws. */
export function unwrapAck(ack) {
  if (isObject(ack) && ack.ok === true) return ack.result;
  if (isObject(ack) && ack.ok === false && isObject(ack.error) && typeof ack.error.code === "string") {
    throw new GatewayError(ack.error.code, ack.error.message ?? ack.error.code, ack.error, true);
  }
  // fromServer: sending it again would get the same answer back (deduplicated), so it is final.
  throw new GatewayError("malformed_frame", `the gateway answered with a malformed ack: ${JSON.stringify(ack)}`, {}, true);
}

/** A non-2xx HTTP answer as a GatewayError, from its problem body when there is one. */
export async function problemError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON: a proxy's error page, say */
  }
  // Retry-After (whole seconds) stands in for a body without retryAfter, e.g. a proxy's 429.
  const header = response.headers?.get?.("retry-after");
  const retryAfter = header != null && /^\d+$/.test(header.trim()) ? Number(header) : undefined;
  if (isObject(body) && typeof body.code === "string") {
    return new GatewayError(body.code, body.detail ?? body.title ?? body.code, { retryAfter, ...body, status: response.status }, true);
  }
  return new GatewayError(`http_${response.status}`, `HTTP ${response.status} ${response.statusText}`, { status: response.status, retryAfter }, true);
}

/**
 * The wait in ms a refusal asked for before trying again: a `rate_limited` error's
 * retryAfter (seconds; 1 s when it does not say, at most 60 s), else 0.
 */
export function retryAfterMs(error) {
  if (error?.code !== "rate_limited") return 0;
  const seconds = error.detail?.retryAfter;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return 1000;
  return Math.min(seconds, 60) * 1000;
}

/**
 * Binary payloads (docs/protocol.md, "Binary payloads"). Socket.IO carries ArrayBuffer, typed
 * arrays (Node's Buffer too), DataView and Blob as binary attachments; SSE + POST carries each
 * as the marker object {"_rtgw_binary": "<base64>"}. `toWire` turns a request's binaries into
 * markers (async: a Blob is read first); `parseWire` reads a frame or an answer, its markers
 * as ArrayBuffers (what socket.io-client gives a page).
 */
export const BINARY_MARKER = "_rtgw_binary";
const MARKER_TEXT = `"${BINARY_MARKER}"`; // how the gateway writes the key: only text holding it is walked

const isBlob = (v) => typeof Blob === "function" && v instanceof Blob;
const isPlain = (v) => isObject(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v));

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

/** `value` with every binary in it as its marker object, ready for JSON.stringify. */
export async function toWire(value) {
  if (value instanceof ArrayBuffer) return { [BINARY_MARKER]: toBase64(new Uint8Array(value)) };
  if (ArrayBuffer.isView(value)) {
    return { [BINARY_MARKER]: toBase64(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)) };
  }
  if (isBlob(value)) return toWire(await value.arrayBuffer());
  if (Array.isArray(value)) return Promise.all(value.map(toWire));
  if (isPlain(value)) {
    const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await toWire(v)]));
    return Object.fromEntries(entries);
  }
  return value; // a string, number, null, or an object with its own toJSON (a Date)
}

function fromWire(value) {
  if (Array.isArray(value)) return value.map(fromWire);
  if (!isObject(value)) return value;
  if (BINARY_MARKER in value) {
    const text = value[BINARY_MARKER];
    if (typeof text !== "string" || Object.keys(value).length !== 1) throw new TypeError(`a malformed binary marker`);
    const raw = atob(text); // throws on anything that is not base64
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromWire(v)]));
}

/** JSON text from the gateway, its binary markers as ArrayBuffers; throws if it is not JSON. */
export function parseWire(text) {
  const value = JSON.parse(text);
  return text.includes(MARKER_TEXT) ? fromWire(value) : value;
}

/**
 * A Server-Sent Events parser (the WHATWG algorithm): feed text, get frames back.
 * Comments come back as {comment} so a caller can see pings; the gateway ends lines with
 * "\n", but proxies and other servers may use "\r\n" or "\r", so every line ending is accepted.
 */
export class SseParser {
  constructor(maxLine = MAX_LINE) {
    this.maxLine = maxLine;
    this.buffer = "";
    this.discarding = false; // inside an overlong line: its characters are dropped
    this.skipLf = false; // an overlong line ended in "\r" at a chunk's end: a "\n" next is part of it
    this.started = false; // past the stream's first character (a BOM there is dropped)
    this._reset();
  }

  _reset() {
    this.event = "";
    this.data = [];
    this.id = undefined;
    this.overlong = false;
  }

  /**
   * A line over maxLine characters is thrown away as it arrives (the stream goes on), and its
   * frame comes out with `overlong: true`, for the reader to skip and count.
   * @returns {Array<{comment: string} | {id?: string, event?: string, data?: string, overlong?: true}>}
   */
  push(text) {
    if (!this.started) {
      this.started = true;
      if (text[0] === "\ufeff") text = text.slice(1); // a leading BOM is not part of the stream
    }
    const frames = [];
    const ending = /\r\n|\n|\r/g;
    let start = 0;
    let m;
    if (this.discarding) {
      // The rest of an overlong line: dropped up to its end.
      m = ending.exec(text);
      if (!m) return frames;
      this.discarding = false;
      // A "\r" last may be the first half of "\r\n": the "\n" then begins the next chunk, and
      // is taken as the end of an empty line... unless we remember it.
      this.skipLf = m[0] === "\r" && m.index === text.length - 1;
      text = text.slice(ending.lastIndex);
      ending.lastIndex = 0;
    } else if (this.skipLf) {
      this.skipLf = false;
      if (text[0] === "\n") text = text.slice(1);
    }
    this.buffer += text;
    while ((m = ending.exec(this.buffer))) {
      // A "\r" at the very end may be the first half of "\r\n": wait for the next chunk.
      if (m[0] === "\r" && m.index === this.buffer.length - 1) break;
      this._line(this.buffer.slice(start, m.index), frames);
      start = ending.lastIndex;
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > this.maxLine) {
      const ended = this.buffer.endsWith("\r"); // held back only to see whether "\n" follows
      this.buffer = "";
      this.overlong = true;
      this.discarding = !ended;
      this.skipLf = ended;
    }
    return frames;
  }

  _line(line, frames) {
    if (line === "") {
      if (this.data.length || this.overlong) {
        const frame = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
        if (this.overlong) frame.overlong = true;
        frames.push(frame);
      } else if (this.id !== undefined) {
        frames.push({ id: this.id }); // an id alone still moves the cursor
      }
      this._reset();
      return;
    }
    if (line.length > this.maxLine) {
      this.overlong = true; // the same as when it comes in pieces: thrown away
      return;
    }
    if (line[0] === ":") {
      frames.push({ comment: line.slice(1).trim() });
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
    // "retry" is ignored: this client owns its reconnect schedule.
  }
}

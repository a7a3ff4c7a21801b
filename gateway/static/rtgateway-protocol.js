/**
 * rtgateway-protocol.js: the pure pieces of the rtgateway client — offsets, envelope and ack
 * checks, problem bodies, the SSE parser. No connections, no timers: the same in a page, a
 * worker or Node.
 * Wire format: docs/protocol.md.
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

const MAX_LINE = 4 * 1024 * 1024; // an SSE line longer than this is not from a sane server

export const OFFSET = /^(\d+)-(\d+)$/;

/** "1795710639760-7" -> [1795710639760, 7]; throws on anything else. */
export function parseOffset(offset) {
  const m = typeof offset === "string" ? OFFSET.exec(offset) : null;
  if (!m) throw new TypeError(`not an offset: ${JSON.stringify(offset)}`);
  return [Number(m[1]), Number(m[2])];
}

/** <0, 0, >0 as offset a is before, at, after offset b. */
export function compareOffsets(a, b) {
  const [am, as] = parseOffset(a);
  const [bm, bs] = parseOffset(b);
  return am - bm || as - bs;
}

/** 128 random bits, URL-safe base64 (crypto.randomUUID needs a secure context; this does not). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** Check a room event envelope; returns an error message or null. */
export function envelopeProblem(env) {
  if (!isObject(env)) return "a room event must be a JSON object";
  if (typeof env.event !== "string" || typeof env.room !== "string") return "a room event needs string event and room";
  if (typeof env.offset !== "string" || !OFFSET.test(env.offset)) return `bad offset ${JSON.stringify(env.offset)}`;
  return null;
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
  if (isObject(body) && typeof body.code === "string") {
    return new GatewayError(body.code, body.detail ?? body.title ?? body.code, { ...body, status: response.status }, true);
  }
  return new GatewayError(`http_${response.status}`, `HTTP ${response.status} ${response.statusText}`, { status: response.status }, true);
}

/**
 * A Server-Sent Events parser (the WHATWG algorithm): feed text, get frames back.
 * Comments come back as {comment} so a caller can see pings; the gateway ends lines with
 * "\n", but proxies and other servers may use "\r\n" or "\r", so every line ending is accepted.
 */
export class SseParser {
  constructor() {
    this.buffer = "";
    this._reset();
  }

  _reset() {
    this.event = "";
    this.data = [];
    this.id = undefined;
  }

  /** @returns {Array<{comment: string} | {id?: string, event?: string, data?: string}>} */
  push(text) {
    this.buffer += text;
    const frames = [];
    const ending = /\r\n|\n|\r/g;
    let start = 0;
    let m;
    while ((m = ending.exec(this.buffer))) {
      // A "\r" at the very end may be the first half of "\r\n": wait for the next chunk.
      if (m[0] === "\r" && m.index === this.buffer.length - 1) break;
      this._line(this.buffer.slice(start, m.index), frames);
      start = ending.lastIndex;
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > MAX_LINE) {
      this.buffer = "";
      throw new GatewayError("malformed_frame", `an event-stream line is over ${MAX_LINE} characters`);
    }
    return frames;
  }

  _line(line, frames) {
    if (line === "") {
      if (this.data.length || this.id !== undefined) {
        const frame = { id: this.id };
        if (this.data.length) Object.assign(frame, { event: this.event || "message", data: this.data.join("\n") });
        frames.push(frame);
      }
      this._reset();
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

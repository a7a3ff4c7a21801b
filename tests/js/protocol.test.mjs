// Unit tests of rtgateway-protocol.js, the JavaScript client's pure pieces (node --test).
// RTGW_PROTOCOL is the module's path (tests/test_js_protocol.py sets it).
import assert from "node:assert/strict";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const {
  GatewayError, SseParser, compareOffsets, deliveryProblem, envelopeProblem, isCursor, isEnvelope, openProblem,
  parseOffset, randomId, recoveryProblem, unwrapAck,
} = await import(pathToFileURL(process.env.RTGW_PROTOCOL).href);

test("offsets compare as the pair of integers, not as strings", () => {
  assert.deepEqual(parseOffset("1795710639760-7"), [1795710639760, 7]);
  assert.ok(compareOffsets("10-0", "9-99") > 0); // "10-0" < "9-99" as strings
  assert.ok(compareOffsets("5-10", "5-9") > 0);
  assert.equal(compareOffsets("5-5", "5-5"), 0);
  for (const bad of ["", "5", "5-", "-5", "a-1", "1-2-3", 7, null]) assert.throws(() => parseOffset(bad), TypeError);
});

test("the parser handles every line ending, split anywhere", () => {
  const wire = 'id: s:k;lobby=1-1\nretry: 1000\nevent: open\ndata: {"a":\ndata: 1}\n\n: ping\r\n\r\nid: s:k;lobby=1-2\r\n\r\n';
  for (let cut = 0; cut <= wire.length; cut++) {
    const parser = new SseParser();
    const frames = [...parser.push(wire.slice(0, cut)), ...parser.push(wire.slice(cut))];
    assert.deepEqual(frames, [
      { id: "s:k;lobby=1-1", event: "open", data: '{"a":\n1}' },
      { comment: "ping" },
      { id: "s:k;lobby=1-2" }, // an id alone still moves the cursor
    ], `cut at ${cut}`);
  }
});

test("an endless line is thrown away as it comes, its frame marked, and the stream goes on", () => {
  const wire = "id: s:k;r=1-1\nevent: big\ndata: " + "x".repeat(40) + "\r\n\r\nevent: next\ndata: 1\n\n";
  for (let cut = 0; cut <= wire.length; cut++) {
    const parser = new SseParser(16);
    const frames = [...parser.push(wire.slice(0, cut)), ...parser.push(wire.slice(cut))];
    assert.deepEqual(frames, [
      { id: "s:k;r=1-1", event: "big", data: "", overlong: true },
      { id: undefined, event: "next", data: "1" },
    ], `cut at ${cut}`);
    assert.ok(parser.buffer.length <= 16);
  }
  const parser = new SseParser(); // the default: memory stays bounded whatever comes
  parser.push("data: " + "x".repeat(16 * 1024 * 1024 + 1));
  assert.equal(parser.buffer, "");
  assert.deepEqual(parser.push("\n\n"), [{ id: undefined, event: "message", data: "", overlong: true }]);
});

test("a leading BOM is not part of the stream; frames without data are not dispatched", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push("\ufeffevent: open\ndata: {}\n\nevent: close\n\n"), [{ id: undefined, event: "open", data: "{}" }]);
});

test("offsets compare exactly, even past 2**53", () => {
  assert.ok(compareOffsets("9007199254740993-0", "9007199254740992-0") > 0);
  assert.ok(compareOffsets("1-18446744073709551615", "1-18446744073709551614") > 0);
  assert.equal(compareOffsets("007-1", "7-1"), 0);
  for (const bad of ["١-1", "1-1 ", "1-" + "9".repeat(21), "²-1"]) assert.throws(() => compareOffsets(bad, "1-1"), TypeError);
});

test("envelopes are placed (room, offset), then checked before delivery", () => {
  const env = { event: "message", room: "lobby", offset: "1-1", data: null, sender: null, clientEventId: "c", ts: 1 };
  assert.equal(envelopeProblem(env), null);
  assert.equal(envelopeProblem({ ...env, room: "*" }), null);
  assert.match(envelopeProblem({ event: "message", room: "lobby" }), /offset/);
  assert.match(envelopeProblem({ ...env, offset: 7 }), /offset/);
  assert.match(envelopeProblem([1]), /object/);
  assert.match(envelopeProblem({ ...env, room: "lobby\n" }), /room/);
  assert.match(envelopeProblem({ ...env, room: "x".repeat(129) }), /room/);
  assert.equal(deliveryProblem("message", env), null);
  for (const event of ["close", "open", "left", "newListener", "removeListener", "disconnecting", "error"]) {
    assert.match(deliveryProblem(event, { ...env, event }), /reserved/);
  }
  assert.match(deliveryProblem("close", { ...env, event: "close\n" }), /not a name/);
  assert.match(deliveryProblem("message", { ...env, event: "\u2028" }), /not a name/);
  assert.match(deliveryProblem("other", env), /not its event/);
  assert.match(deliveryProblem("message", { ...env, ts: "1" }), /wrong type/);
  assert.match(deliveryProblem("message", { ...env, sender: 5 }), /wrong type/);
  assert.ok(isEnvelope(env) && !isEnvelope({ room: "r", offset: "1-1" }) && !isEnvelope([env]));
});

test("open, recovery and cursors are checked before the client keeps anything of them", () => {
  const open = { sid: "S".repeat(22), key: "K".repeat(22), namespace: "/", pingInterval: 1000, pingTimeout: 500, rooms: ["a"] };
  assert.equal(openProblem(open), null);
  for (const bad of [{ sid: 1 }, { key: "" }, { key: "a;b" }, { pingInterval: "1" }, { pingTimeout: -1 }, { rooms: "ab" }, { rooms: ["a\n"] }]) {
    assert.ok(openProblem({ ...open, ...bad }), JSON.stringify(bad));
  }
  assert.equal(recoveryProblem({ recovered: true, complete: false, replayed: 2, gaps: [{ room: "r", after: "1-1" }, { room: "*", after: null }] }), null);
  for (const bad of [{ complete: "false" }, { replayed: "2" }, { replayed: -1 }, { gaps: {} }, { gaps: [{ room: 7 }] }, { gaps: [{ room: "r", after: 3 }] }]) {
    assert.ok(recoveryProblem({ recovered: true, complete: true, replayed: 0, gaps: [], ...bad }), JSON.stringify(bad));
  }
  assert.ok(isCursor("S:K;") && isCursor("S:K;lobby=1-2,*=3-4"));
  for (const bad of ["S:K", "S;", ":K;", "S:K;lobby", "S:K;lobby=x", "S:K;invite-42\n=1-1", "S:K;a=1-1,", "S:K;=1-1"]) {
    assert.ok(!isCursor(bad), bad);
  }
});

test("acks: a result, a typed refusal, or a malformed answer", () => {
  assert.deepEqual(unwrapAck({ ok: true, result: { room: "r", offset: "1-1" } }), { room: "r", offset: "1-1" });
  assert.throws(
    () => unwrapAck({ ok: false, error: { code: "not_joined", message: "join first" } }),
    (e) => e instanceof GatewayError && e instanceof Error && e.code === "not_joined" && e.fromServer,
  );
  assert.throws(() => unwrapAck("yes"), (e) => e.code === "malformed_frame");
});

test("client event ids are 128 random bits, URL-safe", () => {
  const ids = new Set(Array.from({ length: 1000 }, randomId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{22}$/);
});

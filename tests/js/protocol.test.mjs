// Unit tests of rtgateway-protocol.js, the JavaScript client's pure pieces (node --test).
// RTGW_PROTOCOL is the module's path (tests/test_js_protocol.py sets it).
import assert from "node:assert/strict";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const {
  GatewayError, SseParser, compareOffsets, envelopeProblem, parseOffset, randomId, unwrapAck,
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

test("the parser refuses an endless line instead of growing forever", () => {
  const parser = new SseParser();
  assert.throws(() => parser.push("data: " + "x".repeat(4 * 1024 * 1024 + 1)), (e) => e.code === "malformed_frame");
});

test("envelopes are checked before delivery", () => {
  assert.equal(envelopeProblem({ event: "message", room: "lobby", offset: "1-1", data: null }), null);
  assert.match(envelopeProblem({ event: "message", room: "lobby" }), /offset/);
  assert.match(envelopeProblem([1]), /object/);
  assert.match(envelopeProblem({ room: "lobby", offset: "1-1" }), /event/);
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

// Socket.IO connection-state recovery with the unmodified official socket.io-client
// (default options): a receiver in a room has its engine cut mid-burst while a publisher
// keeps publishing. Shared by tests/js/sio_recovery.mjs (Node) and the Chromium test
// (tests/test_sio_recovery.py evaluates this file in a page), hence no import/export.
//
// Config: url, namespace, room, total, cutAfter, resumeAt (wait for the reconnect before
// publishing that one), mode "cut" | "gap" | "wrongpid", reconnectUrl (reconnect to
// another node), publisherUrl, auth. Returns what the receiver saw.
async function recoveryScenario(io, c) {
  const deadline = Date.now() + (c.wait ?? 20000);
  const until = async (check, what) => {
    while (!check()) {
      if (Date.now() > deadline) {
        const seen = { ...out, data: out.data.length, last: out.data.slice(-3), marks: out.marks.slice(-3) };
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify(seen)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  const out = { connects: [], openSids: [], data: [], marks: [], argCounts: [], recoveries: [] };
  const receiver = io(c.url + c.namespace, { auth: c.auth ?? {} });
  const publisher = io((c.publisherUrl ?? c.url) + c.namespace, { forceNew: true });
  let cut = false;
  receiver.on("connect", () => {
    out.connects.push({ id: receiver.id, recovered: receiver.recovered ?? null, pid: receiver._pid != null });
  });
  receiver.on("open", (info) => out.openSids.push(info.sid));
  receiver.on("recovery", (report) => out.recoveries.push(report));
  receiver.on("message", (envelope, ...rest) => {
    out.data.push(envelope.data);
    out.marks.push(rest.length ? rest[rest.length - 1] : null);
    out.argCounts.push(1 + rest.length);
    if (!cut && out.data.length === c.cutAfter) {
      cut = true;
      // A client that presents another session's public id as its pid (the victim's).
      if (c.mode === "wrongpid") receiver._pid = publisher.id;
      if (c.reconnectUrl) receiver.io.uri = c.reconnectUrl + c.namespace;
      receiver.io.engine.close(); // the transport goes, the Socket.IO client reconnects
    }
  });
  const ok = (ack, what) => {
    if (!ack || !ack.ok) throw new Error(`${what} failed: ${JSON.stringify(ack)}`);
    return ack.result;
  };
  await until(() => out.openSids.length >= 1 && publisher.connected, "both connected");
  ok(await receiver.emitWithAck("join", { room: c.room }), "join");
  ok(await publisher.emitWithAck("join", { room: c.room }), "publisher join");
  const publisherId = publisher.id;
  const publish = async (data) =>
    ok(await publisher.emitWithAck("publish", { room: c.room, event: "message", data }), "publish");
  for (let i = 0; i < c.total; i++) {
    if (i === c.resumeAt) {
      if (c.mode === "gap") await until(() => cut && !receiver.connected, "the cut");
      else await until(() => out.connects.length >= 2, "the reconnect");
    }
    await publish(i);
  }
  if (c.mode === "cut") {
    await publish("end"); // everything before it was received once, in order, when it arrives
    await until(() => out.data.includes("end"), "the last event");
  } else {
    await until(() => out.connects.length >= 2 && (c.mode === "wrongpid" || out.recoveries.length), "the new session");
    await publish("after"); // the victim (the publisher) still works
  }
  out.publisher = { idBefore: publisherId, idAfter: publisher.id, connected: publisher.connected };
  receiver.disconnect();
  publisher.disconnect();
  return out;
}

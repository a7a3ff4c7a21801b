// The demo page: a chat on /chat over the transport the visitor picks (auto by default),
// showing what the client does underneath (state, transport in use and every move between
// transports, acks, reconnects, recovery, and which messages came as a resume's replay).
// With the admin password (the gateway's GATEWAY_ADMIN_TOKEN), the page trades it for a
// short-lived JWT at POST /demo/token before every connection attempt: that token unlocks
// `private:` rooms, and a fresh one is fetched when the gateway closes with token_expired.
import { GatewayError, connect, socketIOAvailable } from "./rtgateway.js";
import { problemError } from "./rtgateway-protocol.js";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const form = $("connect-form");
const composer = $("send-form");
const messages = $("messages");
let client = null;
const TABS_HELP = "the README, “Many tabs in one browser”";
const own = new Map(); // clientEventId -> the row of a message this page sent

function logEvent(text, kind = "") {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, " ", text);
  const log = $("log");
  log.prepend(item);
  while (log.children.length > 60) log.lastChild.remove();
}

function messageRow({ name, text, mine, ts }) {
  const row = document.createElement("li");
  row.dataset.testid = "message";
  row.dataset.own = String(mine);
  row.className = mine ? "mine" : "theirs";
  const who = document.createElement("span");
  who.className = "who";
  who.dataset.testid = "sender";
  who.textContent = mine ? `${name} (you)` : name;
  const body = document.createElement("span");
  body.className = "text";
  body.dataset.testid = "message-text";
  body.textContent = text;
  const meta = document.createElement("span");
  meta.className = "meta";
  const time = document.createElement("time");
  time.textContent = new Date(ts ?? Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  meta.append(time);
  if (mine) {
    const status = document.createElement("span");
    status.dataset.testid = "status";
    status.className = "pending";
    status.title = "waiting for the gateway's ack";
    status.textContent = "…";
    meta.append(status);
  }
  row.append(who, body, meta);
  messages.append(row);
  $("empty").hidden = true;
  messages.scrollTop = messages.scrollHeight;
  return row;
}

function setStatus(row, status, title) {
  const mark = row.querySelector('[data-testid="status"]');
  row.dataset.status = status;
  mark.className = status;
  mark.textContent = { acked: "✓", pending: "…", failed: "✕" }[status];
  mark.title = title;
}

function show(id, text) {
  $(id).textContent = text;
}

function setConnected(connected) {
  for (const el of form.querySelectorAll("input, [data-testid=connect]")) el.disabled = connected || el.dataset.unavailable === "true";
  $("leave").disabled = !connected;
  $("text").disabled = $("send").disabled = !connected;
}

function adminNotice(text) {
  $("admin-notice").textContent = text ?? "";
  $("admin-notice").hidden = !text;
}

/** Trade the admin password for a JWT; a refusal is a GatewayError with the gateway's message. */
async function adminToken(password) {
  let response;
  try {
    response = await fetch("/demo/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ password }),
      cache: "no-store",
    });
  } catch (err) {
    throw new GatewayError("network_error", `cannot reach /demo/token: ${err.message}`);
  }
  if (!response.ok) throw await problemError(response);
  const body = await response.json().catch(() => null);
  if (typeof body?.token !== "string") throw new GatewayError("malformed_frame", "/demo/token answered without a token", {}, true);
  return body.token;
}

function start(transport, name, room, password) {
  own.clear();
  messages.replaceChildren();
  $("empty").hidden = false;
  show("room-title", room);
  adminNotice(null);
  // Called before every connection attempt: a refusal (403 admin disabled, 401 wrong
  // password) ends the client, and its message says why.
  const token = password
    ? () => adminToken(password).catch((err) => {
        if (err.fromServer) adminNotice(err.message);
        throw err;
      })
    : undefined;
  client = connect({ namespace: "/chat", transport, name, token });
  const transports = []; // every transport the session was carried by, in order
  window.rtgw = { client, room, transports }; // for the browser tests and the curious
  setConnected(true);

  client.on("state", (state) => {
    const badge = $("state");
    badge.textContent = state;
    badge.dataset.state = state;
    $("drop").disabled = $("offline").disabled = state !== "open";
    show("reconnects", String(client.reconnects));
    if (state === "open") {
      show("sid", client.sid);
      show("role", password ? "admin" : "guest");
    }
    logEvent(`state: ${state}`, state === "open" ? "ok" : state === "closed" ? "bad" : "");
    if (state === "closed") setConnected(false);
  });
  client.on("transport", (name) => {
    const from = transports.at(-1);
    transports.push(name);
    show("transport-in-use", name);
    show("transport-history", transports.join(" → "));
    if (!from) logEvent(`transport: ${name}`, "ok");
    else if (client.state === "open") logEvent(`moved ${from} → ${name}: same session, nothing lost or repeated`, "ok");
    else logEvent(`transport: ${name} (was ${from})`);
  });
  // auto: what it tries on this network and what it learns.
  client.on("attempt", ({ transport: tried, outcome, detail }) => {
    if (outcome === "probing") logEvent(`trying ${tried} beside the session`);
    else if (outcome === "failed") logEvent(`${tried} failed here (${detail ?? "?"}); remembered for this network for a while`, "warn");
    else if (outcome === "buffered") logEvent("a proxy holds the SSE stream back: polling instead", "warn");
    else if (outcome === "abandoned") logEvent(`${tried} given up (${detail}): starting on WebSocket`, "warn");
  });
  client.on("reconnect", ({ attempt, delay, reason }) => {
    show("reconnects", String(attempt));
    logEvent(`reconnect #${attempt} in ${Math.round(delay)} ms (${reason?.message ?? "lost"})`, "warn");
  });
  client.on("recovery", ({ complete, replayed, gaps }) => {
    const el = $("recovery");
    el.dataset.complete = String(complete);
    el.className = complete ? "ok" : "bad";
    el.textContent = complete
      ? `complete · ${replayed} replayed`
      : `incomplete · gap in ${gaps.map((g) => g.room).join(", ")}`;
    logEvent(`recovery: ${complete ? "complete" : "INCOMPLETE"}, ${replayed} replayed`, complete ? "ok" : "bad");
  });
  client.on("gap", ({ room: where, after }) => logEvent(`gap in ${where} after ${after ?? "the start"}: some messages are lost`, "bad"));
  client.on("error", (err) => logEvent(`error ${err.code}: ${err.message}`, "bad"));
  // The client's word that a connection or request is waiting: on HTTP/1.1, most likely the
  // browser's six connections per host, all held by this origin's other tabs.
  client.on("stalled", ({ what, waited, cause, protocol }) => {
    const text = cause === "connection_limit"
      ? `too many tabs on HTTP/1.1 — see ${TABS_HELP}: the browser's six connections to this site are all in use, so this tab's ${what} waits (${Math.round(waited / 1000)} s so far)`
      : `the gateway has not answered this tab's ${what} for ${Math.round(waited / 1000)} s (${protocol ?? "HTTP"})`;
    $("stall-notice").textContent = text;
    $("stall-notice").hidden = false;
    logEvent(text, "warn");
  });
  client.on("unstalled", ({ what, waited }) => {
    $("stall-notice").hidden = true;
    logEvent(`${what} answered after ${Math.round(waited / 1000)} s`, "ok");
  });

  client.on("pending", ({ kind, clientEventId, data }) => {
    if (kind === "publish") own.set(clientEventId, messageRow({ name, text: data.text, mine: true }));
  });
  client.on("acked", ({ clientEventId, result }) => {
    const row = own.get(clientEventId);
    if (row) setStatus(row, "acked", `acknowledged: offset ${result.offset}`);
  });
  client.on("failed", ({ clientEventId, error }) => {
    const row = own.get(clientEventId);
    if (row) setStatus(row, "failed", `refused: ${error.code}`);
  });

  client.on("message", (envelope, { replayed } = {}) => {
    const data = envelope.data ?? {};
    const text = typeof data.text === "string" ? data.text : JSON.stringify(data);
    const sender = typeof data.name === "string" ? data.name : envelope.sender ?? "server";
    const row = messageRow({ name: sender, text, mine: false, ts: envelope.ts });
    row.dataset.offset = envelope.offset;
    row.title = `offset ${envelope.offset}`;
    if (replayed) {
      // Sent while this page was away: it came in the resume's replay, before the recovery frame.
      row.dataset.replayed = "true";
      const badge = document.createElement("span");
      badge.className = "replayed-badge";
      badge.dataset.testid = "replayed";
      badge.textContent = "replayed";
      badge.title = "missed while offline; delivered by the resume's replay";
      row.querySelector(".meta").prepend(badge, " ");
    }
  });

  client.join(room).then(
    () => logEvent(`joined ${room}`, "ok"),
    (err) => logEvent(`cannot join ${room}: ${err.code}`, "bad"),
  );
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const fields = new FormData(form);
  start(fields.get("transport"), fields.get("name").trim(), fields.get("room").trim(), fields.get("password"));
});

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || !client) return;
  const { room } = window.rtgw;
  client.publish(room, { name: form.elements.name.value.trim(), text }).catch(() => {}); // shown by "failed"
  input.value = "";
  input.focus();
});

$("drop").addEventListener("click", () => {
  logEvent("dropping the connection (the session stays)", "warn");
  client?.drop();
});

$("offline").addEventListener("click", () => {
  const seconds = Math.min(120, Math.max(1, Number($("offline-seconds").value) || 5));
  logEvent(`offline for ${seconds} s: what is said meanwhile comes back as a replay`, "warn");
  client?.drop({ offlineFor: seconds * 1000 });
});

$("leave").addEventListener("click", async () => {
  await client?.close();
  client = null;
  setConnected(false);
});

// Prefill from the address: /?transport=sse&name=Ada&room=lobby
const params = new URLSearchParams(location.search);
if (params.get("name")) form.elements.name.value = params.get("name");
if (params.get("room")) form.elements.room.value = params.get("room");
if (!form.elements.name.value) form.elements.name.value = `guest-${Math.floor(Math.random() * 900 + 100)}`;

// Socket.IO needs socket.io-client, served from node_modules when `npm ci` was run.
const wanted = params.get("transport");
if (!(await socketIOAvailable())) {
  for (const id of ["transport-socketio", "transport-socketio-polling"]) {
    $(id).disabled = true;
    $(id).dataset.unavailable = "true";
  }
  $("transport-sse").checked = true; // what auto would end on anyway, said plainly
  $("sio-notice").hidden = false;
} else if (wanted && form.querySelector(`input[value="${CSS.escape(wanted)}"]`)) {
  form.querySelector(`input[value="${CSS.escape(wanted)}"]`).checked = true;
}
document.body.dataset.ready = "true";

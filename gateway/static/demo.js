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
const present = new Map(); // sid -> member ({sid, user, claims}) of the room, as presence says

function showPresence() {
  const list = $("presence");
  const mine = client?.sid;
  const rows = [...present.values()].sort((a, b) => nameOf(a).localeCompare(nameOf(b)) || a.sid.localeCompare(b.sid));
  list.replaceChildren(...rows.map((member) => {
    const item = document.createElement("li");
    item.dataset.testid = "present";
    item.dataset.sid = member.sid;
    item.textContent = member.sid === mine ? `${nameOf(member)} (you)` : nameOf(member);
    item.title = `session ${member.sid}`;
    return item;
  }));
  show("presence-count", String(present.size));
}

const nameOf = (member) => (typeof member.claims?.name === "string" ? member.claims.name : member.user ?? member.sid.slice(0, 6));

/** The room's members, every page; then the join/leave events keep the list up to date. */
async function loadPresence(room) {
  const members = new Map();
  let cursor;
  do {
    const page = await client.presence(room, { cursor });
    for (const member of page.members) members.set(member.sid, member);
    cursor = page.next;
  } while (cursor);
  present.clear();
  for (const [sid, member] of members) present.set(sid, member);
  showPresence();
}

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

// A file travels inside a publish as bytes: base64 on SSE (POST and stream) and in Socket.IO
// long-polling, where Engine.IO bounds the whole request by maxPayload. So a file may take three
// quarters of the gateway's maxPayload (from its open frame), less room for the message around
// it: one limit that holds on every transport this page offers.
const FILE_MESSAGE_ROOM = 4096;
const FILES_KEPT = 50; // download links kept alive (Blob URLs hold their bytes); older ones are released
const fileLinks = [];
const fileLimit = () => Math.max(0, Math.floor((client.info.maxPayload * 3) / 4) - FILE_MESSAGE_ROOM);

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Why `file` cannot be sent here, or null. */
function fileRefusal(file) {
  if (!client?.info) return "Connect first: the gateway's size limit comes with the connection.";
  const limit = fileLimit();
  if (file.size <= limit) return null;
  return `“${file.name}” is ${formatSize(file.size)}: this gateway takes files up to ${formatSize(limit)} ` +
    `(three quarters of its maxPayload of ${formatSize(client.info.maxPayload)}, as SSE and Socket.IO polling carry bytes as base64).`;
}

function fileNotice(text) {
  $("file-notice").textContent = text ?? "";
  $("file-notice").hidden = !text;
}

function releaseFiles(keep = 0) {
  while (fileLinks.length > keep) {
    const link = fileLinks.shift();
    URL.revokeObjectURL(link.href);
    link.removeAttribute("href");
    link.title = `released: this page keeps the last ${FILES_KEPT} files`;
  }
}

/** A file message's data ({name, type, size, bytes}) as a download link and its size; null if it is not one. */
function fileParts(data) {
  const { bytes } = data;
  if (typeof data.name !== "string" || !(bytes instanceof ArrayBuffer || ArrayBuffer.isView(bytes))) return null;
  const blob = new Blob([bytes], { type: typeof data.type === "string" ? data.type : "" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = data.name;
  link.dataset.testid = "file-link";
  link.textContent = data.name;
  fileLinks.push(link);
  releaseFiles(FILES_KEPT);
  const size = document.createElement("span");
  size.className = "size";
  size.dataset.testid = "file-size";
  size.dataset.bytes = String(blob.size);
  size.textContent = ` · ${formatSize(blob.size)}`;
  return [link, size];
}

function messageRow({ name, text, file = null, mine, ts }) {
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
  const parts = file && fileParts(file);
  if (parts) {
    body.classList.add("file");
    body.dataset.testid = "message-file";
    body.append(...parts);
  } else body.textContent = text;
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
  $("file").disabled = $("send-file").disabled = !connected;
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
  present.clear();
  showPresence();
  messages.replaceChildren();
  releaseFiles();
  fileNotice(null);
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
  client = connect({ namespace: "/chat", transport, name, token, ...(share === undefined ? {} : { share }) });
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
      show("file-limit", `up to ${formatSize(fileLimit())} a file`);
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
  // Announcements are hints: a resume may have missed some, so the list is read again then.
  client.on("presence.join", ({ room: where, members }) => {
    if (where !== room) return;
    for (const member of members) present.set(member.sid, member);
    showPresence();
    logEvent(`joined ${room}: ${members.map(nameOf).join(", ")}`);
  });
  client.on("presence.leave", ({ room: where, members }) => {
    if (where !== room) return;
    for (const member of members) present.delete(member.sid);
    showPresence();
    logEvent(`left ${room}: ${members.map(nameOf).join(", ")}`);
  });
  client.on("recovery", () => {
    loadPresence(room).catch((err) => logEvent(`presence: ${err.code}`, "bad"));
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

  client.on("pending", ({ kind, event, clientEventId, data }) => {
    if (kind === "publish") own.set(clientEventId, messageRow({ name, text: data.text, file: event === "file" ? data : null, mine: true }));
  });
  client.on("acked", ({ clientEventId, result }) => {
    const row = own.get(clientEventId);
    if (row) setStatus(row, "acked", `acknowledged: offset ${result.offset}`);
  });
  client.on("failed", ({ clientEventId, error }) => {
    const row = own.get(clientEventId);
    if (row) setStatus(row, "failed", `refused: ${error.code}`);
  });

  // Chat lines are "message" events {name, text}; files are "file" events {name, type, size, bytes, from}.
  const received = (envelope, { replayed } = {}) => {
    const data = envelope.data ?? {};
    const file = envelope.event === "file" ? data : null;
    const text = typeof data.text === "string" ? data.text : JSON.stringify(data);
    const said = file ? data.from : data.name;
    const sender = typeof said === "string" ? said : envelope.sender ?? "server";
    const row = messageRow({ name: sender, text, file, mine: false, ts: envelope.ts });
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
  };
  client.on("message", received);
  client.on("file", received);

  client.join(room).then(
    () => {
      logEvent(`joined ${room}`, "ok");
      return loadPresence(room).catch((err) => logEvent(`presence: ${err.code}`, "bad"));
    },
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

$("file").addEventListener("change", () => {
  const [file] = $("file").files;
  fileNotice(file ? fileRefusal(file) : null);
});

$("file-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("file");
  const [file] = input.files;
  if (!file || !client) return;
  const refusal = fileRefusal(file);
  fileNotice(refusal);
  if (refusal) return;
  const target = client;
  const { room } = window.rtgw;
  input.value = "";
  const bytes = await file.arrayBuffer();
  const data = { name: file.name, type: file.type, size: file.size, bytes, from: form.elements.name.value.trim() };
  target.publish(room, data, { event: "file" }).catch(() => {}); // shown by "failed"
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
  present.clear();
  showPresence();
  setConnected(false);
});

// Prefill from the address: /?transport=sse&name=Ada&room=lobby
const params = new URLSearchParams(location.search);
// ?share=false: this tab's own stream; ?share=leader: shared through a leader tab, not a
// SharedWorker; ?share=true or nothing: the client's default (connect()'s `share`).
const share = new Map([["true", true], ["false", false], ["leader", "leader"]]).get(params.get("share"));
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

// The operator view (/admin/ui): asks for GATEWAY_ADMIN_TOKEN, keeps it in this tab's
// sessionStorage, and polls GET /admin/api/overview once a second. Every figure comes
// from the gateway's own snapshots of its /metrics (gateway/overview.py). Room names
// and other figures are written as text (textContent), never as markup.

const STORAGE_KEY = "rtgateway.adminToken";
const PERIOD_MS = 1000;
const TIMEOUT_MS = 5000;
const HISTORY = 120; // sparkline points: two minutes at one a second

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const history = [];
let timer = null;
let generation = 0; // bumped on sign-in and sign-out: a poll of an older one stops

function token() {
  return sessionStorage.getItem(STORAGE_KEY);
}

function showLogin(message) {
  clearTimeout(timer);
  timer = null;
  $("view").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setStatus("Not signed in.", false);
}

function showView() {
  $("login").hidden = true;
  $("view").hidden = false;
}

function setStatus(text, bad) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("bad", bad);
}

const integer = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });

function count(value) {
  return integer.format(value || 0);
}

function rate(value) {
  return decimal.format(value || 0);
}

function duration(seconds) {
  if (seconds < 120) return `${decimal.format(seconds)} s`;
  if (seconds < 7200) return `${integer.format(seconds / 60)} min`;
  return `${decimal.format(seconds / 3600)} h`;
}

function sum(values) {
  return Object.values(values || {}).reduce((a, b) => a + b, 0);
}

// Replace a table's rows; each row is a list of [text, className?] cells.
function fillTable(id, rows, emptyText) {
  const body = $(id).querySelector("tbody");
  const fresh = document.createElement("tbody");
  if (rows.length === 0) {
    const cell = document.createElement("td");
    cell.colSpan = $(id).querySelectorAll("th").length;
    cell.className = "empty";
    cell.textContent = emptyText;
    fresh.append(document.createElement("tr"));
    fresh.firstChild.append(cell);
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const [text, className] of row) {
      const td = document.createElement("td");
      td.textContent = text;
      if (className) td.className = className;
      tr.append(td);
    }
    fresh.append(tr);
  }
  body.replaceWith(fresh);
}

function byCount(entries) {
  return Object.entries(entries || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

function drawSpark(value) {
  history.push(value);
  if (history.length > HISTORY) history.shift();
  const top = Math.max(1, ...history);
  const step = 240 / (HISTORY - 1);
  const offset = HISTORY - history.length;
  const points = history.map((v, i) => `${((offset + i) * step).toFixed(1)},${(38 - (v / top) * 36).toFixed(1)}`);
  $("spark").querySelector("polyline").setAttribute("points", points.join(" "));
  $("spark").setAttribute("aria-label", `deliveries per second, latest ${rate(value)}, peak ${rate(top)}`);
}

function render(o) {
  const sessions = o.sessions || {};
  const rates = o.rates || {};
  const counters = o.counters || {};
  $("sessions-connected").textContent = count(sessions.connected);
  $("sessions-detached").textContent = count(sessions.detached);
  $("connections").textContent = count(o.nodes.reduce((a, n) => a + n.connections, 0));
  $("rate-delivered").textContent = rate(rates.delivered);
  $("rate-published").textContent = rate(rates.published);
  $("rate-dropped").textContent = rate(rates.dropped);
  $("rate-rejected").textContent = rate(rates.rejected);
  $("slow-consumers").textContent = count((counters.dropped || {}).slow_consumer);
  $("recovery-gaps").textContent = count((counters.events || {}).gaps);
  drawSpark(rates.delivered || 0);

  fillTable("nodes", o.nodes.map((n) => [
    [n.node + (n.node === o.node ? " (this)" : "")],
    [n.broker],
    [n.ready ? "yes" : "no", n.ready ? "ok" : "bad"],
    [count(n.sessions), "num"],
    [count(n.connections), "num"],
    [count(n.rooms), "num"],
    [rate(n.deliveredPerSecond), "num"],
    [duration(n.uptime)],
    [duration(n.age)],
  ]), "no node has reported yet");

  const sessionRows = [];
  for (const [namespace, transports] of Object.entries(o.byNamespace || {}).sort()) {
    for (const [transport, n] of byCount(transports)) {
      if (n > 0) sessionRows.push([[namespace], [transport], [count(n), "num"]]);
    }
  }
  fillTable("sessions", sessionRows, "no live session");
  fillTable("rooms", o.rooms.top.map((r) => [[r.namespace], [r.room], [count(r.size), "num"]]),
    "no room has live members");
  fillTable("drops", byCount(counters.dropped).map(([k, v]) => [[k], [count(v), "num"]]), "none");
  fillTable("rejections", byCount(counters.rejected).map(([k, v]) => [[k], [count(v), "num"]]), "none");
  fillTable("limited", byCount(counters.limited).map(([k, v]) => [[k], [count(v), "num"]]), "none");

  const nodes = o.nodes.length;
  const skipped = o.incompatibleNodes ? `, ${o.incompatibleNodes} of another version not shown` : "";
  const partial = o.partial ? " · the broker is unreachable: this node only" : "";
  setStatus(`${nodes} node${nodes === 1 ? "" : "s"}${skipped} · ${count(sum(o.byTransport))} live sessions · ` +
    `updated ${new Date(o.at * 1000).toLocaleTimeString()}${partial}`, Boolean(o.partial));
}

async function poll(mine) {
  timer = null;
  const current = token();
  if (!current) return showLogin();
  let response;
  let body;
  try {
    response = await fetch("/admin/api/overview", {
      headers: { Authorization: `Bearer ${current}` },
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    body = await response.json();
  } catch (error) {
    if (mine !== generation) return;
    setStatus(`The gateway did not answer (${error.name}); retrying.`, true);
    timer = setTimeout(poll, PERIOD_MS, mine);
    return;
  }
  if (mine !== generation) return; // signed out or in again meanwhile
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(STORAGE_KEY);
    return showLogin(body.detail || `refused (${response.status})`);
  }
  if (response.ok) {
    showView();
    render(body);
  } else {
    setStatus(`The overview failed: ${body.detail || response.status}; retrying.`, true);
  }
  timer = setTimeout(poll, PERIOD_MS, mine);
}

function restart() {
  generation += 1;
  clearTimeout(timer);
  history.length = 0;
  poll(generation);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(STORAGE_KEY, value);
  $("token").value = "";
  $("login-error").textContent = "";
  restart();
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(STORAGE_KEY);
  generation += 1;
  showLogin();
});

if (token()) restart();

// The tray-alerts dashboard: asks /dashboard/api/state every 2 s and shows it (the monitors with a chart of their
// last day, drawn here as SVG); Acknowledge, Mute 1 h and Clear
// post to /dashboard/api/alerts/EVENT/ack|mute|clear. Text is always set as text (never parsed as HTML), and the
// elements of an alert stay in place between updates, so a focused button keeps its focus.
"use strict";

const POLL_MS = 2000;
const OUTBOX_LABELS = ["Channel", "Event", "What", "Why it waits", "Tries", "Next try"];
const $ = (id) => document.getElementById(id);
const alertItems = new Map();  // event -> {node, data}
const incidentItems = new Map();  // event -> {node, data}
const monitorItems = new Map();  // monitor -> {node, data}
const SVG = "http://www.w3.org/2000/svg";
const CHART_W = 300, CHART_H = 56, CHART_PAD = 4;
let stopped = false;
let timer = null;
let focusPending = new URLSearchParams(location.hash.slice(1)).get("alert");  // opened at one alert (#alert=NAME)

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

function clock(seconds, now) {
  const moment = new Date(seconds * 1000);
  const time = moment.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  if (sameDay(moment, new Date(now * 1000))) return time;
  return moment.toLocaleDateString([], {month: "short", day: "numeric"}) + " " + time.slice(0, 5);
}

function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds < 60) return seconds + " s";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return minutes + " min";
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
  const days = Math.floor(hours / 24);
  return days + " d" + (hours % 24 ? " " + (hours % 24) + " h" : "");
}

function showProblem(text) {
  const problem = $("problem");
  problem.hidden = !text;
  problem.textContent = text || "";
}

async function act(event, action, button) {
  button.disabled = true;
  try {
    const response = await fetch("/dashboard/api/alerts/" + encodeURIComponent(event) + "/" + action,
                                 {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) showProblem(event + ": " + (answer.error || ("HTTP " + response.status)));
    else showProblem("");
  } catch (error) {
    showProblem("The app did not answer: " + error.message);
  }
  button.disabled = false;
  refresh();
}

function alertButton(event, action, label) {
  const button = el("button", "action-" + action, label);
  button.type = "button";
  button.dataset.action = action;
  button.addEventListener("click", () => act(event, action, button));
  return button;
}

// A card of the alerts or monitors list: its key in data-KEY, a head line of level, name and one more span.
function newCard(key, name, headClass, extraClass) {
  const li = el("li");
  li.dataset[key] = name;
  const head = el("div", headClass);
  head.append(el("span", "level"), el("span", "event", name), el("span", extraClass));
  li.append(head);
  return li;
}

function newAlertItem(event) {
  const li = newCard("event", event, "alert-head", "badges");
  const actions = el("div", "actions");
  actions.append(alertButton(event, "ack", "Acknowledge"), alertButton(event, "mute", "Mute 1 h"),
                 alertButton(event, "clear", "Clear"));
  li.append(el("p", "message"), el("p", "meta"), el("p", "context"), actions);
  return li;
}

function fillAlert(li, alert, now) {
  li.className = "level-" + alert.level;
  li.querySelector(".level").textContent = alert.level;
  const badges = li.querySelector(".badges");
  badges.replaceChildren();
  if (alert.acknowledged) badges.append(el("span", "badge", "acknowledged " + clock(alert.acknowledged_at, now)));
  if (alert.muted_until) badges.append(el("span", "badge", "muted until " + clock(alert.muted_until, now)));
  if (alert.inhibited_by) badges.append(el("span", "badge", "inhibited by " + alert.inhibited_by));
  li.querySelector(".message").textContent = alert.message;
  li.querySelector(".meta").textContent = "since " + clock(alert.since, now) + " (" + duration(now - alert.since) +
    ") · seen " + alert.seen + (alert.seen === 1 ? " time" : " times") + " · last " + clock(alert.last_seen, now);
  const context = Object.entries(alert.context || {}).map(([key, value]) => key + "=" + value).join("  ");
  const contextLine = li.querySelector(".context");
  contextLine.textContent = context;
  contextLine.hidden = !context;
  const ack = li.querySelector(".action-ack");
  ack.textContent = alert.acknowledged ? "Acknowledged" : "Acknowledge";
  ack.disabled = Boolean(alert.acknowledged);
  for (const button of li.querySelectorAll("button")) button.setAttribute("aria-label",
    button.textContent + ": " + alert.event);
}

// Keep one element per key in `container`, in the order of `things`: made once (make), refilled when its data
// changed (fill), moved only when out of place (a focused button or an open <details> stays as it is).
function reconcile(container, items, things, keyOf, make, fill) {
  const seen = new Set();
  let previous = null;
  for (const thing of things) {
    const name = keyOf(thing);
    seen.add(name);
    let item = items.get(name);
    if (!item) {
      item = {node: make(name), data: ""};
      items.set(name, item);
    }
    const data = JSON.stringify(thing);
    if (item.data !== data) {
      fill(item.node, thing);
      item.data = data;
    }
    const wanted = previous ? previous.nextSibling : container.firstChild;
    if (wanted !== item.node) container.insertBefore(item.node, wanted);
    previous = item.node;
  }
  for (const [name, item] of items) {
    if (!seen.has(name)) {
      item.node.remove();
      items.delete(name);
    }
  }
}

function renderAlerts(state) {
  const minute = Math.floor(state.now / 60);  // "since … (12 min)" moves on once a minute
  reconcile($("alerts"), alertItems, state.alerts.map((alert) => ({alert, minute})), (shown) => shown.alert.event,
            newAlertItem, (li, shown) => fillAlert(li, shown.alert, state.now));
  $("alerts-empty").hidden = state.alerts.length > 0;
  $("alerts-count").textContent = state.alerts_total ? "(" + state.alerts_total +
    (state.alerts_total > state.alerts.length ? ", the worst " + state.alerts.length + " shown" : "") + ")" : "";
}

function timelineLine(line, now) {
  const li = el("li");
  li.append(el("span", "when", clock(line.at, now)));
  if (line.channel) {
    const result = line.ok === true ? "delivered" : line.ok === false ? "failed" : "";
    li.append(el("span", "delivery", "→ " + line.channel + ": "));
    if (result) li.append(el("span", line.ok ? "good" : "bad", result));
    if (line.detail) li.append(el("span", "delivery", (result ? " — " : "") + line.detail));
    if (line.kind !== "delivery") li.append(el("span", "delivery", " (" + line.kind + ")"));
  } else {
    li.append(el("span", "kind", line.kind), el("span", "", line.level + " · " + line.message));
    if (line.detail) li.append(el("span", "delivery", " — " + line.detail));
  }
  return li;
}

function newIncident(event) {
  const details = el("details");
  details.dataset.event = event;
  const summary = el("summary");
  summary.append(el("span", "event", event), el("span", "state"));
  details.append(summary, el("ol", "timeline"));
  return details;
}

function fillIncident(details, incident, now) {
  const changes = incident.lines.filter((line) => !line.channel);
  const last = changes.length ? changes[changes.length - 1] : null;
  details.querySelector(".state").textContent = (incident.active ? "active" : "cleared") +
    (last ? " · " + last.kind + " " + clock(last.at, now) : "");
  details.querySelector("ol").replaceChildren(...incident.lines.map((line) => timelineLine(line, now)));
}

function renderIncidents(state) {
  reconcile($("incidents"), incidentItems, state.incidents, (incident) => incident.event, newIncident,
            (details, incident) => fillIncident(details, incident, state.now));
  $("incidents-empty").hidden = state.incidents.length > 0;
}

function renderOutbox(state) {
  const table = $("outbox");
  const rows = state.outbox.map((row) => {
    const tr = el("tr");
    tr.dataset.id = row.id;
    const next = row.next_try && row.next_try > state.now ?
      clock(row.next_try, state.now) + " (in " + duration(row.next_try - state.now) + ")" : "now";
    const cells = [row.channel + (row.recipient ? " (" + row.recipient + ")" : ""), row.event,
                   row.kind + " · " + row.level, row.why, row.attempts, next];
    cells.forEach((text, index) => {
      const td = el("td", "", text);
      td.dataset.label = OUTBOX_LABELS[index];  // shown before the value where the table is too narrow
      tr.append(td);
    });
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  $("outbox-empty").hidden = rows.length > 0;
  $("outbox-count").textContent = state.outbox_total ? "(" + state.outbox_total +
    (state.outbox_total > rows.length ? ", the oldest " + rows.length + " shown" : "") + ")" : "";
}

function renderChannels(state) {
  $("channels").replaceChildren(...state.channels.map((channel) => {
    const li = el("li");
    li.dataset.channel = channel.name;
    const tone = channel.ok === false ? "bad" : channel.ok === true ? "good" : "";
    li.append(el("span", "channel-name", channel.name), el("span", "channel-state " + tone, channel.state));
    return li;
  }));
}

function number(value) {
  return value === null || value === undefined ? "—" : String(Number(value.toPrecision(4)));
}

function share(part) {
  return part === null || part === undefined ? "—" : (100 * part).toFixed(1) + " %";
}

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// A day of readings as a line (a gap where there were none) and each bad moment as a red tick at the bottom.
function chart(monitor, now) {
  const values = monitor.points.filter((point) => point[1] !== null).map((point) => point[1]);
  const low = Math.min(...values), high = Math.max(...values);
  const span = high - low || Math.abs(high) || 1;
  const x = (at) => CHART_PAD + (CHART_W - 2 * CHART_PAD) * (1 - (now - at) / 86400);
  const y = (value) => high === low ? CHART_H / 2 :
    CHART_H - CHART_PAD - (CHART_H - 2 * CHART_PAD) * (value - low) / span;
  const figure = svg("svg", {viewBox: "0 0 " + CHART_W + " " + CHART_H, class: "chart", role: "img",
                             preserveAspectRatio: "none"});
  const title = svg("title", {});
  title.textContent = monitor.name + " over the last 24 h: low " + number(monitor.low) + ", high " +
    number(monitor.high);
  figure.append(title, svg("line", {x1: 0, x2: CHART_W, y1: CHART_H - 0.5, y2: CHART_H - 0.5, class: "axis"}));
  let path = "", gap = true, last = null;
  for (const [at, value] of monitor.points) {
    if (value === null) { gap = true; continue; }
    const step = last !== null && at - last > 2 * 86400 / 96;  // a missing slot: the line breaks
    path += (gap || step ? "M" : "L") + x(at).toFixed(1) + "," + y(value).toFixed(1) + " ";
    gap = false;
    last = at;
  }
  if (path) figure.append(svg("path", {d: path.trim(), class: "line"}));
  for (const [at, , bad] of monitor.points) {
    if (bad) figure.append(svg("line", {x1: x(at).toFixed(1), x2: x(at).toFixed(1), y1: CHART_H, y2: CHART_H - 9,
                                        class: "bad-tick"}));
  }
  return figure;
}

function newMonitor(name) {
  const li = newCard("monitor", name, "monitor-head", "uptime");
  li.append(el("p", "message"), el("div", "chart-box"));
  return li;
}

function fillMonitor(li, monitor, now) {
  li.className = "level-" + (monitor.level === "ok" ? "ok" : monitor.level || "none");
  li.querySelector(".level").textContent = monitor.level || "not checked yet";
  li.querySelector(".uptime").textContent = monitor.up_week === null ? "" :
    "up " + share(monitor.up_day) + " (24 h) · " + share(monitor.up_week) + " (7 d)";
  const held = monitor.held_until ? " — not judged until " + clock(monitor.held_until, now) +
    ": just woke from sleep" : "";
  li.querySelector(".message").textContent = monitor.message + held;
  const box = li.querySelector(".chart-box");
  const numeric = monitor.points.some((point) => point[1] !== null);
  box.replaceChildren(...(numeric ? [chart(monitor, now),
    el("span", "range", number(monitor.low) + " – " + number(monitor.high) + " over 24 h · now " +
       number(monitor.value))] : []));
  box.hidden = !numeric;
}

function renderMonitors(state) {
  const monitors = state.monitors || [];
  reconcile($("monitors"), monitorItems, monitors, (monitor) => monitor.name, newMonitor,
            (li, monitor) => fillMonitor(li, monitor, state.now));
  $("monitors-section").hidden = monitors.length === 0;
}

function render(state) {
  renderAlerts(state);
  renderMonitors(state);
  renderIncidents(state);
  renderOutbox(state);
  renderChannels(state);
  const snoozed = state.snoozed_until ? " · notifications snoozed until " + clock(state.snoozed_until, state.now) : "";
  $("status").textContent = "Updated " + clock(state.now, state.now) + snoozed;
}

// Opened from a pop-up's Open: that alert in view with its first button focused, and its timeline open.
function focusAlert(event) {
  focusPending = null;
  const incident = incidentItems.get(event);
  if (incident) incident.node.open = true;
  const alert = alertItems.get(event);
  const target = alert ? alert.node : incident ? incident.node : null;
  if (!target) return;
  target.classList.add("focused");
  target.scrollIntoView({block: "center"});
  const button = alert ? alert.node.querySelector("button:not(:disabled)") : incident.node.querySelector("summary");
  if (button) button.focus({preventScroll: true});
}

async function refresh() {
  if (stopped) return;
  clearTimeout(timer);
  try {
    const response = await fetch("/dashboard/api/state", {cache: "no-store"});
    const answer = await response.json().catch(() => ({}));
    if (response.ok) {
      render(answer);
      if (focusPending !== null) focusAlert(focusPending);
      if ($("problem").dataset.kind === "offline") { showProblem(""); delete $("problem").dataset.kind; }
    } else if (answer.login) {
      stopped = true;
      showProblem("This dashboard's session has ended: open it again with `tray-alerts dashboard`.");
      $("status").textContent = "Not updating";
      return;
    } else {
      showProblem(answer.error || ("HTTP " + response.status));
    }
  } catch (error) {
    showProblem("The app is not answering (is tray-alerts running?) — trying again.");
    $("problem").dataset.kind = "offline";
  }
  timer = setTimeout(refresh, POLL_MS);
}

refresh();

// callbridge console: plain JavaScript, no build step. Talks to this origin's /pcall API with HTTP Basic;
// the credentials live in sessionStorage (this tab only), never in a URL or a cookie.
"use strict";

const STORE_KEY = "callbridge.console";
const POLL_MS = 3000;
const CHART_EVERY = 20; // polls: the chart is redrawn every minute, the table every 3 seconds
const STATUSES = ["SCHEDULED", "RETRY_WAIT", "QUEUED", "DIALING", "RINGING", "IN_PROGRESS", "COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED"];
const FINAL = new Set(["COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED"]);
// How the console ends a call that has not ended, by where the call is (the API's rule for DELETE /pcall/calls/{callid}):
// a call not dialed yet is cancelled, and never dialed; a call at the carrier is hung up there.
const NOT_DIALED = new Set(["SCHEDULED", "QUEUED", "RETRY_WAIT"]);
const AT_CARRIER = new Set(["DIALING", "RINGING", "IN_PROGRESS"]);
const CHART_STATUSES = ["COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED", "OTHER"];
const STATUS_WORDS = {
  SCHEDULED: "Scheduled", RETRY_WAIT: "Waiting to retry", QUEUED: "Queued", DIALING: "Dialing", RINGING: "Ringing", IN_PROGRESS: "In progress",
  COMPLETED: "Completed", BUSY: "Busy", NO_ANSWER: "No answer", FAILED: "Failed", CANCELED: "Cancelled", OTHER: "Not finished",
};

const $ = (selector) => document.querySelector(selector);
const state = {
  auth: null, // {key, token}
  features: { hangup: false, suppressions: false, campaigns: false },
  calls: { pages: [null], index: 0, filters: {} },
  scheduled: { pages: [null], index: 0 },
  dnc: { pages: [null], index: 0 },
  campaigns: { pages: [null], index: 0 },
  callid: null,
  ivrEdited: false,
  timer: null,
  ticks: 0,
  busy: false,
  updated: null, // when a view last read the API
  stale: false, // a refresh failed, and the notice says so
};

// --- elements ----------------------------------------------------------------------------------

// A refresh replaces a list's elements every few seconds: the one that had the keyboard focus gets it back, found
// again by its row (data-callid, data-campaign) and what it is (its id, data-action or link), so a keyboard user
// tabbing through a table is never thrown back to the top of the page.
function focusKey(node) {
  if (node.id) return `#${CSS.escape(node.id)}`;
  const row = node.closest("[data-callid],[data-campaign]");
  const where = row
    ? row.dataset.callid !== undefined
      ? `[data-callid="${CSS.escape(row.dataset.callid)}"] `
      : `[data-campaign="${CSS.escape(row.dataset.campaign)}"] `
    : "";
  if (node.dataset.action) return `${where}[data-action="${CSS.escape(node.dataset.action)}"]`;
  if (node.getAttribute("href")) return `${where}a[href="${CSS.escape(node.getAttribute("href"))}"]`;
  return where ? `${where}${node.tagName.toLowerCase()}` : null;
}

function replaceKeepingFocus(container, ...children) {
  const active = document.activeElement;
  const key = active && active !== container && container.contains(active) ? focusKey(active) : null;
  container.replaceChildren(...children);
  const again = key && container.querySelector(key);
  if (again) again.focus({ preventScroll: true });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function badge(status) {
  return el("span", { class: `badge ${status}`, text: STATUS_WORDS[status] || status });
}

function notice(text) {
  $("#notice").textContent = text || "";
}

function stale(status, data) {
  // A refresh in the background failed: the page still shows what it read last, so say since when, and why.
  if (!state.auth) return; // refused credentials: api() has signed out and said so
  state.stale = true;
  const since = state.updated ? ` since ${clock(state.updated)}` : "";
  const why = data.code_desc || `the API answered ${status}`;
  notice(`Not updated${since}: ${why}. Trying again every ${POLL_MS / 1000} s.`);
}

function fresh() {
  state.updated = new Date().toISOString();
  if (state.stale) {
    state.stale = false;
    notice("");
  }
}

function when(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function clock(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value || "";
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function duration(seconds) {
  const s = Number(seconds) || 0;
  if (!s) return "";
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// --- the API -------------------------------------------------------------------------------

function basic(key, password) {
  const bytes = new TextEncoder().encode(`${key}:${password}`);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

const REFUSED = "Your credentials were refused: sign in again.";

async function api(method, path, body) {
  // Signed in (not signing in): a refusal of the stored credentials signs the tab out.
  const signedIn = Boolean(state.auth && sessionStorage.getItem(STORE_KEY));
  const headers = { Accept: "application/json" };
  if (state.auth) headers.Authorization = `Basic ${state.auth.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : body, cache: "no-store", credentials: "omit", redirect: "error",
    });
  } catch (error) {
    return { status: 0, data: { code_desc: "the API cannot be reached" } };
  }
  let data = {};
  try {
    data = (await response.json()).data || {};
  } catch (error) {
    data = {};
  }
  // Credentials refused after signing in (a rotated password, a disabled account): sign out, and every request
  // that was under way says the same. A refusal while signing in is the sign-in form's to say.
  if (response.status === 401 && signedIn) {
    if (state.auth) signOut(REFUSED);
    data = { ...data, code_desc: REFUSED };
  }
  return { status: response.status, data };
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function detectFeatures() {
  // Routes that later versions of the API add: the console offers them when the API's document lists them.
  try {
    const response = await fetch("/pcall/openapi.json", { cache: "no-store", credentials: "omit" });
    const paths = (await response.json()).paths || {};
    state.features.hangup = Boolean(paths["/pcall/calls/{callid}"] && paths["/pcall/calls/{callid}"].delete);
    state.features.suppressions = Boolean(paths["/pcall/suppressions"]);
    state.features.campaigns = Boolean(paths["/pcall/campaigns"]);
  } catch (error) {
    state.features = { hangup: false, suppressions: false, campaigns: false };
  }
  $("#nav-dnc").hidden = !state.features.suppressions;
  $("#nav-campaigns").hidden = !state.features.campaigns;
}

// --- signing in and out --------------------------------------------------------------------------

function loadAuth() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    if (saved && saved.key && saved.token) state.auth = saved;
  } catch (error) {
    state.auth = null;
  }
}

async function signIn(event) {
  event.preventDefault();
  const key = $("#signin-key").value.trim();
  const password = $("#signin-password").value;
  const error = $("#signin-error");
  if (!key || !password) {
    error.textContent = "Enter your API key and API password.";
    return;
  }
  error.textContent = "Checking…";
  state.auth = { key, token: basic(key, password) };
  const { status, data } = await api("GET", "/pcall/calls?limit=1");
  if (status !== 200) {
    state.auth = null;
    error.textContent = status === 401 ? "That key and password were refused." : data.code_desc || `The API answered ${status}.`;
    return;
  }
  sessionStorage.setItem(STORE_KEY, JSON.stringify(state.auth));
  $("#signin-password").value = "";
  error.textContent = "";
  await enter();
}

function signOut(message) {
  sessionStorage.removeItem(STORE_KEY);
  state.auth = null;
  stopPolling();
  $("#nav").hidden = true;
  $("#who").hidden = true;
  $("#calls-table tbody").replaceChildren();
  $("#timeline").replaceChildren();
  showMetadata(null);
  notice(message || "Signed out.");
  if (location.hash) history.replaceState(null, "", location.pathname);
  show("signin");
  $("#signin-key").focus();
}

async function enter() {
  $("#nav").hidden = false;
  $("#who").hidden = false;
  $("#who-key").textContent = state.auth.key;
  notice("");
  await detectFeatures();
  if (!location.hash || location.hash === "#signin") location.hash = "#calls";
  else await route();
  startPolling();
}

// --- views ---------------------------------------------------------------------------------

const VIEWS = ["signin", "calls", "call", "scheduled", "ivr", "campaigns", "dnc"];

function show(name) {
  for (const view of VIEWS) $(`#view-${view}`).hidden = view !== name;
  const section = name === "call" ? "calls" : name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  if (!state.auth) {
    show("signin");
    return;
  }
  const [name, arg] = location.hash.replace(/^#/, "").split("/");
  const target = decodeURIComponent(arg || "");
  if (name === "call" && target) {
    state.callid = target;
    show("call");
    await loadCall(target);
  } else if (name === "scheduled") {
    show("scheduled");
    await loadScheduled();
  } else if (name === "ivr") {
    show("ivr");
    await loadMenus(target);
  } else if (name === "campaigns" && state.features.campaigns) {
    show("campaigns");
    await loadCampaigns();
  } else if (name === "dnc" && state.features.suppressions) {
    show("dnc");
    await loadSuppressions();
  } else {
    show("calls");
    await Promise.all([loadCalls(), loadChart()]);
  }
}

// --- calls ---------------------------------------------------------------------------------

function callFilters() {
  const filters = {};
  const status = $("#filter-status").value;
  if (status) filters.status = status;
  if ($("#filter-since").value) filters.since = $("#filter-since").value;
  if ($("#filter-until").value) filters.until = $("#filter-until").value;
  return filters;
}

async function loadCalls(quiet = false) {
  const pages = state.calls;
  const params = { ...pages.filters, limit: "25", next: pages.pages[pages.index] };
  const { status, data } = await api("GET", `/pcall/calls${query(params)}`);
  const body = $("#calls-table tbody");
  if (status !== 200) {
    if (!quiet) notice(data.code_desc || `Could not list calls (${status}).`);
    else stale(status, data);
    return;
  }
  fresh();
  pages.pages[pages.index + 1] = data.next || null;
  pages.pages.length = pages.index + 2;
  const rows = (data.calls || []).map((call) => {
    const to = call.request && call.request.to;
    const from = call.request && call.request.from;
    return el(
      "tr",
      { "data-callid": call.callid, "data-status": call.status },
      el("td", { "data-label": "Status" }, badge(call.status)),
      el("td", { "data-label": "To" }, el("a", { href: `#call/${encodeURIComponent(call.callid)}`, text: to || call.callid, title: `Call ${call.callid}` })),
      el("td", { "data-label": "From", text: from || "" }),
      el("td", { "data-label": "Created", text: when(call.created_at) }),
      el("td", { "data-label": "Duration", class: "num", text: duration(call.billed_seconds) }),
      el("td", { "data-label": "Answered by", text: call.answered_by || "" }),
    );
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "empty", text: "No calls match." })));
  replaceKeepingFocus(body, ...rows);
  $("#calls-newer").disabled = pages.index === 0;
  $("#calls-older").disabled = !data.next;
  $("#calls-page").textContent = `Page ${pages.index + 1}`;
  $("#calls-live").textContent = `Updated ${clock(state.updated)}`;
}

// --- the chart -----------------------------------------------------------------------------

async function loadChart() {
  const { status, data } = await api("GET", "/pcall/stats?hours=24");
  if (status !== 200) return;
  const hours = data.hours || [];
  const plot = $("#chart-plot");
  // Drawn at the size it is shown (no stretching): the labels stay readable from phone width up.
  const width = Math.max(240, Math.round(plot.clientWidth || 960));
  const height = 180;
  const left = 28;
  const bottom = 18;
  const top = 8;
  const max = Math.max(1, ...hours.map((h) => h.total));
  const slot = (width - left) / Math.max(1, hours.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  const every = width < 600 ? 6 : 3;
  const title = svg("title");
  const rate = data.answer_rate === null || data.answer_rate === undefined ? "no finished calls yet" : `answer rate ${(data.answer_rate * 100).toFixed(0)} %`;
  title.textContent = `${data.total} calls in the last 24 hours; ${rate}`;
  chart.append(title);
  chart.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  const maxLabel = svg("text", { x: 0, y: top + 8 });
  maxLabel.textContent = String(max);
  chart.append(maxLabel);
  hours.forEach((hour, index) => {
    let y = height - bottom;
    const counts = { ...hour.statuses };
    let other = 0;
    for (const [name, count] of Object.entries(counts)) if (!CHART_STATUSES.includes(name)) other += count;
    counts.OTHER = other;
    for (const name of CHART_STATUSES) {
      const count = counts[name] || 0;
      if (!count) continue;
      const h = (count / max) * (height - bottom - top);
      y -= h;
      const bar = svg("rect", { class: `bar ${name}`, x: left + index * slot + 1, y, width: Math.max(1, slot - 2), height: h });
      const tip = svg("title");
      tip.textContent = `${clock(hour.hour)}: ${count} ${STATUS_WORDS[name].toLowerCase()}`;
      bar.append(tip);
      chart.append(bar);
    }
    if (index % every === 0) {
      const label = svg("text", { x: left + index * slot + 1, y: height - 4 });
      label.textContent = new Date(hour.hour).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
      chart.append(label);
    }
  });
  plot.replaceChildren(chart);
  const partial = data.complete === false ? ` (the newest ${data.total} calls, since ${clock(data.counted_since)})` : "";
  $("#chart-rate").textContent = `${data.total} calls${partial} · ${data.answered} answered of ${data.finished} finished · ${rate}`;
  $("#chart-legend").replaceChildren(...CHART_STATUSES.map((name) => el("li", { class: name, text: STATUS_WORDS[name] })));
}

// --- one call ------------------------------------------------------------------------------

const CARRIER_STATUS = {
  queued: "Queued at the carrier",
  initiated: "Dialing",
  ringing: "Ringing",
  busy: "The line was busy",
  "no-answer": "Nobody answered",
  failed: "The call could not be connected",
  canceled: "Cancelled at the carrier",
};

function answeredBy(value) {
  if (!value) return "";
  return /^human|person/i.test(value) ? "a person" : /machine|fax/i.test(value) ? "a machine" : value;
}

// Whether a status callback's CallSid is one of the call's own carrier calls (the ids its attempts were placed
// with). Before the placer's write of that id (or without it) any CallSid may be the call's: the store decided.
function ownCarrierCall(sid, call) {
  if (!sid) return false;
  const placed = (call.timeline || []).filter((e) => e.event === "carrier.created").map((e) => (e.detail || {}).sid);
  return placed.length === 0 || placed.includes(sid);
}

function describe(entry, call) {
  const d = entry.detail || {};
  switch (entry.event) {
    case "accepted":
      return d.status === "SCHEDULED" ? "Accepted and scheduled" : "Accepted";
    case "dispatched":
      return "Handed to the dialer for its time";
    case "requeued":
      return "Sent to the dialer again";
    case "dialing":
      return "Placing the call";
    case "carrier.created":
      return "The carrier took the call";
    case "carrier.retry":
      return `The carrier could not take it yet; trying again${d.reason ? ` (${d.reason})` : ""}`;
    case "carrier.rejected":
      return `The carrier refused the call${d.message ? `: ${d.message}` : ""}${d.code ? ` (${d.code})` : ""}`;
    case "carrier.uncertain":
      return `No clear answer from the carrier${d.error ? `: ${d.error}` : ""}`;
    case "carrier.status": {
      if (!ownCarrierCall(d.CallSid, call)) return "A carrier status callback about another call (ignored)";
      const status = String(d.CallStatus || "").toLowerCase();
      if (status === "in-progress" || status === "answered") {
        const who = answeredBy(d.AnsweredBy || call.answered_by);
        return who ? `Answered by ${who}` : "Answered";
      }
      if (status === "completed") return `Hung up${d.CallDuration ? ` after ${duration(d.CallDuration)}` : ""}`;
      if (status === "failed" && d.SipResponseCode) return `${CARRIER_STATUS.failed} (SIP ${d.SipResponseCode})`;
      return CARRIER_STATUS[status] || `Carrier: ${status}`;
    }
    case "carrier.recording":
      return `Recording ready${d.RecordingDuration ? ` (${duration(d.RecordingDuration)})` : ""}`;
    case "flow":
      if (d.label === "Machine") return "Answered by a machine: leaving the voicemail message";
      if (d.label === "Person") return "Answered by a person: playing the message";
      return `Call flow: ${d.label || ""}`;
    case "ivr.digits":
      return d.action === "invalid" ? `Pressed ${d.digit} in menu ${d.menu} (not an option)` : `Pressed ${d.digit} in menu ${d.menu}`;
    case "ivr.no_input":
      return `No key pressed in menu ${d.menu || ""}`.trim();
    case "ivr.ended":
      return `Menu ${d.menu || ""} ended without a choice`.replace("  ", " ");
    case "dial.second_leg":
      return d.error ? `Could not dial the second number: ${d.error}` : `Connecting to ${d.to || d.number || "the second number"}`;
    case "dial.second_leg.status": {
      const status = String(d.CallStatus || "").toLowerCase();
      return `The second number: ${(CARRIER_STATUS[status] || status || "updated").toLowerCase()}`;
    }
    case "dial.not_bridged":
      return `Not connected${d.reason ? ` (the second number: ${d.reason})` : ""}: told the caller and hung up`;
    case "dial.not_bridged.error":
      return `Could not tell the caller the second number did not answer${d.error ? `: ${d.error}` : ""}`;
    case "flow.error":
      return `The carrier could not run the call's flow${d.ErrorCode ? ` (error ${d.ErrorCode})` : ""}; hung up`;
    case "dial.ended":
      return `The connected call ended${d.DialCallStatus || d.status ? ` (${d.DialCallStatus || d.status})` : ""}`;
    case "sms":
      return `Voicemail SMS ${d.status || "sent"}${d.from ? ` from ${d.from}` : ""}`;
    case "callback": {
      const answer = d.status_code ? `(${d.status_code})` : d.error ? `(${d.error})` : "";
      if (d.result === "delivered") return `Callback delivered on attempt ${d.attempt} ${answer}`.trim();
      if (d.result === "retry") return `Callback attempt ${d.attempt} failed ${answer}; retrying in ${d.retry_in} s`;
      if (d.result === "dead_letter") return `Callback given up after attempt ${d.attempt} ${answer}`.trim();
      if (d.result === "refused") return `Callback not sent: the URL is refused ${answer}`.trim();
      if (d.result === "deferred") return "Callback sent from the retry queue: its endpoint was slow lately";
      return `Callback attempt ${d.attempt} ${answer}`.trim();
    }
    case "canceled":
      return d.by === "api" ? "Cancelled by you" : "Cancelled";
    case "hangup":
      return d.by === "api" ? "Hung up by you" : "Hung up";
    case "reconciled":
      return "Outcome checked with the carrier";
    case "rejected":
      return `Refused${d.reason ? `: ${d.reason}` : ""}`;
    case "suppressed":
      return "Not dialed: the number is on your do-not-call list";
    case "dead_letter":
      return "Not placed: the dialer gave up on it";
    case "released":
      return "Released by its campaign";
    case "pacing.wait":
      return "Waiting for a free carrier slot";
    case "carrier.hangup":
      return "Hang-up asked of the carrier";
    case "carrier.ignored":
      return `A carrier ${d.webhook ? `${d.webhook} request` : "event"} about another call (ignored)`;
    case "sms.status":
      return `Voicemail SMS ${d.MessageStatus || "updated"}`;
    case "retry.scheduled":
      return `Attempt ${d.attempt} ended${d.ended ? ` (${d.ended})` : ""}; attempt ${d.next_attempt} at ${when(d.due)}`;
    case "window.closed":
      return d.next_attempt_at ? `Outside the calling window: waiting until ${d.next_attempt_at}` : `Not placed: ${d.reason}`;
    case "campaign.paused":
      return "Waiting: its campaign is paused";
    default:
      return entry.event;
  }
}

function inOrder(timeline) {
  // Carrier status callbacks can arrive out of order; shown in the carrier's own order (SequenceNumber),
  // in the places such callbacks took on the timeline (each keeps the time it arrived).
  const slots = [];
  const statuses = [];
  timeline.forEach((entry, index) => {
    if (entry.event === "carrier.status" && entry.detail && entry.detail.SequenceNumber !== undefined) {
      slots.push(index);
      statuses.push(entry);
    }
  });
  statuses.sort((a, b) => Number(a.detail.SequenceNumber) - Number(b.detail.SequenceNumber));
  const ordered = timeline.slice();
  slots.forEach((slot, n) => {
    ordered[slot] = statuses[n];
  });
  return ordered;
}

function fact(term, value) {
  if (value === null || value === undefined || value === "") return [];
  return [el("dt", { text: term }), el("dd", {}, value)];
}

function showMetadata(metadata) {
  // The caller's own keys and values (GET /pcall/calls/{callid}'s `metadata`), as text; nothing when there is none.
  const entries = metadata && typeof metadata === "object" ? Object.entries(metadata) : [];
  $("#call-metadata").replaceChildren(...entries.flatMap(([key, value]) => [el("dt", { text: key }), el("dd", { text: String(value) })]));
  $("#call-metadata-box").hidden = entries.length === 0;
}

async function loadCall(callid, quiet = false) {
  const { status, data } = await api("GET", `/pcall/calls/${encodeURIComponent(callid)}`);
  if (status !== 200) {
    if (!quiet) {
      $("#call-title").textContent = "Call not found";
      $("#call-outcome").replaceChildren();
      showMetadata(null);
      $("#timeline").replaceChildren();
      $("#call-actions").replaceChildren();
      notice(data.code_desc || `Could not load the call (${status}).`);
    } else stale(status, data);
    return;
  }
  fresh();
  const call = data.call;
  const request = call.request || {};
  $("#call-title").replaceChildren(`Call to ${request.to || ""} `, badge(call.status));
  const recording = call.recording_url ? el("a", { href: call.recording_url, target: "_blank", rel: "noopener noreferrer", text: "Listen to the recording" }) : null;
  replaceKeepingFocus(
    $("#call-outcome"),
    ...fact("Status", STATUS_WORDS[call.status] || call.status),
    ...fact("Answered by", call.answered_by || (FINAL.has(call.status) ? "nobody" : "")),
    ...fact("Duration", duration(call.billed_seconds)),
    ...fact("To", request.to),
    ...fact("From", request.from),
    ...fact("Scheduled for", call.call_date ? when(call.call_date) : ""),
    ...fact("Next attempt", call.next_attempt_at ? when(call.next_attempt_at) : ""),
    ...fact("Created", when(call.created_at)),
    ...fact("Answered", when(call.answered_at)),
    ...fact("Ended", when(call.ended_at)),
    ...fact("Digits pressed", call.digits),
    ...fact("SMS", call.sms_status),
    ...fact("Error", call.error_desc ? `${call.error_desc}${call.error_code ? ` (${call.error_code})` : ""}` : ""),
    ...fact("Recording", recording),
    ...fact("Call id", el("code", { text: call.callid })),
  );
  showMetadata(call.metadata);
  const actions = [];
  if (cancellable(call)) {
    actions.push(el("button", { type: "button", class: "danger", id: "call-cancel", onclick: () => cancelCall(call.callid) }, "Cancel this call"));
  } else if (state.features.hangup && AT_CARRIER.has(call.status)) {
    actions.push(el("button", { type: "button", class: "danger", id: "call-hangup", onclick: () => hangUp(call.callid) }, "Hang up"));
  }
  replaceKeepingFocus($("#call-actions"), ...actions);
  $("#timeline").replaceChildren(
    ...inOrder(call.timeline || []).map((entry) =>
      el(
        "li",
        { "data-event": entry.event },
        el("time", { datetime: entry.at, text: clock(entry.at) }),
        el(
          "div",
          {},
          el("span", { class: "what", text: describe(entry, call) }),
          el("details", {}, el("summary", { text: "raw" }), el("pre", { text: JSON.stringify(entry, null, 2) })),
        ),
      ),
    ),
  );
}

function cancellable(call) {
  // A call not dialed yet. An API without DELETE /pcall/calls/{callid} cancels only those waiting for a time.
  return NOT_DIALED.has(call.status) && (state.features.hangup || call.status !== "QUEUED" || Boolean(call.call_date));
}

async function cancelCall(callid) {
  // From the call's page and the Scheduled list alike: DELETE /pcall/calls/{callid} cancels any call not dialed yet
  // (DELETE /pcall/scheduled/{callid} on an API without it). One the dialer took meanwhile is hung up, and said so.
  const id = encodeURIComponent(callid);
  const { status, data } = await api("DELETE", state.features.hangup ? `/pcall/calls/${id}` : `/pcall/scheduled/${id}`);
  const now = (data.call || data).status;
  if (status !== 200) notice(data.code_desc || `Could not cancel (${status}).`);
  else if (now === "CANCELED") notice("The call is cancelled.");
  else notice("The call had already started: hanging up.");
  if (!$("#view-call").hidden) await loadCall(callid, true);
  if (!$("#view-scheduled").hidden) await loadScheduled();
}

async function hangUp(callid) {
  const { status, data } = await api("DELETE", `/pcall/calls/${encodeURIComponent(callid)}`);
  notice(status === 200 ? "Hanging up." : data.code_desc || `Could not hang up (${status}).`);
  await loadCall(callid, true);
}

// --- scheduled calls -----------------------------------------------------------------------

async function loadScheduled() {
  const pages = state.scheduled;
  const { status, data } = await api("GET", `/pcall/scheduled${query({ limit: "25", next: pages.pages[pages.index] })}`);
  if (status !== 200) {
    notice(data.code_desc || `Could not list scheduled calls (${status}).`);
    return;
  }
  pages.pages[pages.index + 1] = data.next || null;
  const rows = (data.calls || []).map((call) =>
    el(
      "tr",
      { "data-callid": call.callid },
      el("td", { text: when(call.next_attempt_at || call.call_date) }),
      el("td", {}, el("a", { href: `#call/${encodeURIComponent(call.callid)}`, text: (call.request || {}).to || call.callid })),
      el("td", { text: (call.request || {}).from || "" }),
      el("td", {}, badge(call.status)),
      el("td", {}, el("button", { type: "button", class: "danger", "aria-label": `Cancel the call to ${(call.request || {}).to || call.callid}`, onclick: () => cancelCall(call.callid) }, "Cancel")),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "empty", text: "No scheduled calls." })));
  replaceKeepingFocus($("#scheduled-table tbody"), ...rows);
  $("#scheduled-first").disabled = pages.index === 0;
  $("#scheduled-more").disabled = !data.next;
}

// --- IVR menus -----------------------------------------------------------------------------

const MENU_TEMPLATE = {
  prompt: { speak: "Press 1 to hear our opening hours.", speak_lang: "en-US" },
  options: { 1: { action: "say", speak: "We are open nine to five. Goodbye.", speak_lang: "en-US" } },
  timeout: 5,
  retries: 2,
};

function editable(menu) {
  const copy = { ...menu };
  delete copy.code;
  delete copy.created_at;
  delete copy.updated_at;
  return JSON.stringify(copy, null, 2);
}

async function loadMenus(selected) {
  const { status, data } = await api("GET", "/pcall/ivr");
  if (status !== 200) {
    notice(data.code_desc || `Could not list menus (${status}).`);
    return;
  }
  const menus = data.menus || [];
  $("#ivr-list").replaceChildren(
    ...menus.map((menu) =>
      el("li", {}, el("button", { type: "button", "aria-current": menu.code === selected ? "true" : null, onclick: () => { location.hash = `#ivr/${encodeURIComponent(menu.code)}`; } }, menu.code)),
    ),
  );
  if (!menus.length) $("#ivr-list").replaceChildren(el("li", { class: "muted", text: "No menus yet." }));
  const menu = menus.find((m) => m.code === selected);
  if (state.ivrEdited && !menu) return; // never throw away what the person is typing
  $("#ivr-errors").replaceChildren();
  state.ivrEdited = false;
  if (menu) {
    $("#ivr-editing").textContent = `Menu ${menu.code}`;
    $("#ivr-code").value = menu.code;
    $("#ivr-json").value = editable(menu);
    $("#ivr-delete").hidden = false;
  } else if (!selected) {
    newMenu();
  }
}

function newMenu() {
  state.ivrEdited = false;
  $("#ivr-editing").textContent = "New menu";
  $("#ivr-code").value = "";
  $("#ivr-json").value = JSON.stringify(MENU_TEMPLATE, null, 2);
  $("#ivr-delete").hidden = true;
  $("#ivr-errors").replaceChildren();
}

function showErrors(list, data, status) {
  const errors = (data.errors || []).map((e) => el("li", {}, el("code", { text: e.field }), `: ${e.message}`));
  if (!errors.length) errors.push(el("li", { text: data.code_desc || `The API answered ${status}.` }));
  list.replaceChildren(...errors);
}

async function saveMenu(event) {
  event.preventDefault();
  const code = $("#ivr-code").value.trim();
  const list = $("#ivr-errors");
  if (!code) {
    list.replaceChildren(el("li", { text: "Give the menu a code." }));
    return;
  }
  const { status, data } = await api("PUT", `/pcall/ivr/${encodeURIComponent(code)}`, $("#ivr-json").value);
  if (status !== 200) {
    showErrors(list, data, status);
    return;
  }
  notice(data.created ? `Menu ${code} created.` : `Menu ${code} saved.`);
  state.ivrEdited = false;
  if (location.hash === `#ivr/${encodeURIComponent(code)}`) await loadMenus(code);
  else location.hash = `#ivr/${encodeURIComponent(code)}`;
}

async function deleteMenu() {
  const code = $("#ivr-code").value.trim();
  if (!code || !window.confirm(`Delete menu ${code}?`)) return;
  const { status, data } = await api("DELETE", `/pcall/ivr/${encodeURIComponent(code)}`);
  if (status !== 200) {
    showErrors($("#ivr-errors"), data, status);
    return;
  }
  notice(`Menu ${code} deleted.`);
  location.hash = "#ivr";
}

// --- campaigns (when the API has them) -----------------------------------------------------

const CAMPAIGN_WORDS = { SCHEDULED: "Scheduled", RUNNING: "Running", PAUSED: "Paused", CANCELED: "Cancelled", FINISHED: "Finished" };

async function loadCampaigns(quiet = false) {
  const pages = state.campaigns;
  const { status, data } = await api("GET", `/pcall/campaigns${query({ limit: "20", next: pages.pages[pages.index] })}`);
  if (status !== 200) {
    if (!quiet) notice(data.code_desc || `Could not list campaigns (${status}).`);
    else stale(status, data);
    return;
  }
  fresh();
  pages.pages[pages.index + 1] = data.next || null;
  const items = (data.campaigns || []).map((campaign) => {
    const counts = campaign.counts || {};
    const ended = ["COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED"].reduce((sum, name) => sum + (counts[name] || 0), 0);
    const answered = campaign.answered || {};
    const buttons = [];
    const act = (label, method, suffix) =>
      el("button", { type: "button", "data-action": label.toLowerCase(), onclick: () => campaignAction(campaign.id, method, suffix, label) }, label);
    if (campaign.status === "RUNNING" || campaign.status === "SCHEDULED") buttons.push(act("Pause", "POST", "/pause"));
    if (campaign.status === "PAUSED") buttons.push(act("Resume", "POST", "/resume"));
    if (campaign.status !== "FINISHED" && campaign.status !== "CANCELED") buttons.push(act("Cancel", "DELETE", ""));
    buttons.push(el("button", { type: "button", "data-action": "report", onclick: () => downloadReport(campaign) }, "Download report (CSV)"));
    return el(
      "li",
      { "data-campaign": campaign.id, "data-status": campaign.status },
      el("h2", {}, el("span", { class: "name", text: campaign.name || campaign.id }), el("span", { class: `badge ${campaign.status}`, text: CAMPAIGN_WORDS[campaign.status] || campaign.status })),
      el("progress", { max: String(campaign.total || 1), value: String(ended), "aria-label": `${ended} of ${campaign.total} calls ended` }),
      el(
        "p",
        { class: "counts" },
        `${ended} of ${campaign.total} calls ended · ${counts.COMPLETED || 0} completed · ${(answered.Person || 0) + (answered.Machine || 0)} answered · ` +
          `${counts.BUSY || 0} busy · ${counts.NO_ANSWER || 0} no answer · ${counts.FAILED || 0} failed · ${counts.CANCELED || 0} cancelled · ` +
          `created ${when(campaign.created_at)}`,
      ),
      el("div", { class: "actions" }, ...buttons),
    );
  });
  if (!items.length) items.push(el("li", { class: "muted", text: "No campaigns yet." }));
  replaceKeepingFocus($("#campaigns-list"), ...items);
  $("#campaigns-first").disabled = pages.index === 0;
  $("#campaigns-more").disabled = !data.next;
}

async function campaignAction(id, method, suffix, label) {
  const { status, data } = await api(method, `/pcall/campaigns/${encodeURIComponent(id)}${suffix}`);
  notice(status === 200 ? `${label}: done.` : data.code_desc || `${label} failed (${status}).`);
  await loadCampaigns(true);
}

async function downloadReport(campaign) {
  // The report needs the credentials, so it is fetched here and handed to the browser as a file.
  let response;
  try {
    response = await fetch(`/pcall/campaigns/${encodeURIComponent(campaign.id)}/report.csv`, {
      headers: { Authorization: `Basic ${state.auth.token}` }, cache: "no-store", credentials: "omit",
    });
  } catch (error) {
    notice("The API cannot be reached.");
    return;
  }
  if (!response.ok) {
    notice(`Could not get the report (${response.status}).`);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: `campaign-${campaign.id}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// --- do not call (when the API has it) -----------------------------------------------------

async function loadSuppressions() {
  const pages = state.dnc;
  const { status, data } = await api("GET", `/pcall/suppressions${query({ limit: "50", next: pages.pages[pages.index] })}`);
  if (status !== 200) {
    notice(data.code_desc || `Could not list the do-not-call numbers (${status}).`);
    return;
  }
  pages.pages[pages.index + 1] = data.next || null;
  const rows = (data.suppressions || []).map((entry) =>
    el(
      "tr",
      { "data-number": entry.number },
      el("td", { text: entry.number }),
      el("td", { class: "text", text: entry.reason || "" }),
      el("td", { text: when(entry.created_at) }),
      el("td", {}, el("button", { type: "button", "aria-label": `Remove ${entry.number}`, onclick: () => removeSuppression(entry.number) }, "Remove")),
    ),
  );
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "4", class: "empty", text: "No numbers on the list." })));
  $("#dnc-table tbody").replaceChildren(...rows);
  $("#dnc-first").disabled = pages.index === 0;
  $("#dnc-more").disabled = !data.next;
}

async function addSuppression(event) {
  event.preventDefault();
  const number = $("#dnc-number").value.trim();
  const reason = $("#dnc-reason").value.trim();
  const body = JSON.stringify(reason ? { reason } : {});
  const { status, data } = await api("PUT", `/pcall/suppressions/${encodeURIComponent(number)}`, body);
  if (status !== 200) {
    showErrors($("#dnc-errors"), data, status);
    return;
  }
  $("#dnc-errors").replaceChildren();
  $("#dnc-number").value = "";
  $("#dnc-reason").value = "";
  notice(`${data.suppression ? data.suppression.number : number} will not be called.`);
  await loadSuppressions();
}

async function removeSuppression(number) {
  const { status, data } = await api("DELETE", `/pcall/suppressions/${encodeURIComponent(number)}`);
  notice(status === 200 ? `${number} may be called again.` : data.code_desc || `Could not remove (${status}).`);
  await loadSuppressions();
}

// --- live updates --------------------------------------------------------------------------

function startPolling() {
  stopPolling();
  state.timer = window.setInterval(async () => {
    if (!state.auth || state.busy || document.visibilityState !== "visible") return;
    state.busy = true;
    try {
      state.ticks += 1;
      if (!$("#view-calls").hidden) await Promise.all([loadCalls(true), state.ticks % CHART_EVERY ? null : loadChart()]);
      else if (!$("#view-call").hidden && state.callid) await loadCall(state.callid, true);
      else if (!$("#view-campaigns").hidden) await loadCampaigns(true);
    } finally {
      state.busy = false;
    }
  }, POLL_MS);
}

function stopPolling() {
  if (state.timer) window.clearInterval(state.timer);
  state.timer = null;
}

// --- wiring --------------------------------------------------------------------------------

function pager(pages, load, back, forward) {
  $(back).addEventListener("click", () => {
    pages.index = 0;
    load();
  });
  $(forward).addEventListener("click", () => {
    if (pages.pages[pages.index + 1]) {
      pages.index += 1;
      load();
    }
  });
}

function start() {
  for (const status of STATUSES) $("#filter-status").append(el("option", { value: status, text: STATUS_WORDS[status] }));
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.calls = { pages: [null], index: 0, filters: callFilters() };
    loadCalls();
  });
  $("#filter-clear").addEventListener("click", () => {
    $("#filters").reset();
    state.calls = { pages: [null], index: 0, filters: {} };
    loadCalls();
  });
  $("#calls-newer").addEventListener("click", () => {
    if (state.calls.index > 0) {
      state.calls.index -= 1;
      loadCalls();
    }
  });
  $("#calls-older").addEventListener("click", () => {
    if (state.calls.pages[state.calls.index + 1]) {
      state.calls.index += 1;
      loadCalls();
    }
  });
  pager(state.scheduled, loadScheduled, "#scheduled-first", "#scheduled-more");
  pager(state.dnc, loadSuppressions, "#dnc-first", "#dnc-more");
  pager(state.campaigns, loadCampaigns, "#campaigns-first", "#campaigns-more");
  $("#ivr-form").addEventListener("submit", saveMenu);
  $("#ivr-form").addEventListener("input", () => {
    state.ivrEdited = true;
  });
  $("#ivr-new").addEventListener("click", () => {
    if (location.hash !== "#ivr") location.hash = "#ivr";
    newMenu();
    $("#ivr-code").focus();
  });
  $("#ivr-delete").addEventListener("click", deleteMenu);
  $("#dnc-form").addEventListener("submit", addSuppression);
  window.addEventListener("hashchange", () => {
    notice("");
    route().then(() => $("#main").focus({ preventScroll: true }));
  });
  loadAuth();
  if (state.auth) enter();
  else {
    show("signin");
    $("#signin-key").focus();
  }
}

document.addEventListener("DOMContentLoaded", start);

// Tidings web page: conversations (tabs or side by side), streamed answers with citations,
// regenerate / versions / edit, trending starters and a live sidebar of posts.
//
// Untrusted text (posts, answers, questions) reaches the DOM only as textContent, or as
// markdown rendered by marked and then sanitised by DOMPurify. Citation markers are turned into
// buttons by walking the sanitised DOM's text nodes, never by string concatenation.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
};

const params = new URLSearchParams(location.search);
const state = {
  key: localStorage.getItem("tidings.key") || "",
  convs: [], // {id, data, streaming, pending, pane, tab, editing}
  active: null,
  sideBySide: false,
};

// ---------- HTTP ----------
function headers(extra = {}) {
  const h = { "content-type": "application/json", ...extra };
  if (state.key) h.authorization = `Bearer ${state.key}`;
  return h;
}

async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    if (r.status === 401) askForKey();
    throw new Error((data.error && data.error.message) || `HTTP ${r.status}`);
  }
  return data;
}

// Reads a Server-Sent Events response, calling onEvent(name, data) for each event.
async function readSse(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) {
        let parsed;
        try { parsed = JSON.parse(data.join("\n")); } catch { parsed = data.join("\n"); }
        onEvent(name, parsed);
      }
    }
  }
}

function askForKey() {
  const k = prompt("This server needs an API key (scope: read). Paste it here:", state.key);
  if (k !== null) {
    state.key = k.trim();
    localStorage.setItem("tidings.key", state.key);
  }
}

// ---------- settings ----------
function currentSearch() {
  const s = {};
  const w = $("#window").value;
  if (w !== "auto") s.window = w;
  const asOf = $("#as-of").value.trim();
  if (asOf) s.as_of = asOf;
  return s;
}

function asOfParam() {
  const asOf = $("#as-of").value.trim();
  return asOf ? `&as_of=${encodeURIComponent(asOf)}` : "";
}

// Settings apply to the active conversation (and to new ones).
async function applySettings() {
  const c = activeConv();
  if (!c || !c.id) return;
  try {
    c.data = await api("PATCH", `/v1/conversations/${c.id}`, { persona: $("#persona").value, search: currentSearch() });
    render(c);
  } catch (e) { banner(c, e.message); }
}

// ---------- markdown ----------
function renderMarkdown(text, citations) {
  const html = DOMPurify.sanitize(marked.parse(text || "", { gfm: true, breaks: true }), {
    FORBID_TAGS: ["style", "form", "input", "textarea", "select", "button", "iframe", "img"],
    FORBID_ATTR: ["style"],
  });
  const div = el("div", { class: "md" });
  div.innerHTML = html;
  for (const a of div.querySelectorAll("a")) {
    const href = a.getAttribute("href") || "";
    if (!/^https?:\/\//i.test(href)) a.removeAttribute("href");
    a.setAttribute("rel", "noopener noreferrer nofollow");
    a.setAttribute("target", "_blank");
  }
  if (citations) linkCitations(div, citations);
  return div;
}

// Turns "[n]" in text nodes into buttons that open post card n.
function linkCitations(root, onCite) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    if (node.parentElement && node.parentElement.closest("code, pre")) continue;
    const parts = node.textContent.split(/(\[\d{1,2}\])/);
    if (parts.length === 1) continue;
    const frag = document.createDocumentFragment();
    for (const p of parts) {
      const m = /^\[(\d{1,2})\]$/.exec(p);
      if (m) {
        const n = Number(m[1]);
        frag.append(el("button", { class: "cite", type: "button", "data-n": n, "data-testid": "cite", onclick: () => onCite(n) }, `${n}`));
      } else if (p) frag.append(document.createTextNode(p));
    }
    node.replaceWith(frag);
  }
}

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

function postCard(p, n) {
  const link = p.url && /^https?:\/\//i.test(p.url)
    ? el("a", { href: p.url, target: "_blank", rel: "noopener noreferrer nofollow" }, "open")
    : null;
  return el("div", { class: "card", "data-testid": "post-card", "data-n": n },
    el("div", { class: "head" },
      n ? el("span", { class: "num", text: `[${n}]` }) : null,
      el("span", { text: p.author ? `@${p.author}` : (p.source || "post") }),
      el("span", { text: fmtTime(p.created_at) }),
      link),
    el("div", { class: "text", dir: "auto", text: p.text || "" }));
}

// ---------- conversations ----------
function activeConv() { return state.convs.find((c) => c === state.active) || null; }

function addConv(data) {
  const c = { id: data ? data.id : null, data, streaming: false, pending: null, editing: null, open: new Set() };
  c.pane = el("section", { class: "pane", "data-testid": "pane" });
  c.tab = el("div", { class: "tab", "data-testid": "tab", onclick: () => focusConv(c) },
    el("span", { class: "dot" }), el("span", { class: "title" }),
    el("button", { class: "close", type: "button", title: "Close", onclick: (e) => { e.stopPropagation(); closeConv(c); } }, "×"));
  $("#tabs").insertBefore(c.tab, $("#new-tab"));
  $("#panes").append(c.pane);
  state.convs.push(c);
  focusConv(c);
  render(c);
  return c;
}

function closeConv(c) {
  c.tab.remove();
  c.pane.remove();
  state.convs = state.convs.filter((x) => x !== c);
  if (state.active === c) state.active = state.convs[state.convs.length - 1] || null;
  if (!state.convs.length) addConv(null);
  layout();
}

function focusConv(c) {
  state.active = c;
  if (c.data) {
    $("#persona").value = c.data.persona || "regular";
    $("#window").value = (c.data.search && c.data.search.window) || "auto";
    if (c.data.search && c.data.search.as_of) $("#as-of").value = c.data.search.as_of;
  }
  layout();
}

function layout() {
  for (const c of state.convs) {
    c.tab.classList.toggle("active", c === state.active);
    c.tab.classList.toggle("streaming", c.streaming);
    c.pane.classList.toggle("visible", state.sideBySide || c === state.active);
    const title = (c.data && c.data.title) || "New conversation";
    $(".title", c.tab).textContent = title;
  }
  $("#layout").textContent = state.sideBySide ? "Tabs" : "Side by side";
}

async function ensureConv(c) {
  if (c.id) return;
  c.data = await api("POST", "/v1/conversations", { persona: $("#persona").value, search: currentSearch() });
  c.id = c.data.id;
}

function byId(c) {
  const m = new Map();
  for (const msg of (c.data && c.data.messages) || []) m.set(msg.id, msg);
  return m;
}

function banner(c, text) {
  const b = el("div", { class: "banner", role: "alert", "data-testid": "banner", text });
  c.pane.prepend(b);
  setTimeout(() => b.remove(), 8000);
}

// Streams a generation request and keeps c.pending up to date.
async function generate(c, path, body, pendingUser) {
  c.streaming = true;
  c.pending = { user: pendingUser, text: "", posts: [], error: null };
  layout();
  render(c);
  try {
    const r = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify({ ...body, stream: true }) });
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      if (r.status === 401) askForKey();
      throw new Error((data.error && data.error.message) || `HTTP ${r.status}`);
    }
    let frame = 0;
    await readSse(r, (name, data) => {
      if (name === "retrieved") c.pending.posts = data.posts || [];
      else if (name === "delta") {
        c.pending.text += data.content || "";
        if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(c); });
      } else if (name === "error") c.pending.error = (data.error && data.error.message) || "the answer failed";
    });
  } catch (e) {
    banner(c, e.message);
  }
  c.streaming = false;
  c.pending = null;
  await reload(c);
  layout();
}

async function reload(c) {
  if (!c.id) return;
  try { c.data = await api("GET", `/v1/conversations/${c.id}`); } catch (e) { banner(c, e.message); }
  render(c);
}

async function ask(c, text) {
  text = text.trim();
  if (!text || c.streaming) return;
  // Show the question and the answer's placeholder at once, before any network round trip.
  c.streaming = true;
  c.pending = { user: text, text: "", posts: [], error: null };
  render(c);
  try { await ensureConv(c); } catch (e) {
    c.streaming = false;
    c.pending = null;
    render(c);
    banner(c, e.message);
    return;
  }
  await generate(c, `/v1/conversations/${c.id}/messages`, { content: text }, text);
}

function regenerate(c, msg) {
  if (c.streaming) return;
  return generate(c, `/v1/conversations/${c.id}/messages/${msg.id}/regenerate`, {}, null);
}

async function activate(c, id) {
  if (c.streaming) return;
  try { c.data = await api("POST", `/v1/conversations/${c.id}/messages/${id}/activate`); } catch (e) { banner(c, e.message); }
  render(c);
}

async function saveEdit(c, msg, text) {
  c.editing = null;
  if (msg.role === "assistant") {
    try { await api("POST", `/v1/conversations/${c.id}/messages/${msg.id}/edit`, { content: text }); } catch (e) { banner(c, e.message); }
    await reload(c);
  } else {
    await generate(c, `/v1/conversations/${c.id}/messages/${msg.id}/edit`, { content: text }, text);
  }
}

// ---------- rendering ----------
function versionSwitcher(c, msg) {
  const v = msg.version;
  if (!v || v.count < 2) return null;
  const go = (d) => activate(c, v.siblings[v.index - 1 + d]);
  return el("span", { class: "versions", "data-testid": "versions" },
    el("button", { type: "button", "data-testid": "version-prev", disabled: v.index <= 1 || c.streaming, onclick: () => go(-1), title: "Earlier version" }, "‹"),
    el("span", { "data-testid": "version-label", text: `${v.index} / ${v.count}` }),
    el("button", { type: "button", "data-testid": "version-next", disabled: v.index >= v.count || c.streaming, onclick: () => go(1), title: "Later version" }, "›"));
}

function editor(c, msg) {
  const node = $("#editor-template").content.firstElementChild.cloneNode(true);
  const ta = $("textarea", node);
  const preview = $(".preview", node);
  const update = () => { preview.replaceChildren(...renderMarkdown(ta.value).childNodes); };
  ta.value = c.editing.text;
  ta.addEventListener("input", () => { c.editing.text = ta.value; update(); });
  update();
  $(".save", node).addEventListener("click", () => { if (ta.value.trim()) saveEdit(c, msg, ta.value); });
  $(".cancel", node).addEventListener("click", () => { c.editing = null; render(c); });
  if (msg.role === "user") $(".save", node).textContent = "Save and ask";
  setTimeout(() => ta.focus(), 0);
  return node;
}

function answerView(c, msg, live) {
  const results = msg.search_results || [];
  const cards = el("div", { class: "cards", "data-testid": "cards" });
  const openCard = (n) => {
    const p = results.find((r) => r.number === n) || (live && live.posts.find((r) => r.number === n));
    if (!p) return;
    const key = `${msg.id || "live"}:${n}`;
    if (c.open.has(key)) c.open.delete(key); else c.open.add(key);
    render(c);
  };
  const body = renderMarkdown(msg.content, openCard);
  for (const r of live ? live.posts : results) {
    if (c.open.has(`${msg.id || "live"}:${r.number}`)) cards.append(postCard(r, r.number));
  }
  const wrap = el("div", { class: "bubble", dir: "auto", "data-testid": "answer-text" }, body);
  const view = el("div", {}, wrap, cards);
  if (!live) {
    const t = msg.tidings || {};
    const bits = [];
    if (msg.as_of || t.as_of) bits.push(`as of ${fmtTime(msg.as_of || t.as_of)}`);
    if (t.window && t.window.label) bits.push(t.window.label);
    if (t.persona) bits.push(t.persona);
    if (msg.origin === "edited") bits.push("edited");
    if (results.length) bits.push(`${results.length} cited post${results.length === 1 ? "" : "s"}`);
    view.append(el("div", { class: "meta", "data-testid": "answer-meta", text: bits.join(" · ") }));
    if (msg.status === "error" && msg.error) {
      view.append(el("div", { class: "meta", text: `failed: ${msg.error.message}` }));
    }
    const ups = (msg.related_questions || []).map((q) =>
      el("button", { type: "button", "data-testid": "followup", disabled: c.streaming, onclick: () => ask(c, q) }, q));
    if (ups.length) view.append(el("div", { class: "followups" }, ...ups));
  }
  return view;
}

function messageView(c, msg) {
  const isUser = msg.role === "user";
  const node = el("div", { class: `msg ${msg.role}${msg.status === "error" ? " error" : ""}`, "data-testid": `msg-${msg.role}`, "data-id": msg.id });
  if (c.editing && c.editing.id === msg.id) {
    node.append(editor(c, msg));
    return node;
  }
  node.append(isUser ? el("div", { class: "bubble", dir: "auto", text: msg.content }) : answerView(c, msg, null));
  const tools = el("div", { class: "tools" }, versionSwitcher(c, msg));
  tools.append(el("button", { type: "button", "data-testid": "edit", disabled: c.streaming, onclick: () => { c.editing = { id: msg.id, text: msg.content }; render(c); } }, "Edit"));
  if (!isUser) tools.append(el("button", { type: "button", "data-testid": "regenerate", disabled: c.streaming, onclick: () => regenerate(c, msg) }, "Regenerate"));
  node.append(tools);
  return node;
}

function startScreen(c) {
  const box = el("div", { class: "start", "data-testid": "start" },
    el("h2", { text: "What is happening right now?" }),
    el("p", { class: "muted", text: "Ask about anything in the feed. Answers cite the posts they rest on." }));
  const list = el("div", { class: "suggestions", "data-testid": "suggestions" }, el("span", { class: "muted", text: "Looking at what is trending…" }));
  box.append(list);
  fetch(`/v1/trending?window=${encodeURIComponent(trendWindow())}${asOfParam()}`, { headers: headers() })
    .then((r) => r.json())
    .then((data) => {
      const topics = data.topics || [];
      list.replaceChildren(...(topics.length
        ? topics.map((t) => el("button", { type: "button", "data-testid": "suggestion", onclick: () => ask(c, t.question) }, t.question))
        : [el("span", { class: "muted", text: "Nothing is trending in this window yet." })]));
    })
    .catch(() => list.replaceChildren(el("span", { class: "muted", text: "Trending topics are unavailable." })));
  return box;
}

function trendWindow() {
  const w = $("#window").value;
  return w === "auto" ? "24h" : w;
}

function render(c) {
  const scroller = $(".messages", c.pane);
  const atBottom = !scroller || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const list = el("div", { class: "messages", "data-testid": "messages" });
  const msgs = byId(c);
  const path = (c.data && c.data.active_path) || [];
  if (!path.length && !c.pending) list.append(startScreen(c));
  for (const id of path) {
    const m = msgs.get(id);
    if (m) list.append(messageView(c, m));
  }
  if (c.pending) {
    if (c.pending.user) list.append(el("div", { class: "msg user", "data-testid": "msg-user" }, el("div", { class: "bubble", dir: "auto", text: c.pending.user })));
    const live = el("div", { class: "msg assistant streaming", "data-testid": "msg-streaming" },
      answerView(c, { content: c.pending.text || "…" }, c.pending));
    if (c.pending.error) live.append(el("div", { class: "meta", text: `failed: ${c.pending.error}` }));
    list.append(live);
  }
  const input = el("textarea", { placeholder: "Ask what is happening…", "data-testid": "input", rows: 2 });
  const draft = $(".composer textarea", c.pane);
  if (draft) input.value = draft.value;
  const send = el("button", { type: "button", "data-testid": "send", disabled: c.streaming, onclick: () => { const t = input.value; input.value = ""; ask(c, t); } }, c.streaming ? "Answering…" : "Ask");
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send.click(); } });
  const hadFocus = draft && document.activeElement === draft;
  c.pane.replaceChildren(list, el("div", { class: "composer" }, input, send));
  if (hadFocus) input.focus();
  if (atBottom) list.scrollTop = list.scrollHeight;
  layout();
}

// Earlier conversations (kept by the server across restarts), newest first.
async function loadHistory() {
  const select = $("#history");
  try {
    const list = await api("GET", "/v1/conversations?limit=50");
    select.replaceChildren(el("option", { value: "", text: "Earlier conversations…" }),
      ...list.data.map((c) => el("option", { value: c.id, text: `${c.title || "Untitled"} · ${fmtTime(c.updated_at)}` })));
  } catch {
    select.replaceChildren(el("option", { value: "", text: "Earlier conversations (unavailable)" }));
  }
}

async function openEarlier(id) {
  if (!id) return;
  const open = state.convs.find((c) => c.id === id);
  if (open) { focusConv(open); return; }
  try {
    const data = await api("GET", `/v1/conversations/${id}`);
    const fresh = state.convs.find((c) => !c.id && !c.streaming);
    if (fresh) { fresh.id = data.id; fresh.data = data; focusConv(fresh); render(fresh); }
    else addConv(data);
  } catch (e) { const c = activeConv(); if (c) banner(c, e.message); }
}

// ---------- live sidebar ----------
let liveAbort = null;
function startLive() {
  if (liveAbort) liveAbort.abort();
  liveAbort = new AbortController();
  const raw = $("#live-filter").value.trim();
  const words = raw.split(/\s+/).filter((w) => w && !w.startsWith("@"));
  const handles = raw.split(/\s+/).filter((w) => w.startsWith("@")).map((w) => w.slice(1));
  let q = "?backfill=30";
  if (words.length) q += `&q=${encodeURIComponent(words.join(" "))}`;
  if (handles.length) q += `&handles=${encodeURIComponent(handles.join(","))}`;
  const list = $("#live-posts");
  list.replaceChildren();
  const status = $("#live-status");
  status.textContent = "connecting…";
  const signal = liveAbort.signal;
  fetch(`/v1/posts/stream${q}`, { headers: headers(), signal })
    .then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return readSse(r, (name, data) => {
        if (name === "post") {
          const li = el("li", { class: "fresh", "data-testid": "live-post", "data-id": data.id },
            el("div", { class: "head", text: `${data.author ? "@" + data.author : data.source} · ${fmtTime(data.created_at)}` }),
            el("div", { class: "text", dir: "auto", text: data.text || "" }));
          list.prepend(li);
          while (list.children.length > 200) list.lastChild.remove();
        } else if (name === "live") status.textContent = "live";
        else if (name === "lagged") status.textContent = `live (skipped ${data.skipped})`;
      });
    })
    .then(() => { if (!signal.aborted) { status.textContent = "reconnecting…"; setTimeout(startLive, 2000); } })
    .catch((e) => {
      if (signal.aborted) return;
      status.textContent = `offline (${e.message}); retrying`;
      setTimeout(startLive, 3000);
    });
}

// Each live source's state (connected, lagging by how much, last error, retry in).
function fmtSecs(s) {
  if (s === null || s === undefined) return "";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

async function loadSources() {
  const ul = $("#sources");
  try {
    const list = await api("GET", "/v1/sources");
    ul.replaceChildren(...list.data.map((s) => {
      const bits = [s.state.replace("_", " ")];
      if (s.connected && s.lag_secs !== null && s.lag_secs !== undefined) bits.push(`${fmtSecs(s.lag_secs)} behind`);
      if (s.backlog) bits.push(`${s.backlog} waiting`);
      if (s.retry_in_secs) bits.push(`retry in ${fmtSecs(s.retry_in_secs)}`);
      // This source's own counts since the server started: the posts listed below come from
      // every source and from the index, so "0 posts" alone read as if nothing had arrived.
      bits.push(`${s.inserted} new post${s.inserted === 1 ? "" : "s"} from it since start`);
      if (s.duplicates) bits.push(`${s.duplicates} already indexed`);
      if (s.rejected) bits.push(`${s.rejected} rejected`);
      return el("li", { class: `source ${s.connected ? "ok" : "down"}`, "data-testid": "source", "data-state": s.state, title: s.last_error ? `last error: ${s.last_error}` : "" },
        el("span", { class: "dot" }),
        el("span", { class: "name", text: s.name }),
        el("span", { class: "muted", text: ` ${bits.join(" · ")}` }));
    }));
  } catch {
    ul.replaceChildren();
  }
}

// ---------- digests ----------
// A digest is a standing question answered on a schedule; this view lists them, shows a run's
// stories (summary with citation buttons, cited posts), older runs, and runs one now.
const digestView = { open: false, selected: null, runId: null, openCards: new Set(), running: false };

function showDigests(open) {
  digestView.open = open;
  $("#digests").hidden = !open;
  $("#tabs").hidden = open;
  $("#panes").hidden = open;
  const toggle = $("#digests-toggle");
  toggle.textContent = open ? "Conversations" : "Digests";
  toggle.classList.toggle("on", open);
  if (open) loadDigests();
}

function scheduleText(d) {
  const s = d.schedule;
  const when = !s ? "on demand" : s.cron ? `cron ${s.cron} (${s.timezone || "UTC"})` : `every ${s.every}`;
  const scope = d.scope || {};
  const what = [scope.query ? `“${scope.query}”` : null, ...(scope.hashtags || []).map((h) => `#${h}`), ...(scope.handles || []).map((h) => `@${h}`)]
    .filter(Boolean).join(" ");
  return [when, `last ${d.window}`, what || "whole feed"].join(" · ");
}

async function loadDigests() {
  const ul = $("#digest-items");
  try {
    const list = await api("GET", "/v1/digests");
    ul.replaceChildren(...(list.data.length
      ? list.data.map((d) => el("li", { class: d.id === digestView.selected ? "active" : null, "data-testid": "digest-item", "data-id": d.id, onclick: () => openDigest(d.id) },
        el("div", { class: "name", text: d.name }),
        el("div", { class: "muted", text: scheduleText(d) })))
      : [el("li", { class: "muted", text: "No digests yet. Create one below, in tidings.toml, or with `tidings digest add`." })]));
    if (!digestView.selected && list.data.length) openDigest(list.data[0].id);
  } catch (e) {
    ul.replaceChildren(el("li", { class: "bad", text: `Digests are unavailable: ${e.message}` }));
  }
}

async function openDigest(id, runId) {
  digestView.selected = id;
  digestView.runId = runId || null;
  digestView.openCards.clear();
  for (const li of document.querySelectorAll("#digest-items li")) li.classList.toggle("active", li.dataset.id === id);
  const detail = $("#digest-detail");
  try {
    const [d, runs] = await Promise.all([api("GET", `/v1/digests/${id}`), api("GET", `/v1/digests/${id}/runs?limit=30`)]);
    if (digestView.selected !== id) return;
    const run = runs.data.find((r) => r.id === digestView.runId) || runs.data[0] || null;
    digestView.runId = run ? run.id : null;
    detail.replaceChildren(digestDetail(d, runs.data, run));
  } catch (e) {
    detail.replaceChildren(el("div", { class: "banner", text: e.message }));
  }
}

async function runDigest(d) {
  digestView.running = true;
  const button = $("[data-testid=digest-run]");
  if (button) { button.disabled = true; button.textContent = "Running…"; }
  const asOf = $("#as-of").value.trim();
  try {
    const run = await api("POST", `/v1/digests/${d.id}/run`, asOf ? { as_of: asOf } : {});
    digestView.running = false;
    await openDigest(d.id, run.id);
  } catch (e) {
    digestView.running = false;
    await openDigest(d.id);
    $("#digest-detail").prepend(el("div", { class: "banner", "data-testid": "digest-error", text: e.message }));
  }
}

function digestDetail(d, runs, run) {
  const asOf = $("#as-of").value.trim();
  const feed = el("a", { href: d.feed_url, target: "_blank", rel: "noopener", "data-testid": "digest-feed" }, "Atom feed");
  const runButton = el("button", { type: "button", "data-testid": "digest-run", disabled: digestView.running, onclick: () => runDigest(d) },
    digestView.running ? "Running…" : asOf ? `Run as of ${asOf}` : "Run now");
  const picker = el("select", { "data-testid": "digest-runs", title: "Earlier runs", onchange: (e) => openDigest(d.id, e.target.value) },
    ...runs.map((r) => el("option", { value: r.id, selected: run && r.id === run.id, text: `${fmtTime(r.as_of)} · ${r.status}${r.reason === "scheduled" ? "" : ` · ${r.reason}`}` })));
  const head = el("div", { class: "digest-head" },
    el("h2", { text: d.name }),
    el("div", { class: "muted", text: scheduleText(d) }),
    el("div", { class: "digest-actions" }, runButton, runs.length ? picker : null, feed));
  return el("div", {}, head, run ? runView(run) : el("p", { class: "muted", "data-testid": "digest-norun", text: "This digest has not run yet." }));
}

function runView(run) {
  const box = el("div", { class: "digest-run", "data-testid": "digest-run-view", "data-status": run.status });
  const out = run.output || {};
  const bits = [`as of ${fmtTime(run.as_of)}`];
  if (out.window) bits.push(`${fmtTime(out.window.from)} – ${fmtTime(out.window.to)}`);
  if (out.posts_seen !== undefined) bits.push(`${out.posts_seen} posts read`);
  if (run.started_at && run.finished_at) bits.push(`took ${((new Date(run.finished_at) - new Date(run.started_at)) / 1000).toFixed(1)} s`);
  box.append(el("div", { class: "meta", "data-testid": "digest-run-meta", text: bits.join(" · ") }));
  if (run.status === "failed") {
    const err = run.error || {};
    box.append(el("div", { class: "banner", "data-testid": "digest-failed", text: `This run failed (${err.code || "error"}): ${err.message || "no reason recorded"}. It is not a quiet window.` }));
    return box;
  }
  if (run.status === "running") {
    box.append(el("p", { class: "muted", text: "Running…" }));
    return box;
  }
  const stories = out.stories || [];
  if (!stories.length) {
    box.append(el("p", { class: "quiet", "data-testid": "digest-quiet", text: out.message || "No notable stories in this window." }));
    return box;
  }
  for (const s of stories) box.append(storyView(run, s));
  return box;
}

function storyView(run, s) {
  const cards = el("div", { class: "cards", "data-testid": "cards" });
  const fill = () => cards.replaceChildren(...(s.citations || [])
    .filter((c) => digestView.openCards.has(`${run.id}:${s.rank}:${c.number}`))
    .map((c) => postCard(c, c.number)));
  const toggle = (n) => {
    const key = `${run.id}:${s.rank}:${n}`;
    if (digestView.openCards.has(key)) digestView.openCards.delete(key); else digestView.openCards.add(key);
    fill();
  };
  fill();
  const stats = `${s.posts} posts${s.copies ? ` (${s.copies} copies)` : ""} · ${s.accounts} accounts · ${Number(s.burst).toFixed(1)}× its usual volume · ${(s.citations || []).length} cited`;
  const all = el("button", { type: "button", class: "link", "data-testid": "story-sources", onclick: () => { for (const c of s.citations || []) digestView.openCards.add(`${run.id}:${s.rank}:${c.number}`); fill(); } }, "show sources");
  return el("article", { class: "story", "data-testid": "story" },
    el("h3", { "data-testid": "story-headline", text: `${s.rank}. ${s.headline}` }),
    el("div", { class: "bubble", "data-testid": "story-summary" }, renderMarkdown(s.summary, toggle)),
    el("div", { class: "meta" }, el("span", { text: stats }), " ", all),
    cards);
}

async function createDigest(form) {
  const f = new FormData(form);
  const body = { name: f.get("name").trim(), window: f.get("window").trim() || "24h", max_stories: Number(f.get("max_stories")) || 5 };
  const query = f.get("query").trim();
  if (query) body.scope = { query };
  const cron = f.get("cron").trim();
  if (cron) {
    body.schedule = { cron };
    const tz = f.get("timezone").trim();
    if (tz) body.schedule.timezone = tz;
  }
  const old = $("[data-testid=digest-error]");
  if (old) old.remove();
  try {
    const d = await api("POST", "/v1/digests", body);
    form.reset();
    form.closest("details").open = false;
    digestView.selected = d.id;
    await loadDigests();
    await openDigest(d.id);
  } catch (e) {
    form.append(el("div", { class: "banner", "data-testid": "digest-error", text: e.message }));
  }
}

// ---------- start ----------
function init() {
  if (params.get("as_of")) $("#as-of").value = params.get("as_of");
  if (params.get("window")) $("#window").value = params.get("window");
  $("#tabs").append(el("button", { id: "new-tab", type: "button", "data-testid": "new-tab", title: "New conversation", onclick: () => addConv(null) }, "+ New"));
  const history = el("select", { id: "history", "data-testid": "history", title: "Open an earlier conversation" });
  history.addEventListener("focus", loadHistory);
  history.addEventListener("change", () => { openEarlier(history.value); history.value = ""; });
  $("#tabs").append(history);
  loadHistory();
  $("#layout").addEventListener("click", () => { state.sideBySide = !state.sideBySide; layout(); });
  $("#key").addEventListener("click", askForKey);
  $("#digests-toggle").addEventListener("click", () => showDigests(!digestView.open));
  $("#digest-form").addEventListener("submit", (e) => { e.preventDefault(); createDigest(e.target); });
  $("#persona").addEventListener("change", applySettings);
  $("#window").addEventListener("change", () => { applySettings(); const c = activeConv(); if (c && !c.id) render(c); });
  $("#as-of").addEventListener("change", () => { applySettings(); const c = activeConv(); if (c && !c.id) render(c); });
  let t = null;
  $("#live-filter").addEventListener("input", () => { clearTimeout(t); t = setTimeout(startLive, 300); });
  addConv(null);
  startLive();
  if (params.get("view") === "digests") showDigests(true);
  loadSources();
  setInterval(loadSources, 5000);
}

document.addEventListener("DOMContentLoaded", init);

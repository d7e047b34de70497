// replyguard review app: a little vanilla JS, no build step.
// Buttons call the JSON API (X-CSRF-Token from <meta name="csrf-token">); the queue polls for new rows;
// keyboard: j/k move, single keys act, ? shows help.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

function toast(text, bad) {
  const box = document.getElementById("toast");
  if (!box) return;
  const msg = document.createElement("div");
  msg.className = "msg" + (bad ? " bad" : "");
  msg.textContent = text;
  box.appendChild(msg);
  setTimeout(() => msg.remove(), bad ? 6000 : 3000);
}

async function call(path, body) {
  const res = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
    body: JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { data = {error: "unexpected answer (" + res.status + ")"}; }
  if (res.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
  if (!res.ok) { toast(data.error || ("failed: " + res.status), true); throw Object.assign(new Error(data.error), {data, status: res.status}); }
  return data;
}

// "brand/message id": a platform's message id may itself hold "/" (WhatsApp wamids are base64)
const itemPath = key => { const cut = key.indexOf("/"); return encodeURIComponent(key.slice(0, cut)) + "/" + encodeURIComponent(key.slice(cut + 1)); };
const itemApi = (key, action) => "/api/review/items/" + itemPath(key) + "/" + action;

function typing(ev) {
  const t = ev.target;
  return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
}

// ---- help overlay -------------------------------------------------------------------------
function toggleHelp(show) {
  const help = document.getElementById("help");
  if (help) help.hidden = show === undefined ? !help.hidden : !show;
}

// ---- the queue ----------------------------------------------------------------------------
function setupQueue(table) {
  let current = 0;
  const rows = () => Array.from(table.querySelectorAll("tbody tr[data-key]"));
  const selected = () => rows().filter(r => r.querySelector(".pick").checked).map(r => r.dataset.key);
  const currentRow = () => rows()[current];

  function mark(keepKey) {
    const list = rows();
    if (keepKey) { const i = list.findIndex(r => r.dataset.key === keepKey); if (i >= 0) current = i; }
    current = Math.max(0, Math.min(current, list.length - 1));
    list.forEach((r, i) => r.classList.toggle("current", i === current));
    const row = list[current];
    if (row) row.scrollIntoView({block: "nearest"});
    sessionStorage.setItem("rg-queue", JSON.stringify(list.map(r => r.dataset.key)));
    sessionStorage.setItem("rg-queue-url", location.pathname + location.search);
    document.getElementById("selected-count").textContent = selected().length + " selected";
  }

  async function refresh() {
    const res = await fetch(table.dataset.rowsUrl, {credentials: "same-origin"});
    if (res.status === 401 || res.redirected) { location.reload(); return; }
    if (!res.ok) return;
    const html = await res.text();
    const keep = currentRow() ? currentRow().dataset.key : null;
    const picked = new Set(selected());
    const before = new Set(rows().map(r => r.dataset.key));
    const body = table.querySelector("tbody");
    body.innerHTML = html;
    rows().forEach(r => {
      if (picked.has(r.dataset.key)) r.querySelector(".pick").checked = true;
      if (before.size && !before.has(r.dataset.key)) r.classList.add("fresh");
    });
    const total = res.headers.get("X-Queue-Total");
    if (total !== null) document.getElementById("queue-total").textContent = total + " open";
    mark(keep);
  }

  async function act(action, keys, params) {
    if (!keys.length) { toast("Select items first (x), or move to one (j/k)", true); return; }
    const data = await call("/api/review/bulk", {action, items: keys, params: params || {}});
    const failed = data.results.filter(r => !r.ok);
    toast(action + ": " + (data.results.length - failed.length) + " done" + (failed.length ? ", " + failed.length + " refused: " + failed[0].error : ""), failed.length > 0);
    await refresh();
  }

  table.addEventListener("click", ev => {
    const row = ev.target.closest("tr[data-key]");
    if (!row) return;
    current = rows().indexOf(row);
    mark();
    if (ev.target.classList.contains("pick")) return;
  });
  table.addEventListener("change", ev => { if (ev.target.classList.contains("pick")) mark(); });
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("change", () => { rows().forEach(r => { r.querySelector(".pick").checked = all.checked; }); mark(); });

  document.querySelectorAll("[data-bulk]").forEach(btn => btn.addEventListener("click", () => {
    const action = btn.dataset.bulk;
    const params = action === "reroute" ? {role: document.getElementById("bulk-role").value || null,
                                           priority: document.getElementById("bulk-priority").value || null} : {};
    act(action, selected(), params).catch(() => {});
  }));
  document.querySelectorAll("[data-autosubmit]").forEach(sel => sel.addEventListener("change", () => sel.form.submit()));

  document.addEventListener("keydown", ev => {
    if (typing(ev) || ev.metaKey || ev.ctrlKey || ev.altKey) return;
    const row = currentRow();
    const one = () => (selected().length ? selected() : (row ? [row.dataset.key] : []));
    switch (ev.key) {
      case "j": current++; mark(); break;
      case "k": current--; mark(); break;
      case "o": case "Enter": if (row) location.href = row.dataset.href; break;
      case "x": if (row) { const box = row.querySelector(".pick"); box.checked = !box.checked; mark(); } break;
      case "c": act("claim", one()).catch(() => {}); break;
      case "u": act("release", one()).catch(() => {}); break;
      case "e": act("resolve", one()).catch(() => {}); break;
      case "h": act("hide", one()).catch(() => {}); break;
      case "f": { const first = document.querySelector("#filters select"); if (first) { first.focus(); ev.preventDefault(); } break; }
      default: return;
    }
  });
  mark();
  const seconds = parseInt(table.dataset.poll || "0", 10);
  if (seconds > 0) setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, seconds * 1000);
}

// ---- one item -----------------------------------------------------------------------------
function setupItem(root) {
  const key = root.dataset.key;
  const templates = JSON.parse((document.getElementById("templates-data") || {}).textContent || "[]");
  const select = document.getElementById("template");
  const vars = document.getElementById("variables");
  const preview = document.getElementById("preview");
  const missing = document.getElementById("missing");
  const sendTemplate = document.getElementById("send-template");
  const editTemplate = document.getElementById("edit-template");
  const own = document.getElementById("own-text");
  const resolveAfter = () => document.getElementById("resolve-after").checked;
  const reload = () => setTimeout(() => location.reload(), 400);

  document.querySelectorAll("td.bar [data-w]").forEach(el => { el.style.width = Math.min(100, +el.dataset.w) + "%"; });
  document.querySelectorAll("td.bar .mark").forEach(el => { el.style.width = "2px"; el.style.left = Math.min(99, +el.dataset.w) + "%"; });

  async function act(action, body, message) {
    const data = await call(itemApi(key, action), body);
    toast(message || (action + " done"));
    reload();
    return data;
  }
  root.querySelectorAll("[data-act]").forEach(btn => btn.addEventListener("click", () => act(btn.dataset.act).catch(() => {})));

  function values() {
    const out = {};
    vars.querySelectorAll("input").forEach(i => { if (i.value.trim()) out[i.name] = i.value; });
    return out;
  }
  async function doPreview() {
    if (!select.value) { preview.hidden = true; sendTemplate.disabled = editTemplate.disabled = true; return; }
    const data = await call(itemApi(key, "preview"), {template: select.value, variables: values()});
    if (!vars.dataset.for || vars.dataset.for !== select.value) {
      vars.dataset.for = select.value;
      vars.innerHTML = "";
      Object.entries(data.values).forEach(([name, value]) => {
        const label = document.createElement("label");
        label.textContent = "{" + name + "}";
        const input = document.createElement("input");
        input.name = name; input.value = value; input.size = 16;
        input.addEventListener("input", () => { clearTimeout(input._t); input._t = setTimeout(() => doPreview().catch(() => {}), 250); });
        label.appendChild(input);
        vars.appendChild(label);
      });
    }
    preview.hidden = !data.text;
    preview.textContent = data.text || "";
    missing.hidden = !data.missing.length;
    missing.textContent = data.missing.length ? "Fill " + data.missing.map(m => "{" + m + "}").join(", ") + " to send" : "";
    sendTemplate.disabled = editTemplate.disabled = !data.text;
  }
  if (select) {
    select.addEventListener("change", () => { vars.dataset.for = ""; doPreview().catch(() => {}); });
    sendTemplate.addEventListener("click", () => act("reply", {template: select.value, variables: values(), resolve: resolveAfter()}, "reply queued for delivery").catch(() => {}));
    editTemplate.addEventListener("click", () => { own.value = preview.textContent; own.focus(); });
    document.getElementById("send-text").addEventListener("click", () => act("send", {text: own.value, resolve: resolveAfter()}, "reply queued for delivery").catch(() => {}));
  }

  const labels = document.getElementById("labels-form");
  if (labels) labels.addEventListener("submit", ev => {
    ev.preventDefault();
    const f = new FormData(labels);
    const body = {};
    if (f.get("intent")) body.intent = f.get("intent");
    if (f.get("spam")) body.spam = f.get("spam") === "true";
    if (f.get("abuse")) body.abuse = f.get("abuse");
    if (f.get("note")) body.note = f.get("note");
    act("labels", body, "labels saved").catch(() => {});
  });
  const route = document.getElementById("route-form");
  if (route) route.addEventListener("submit", ev => {
    ev.preventDefault();
    const f = new FormData(route);
    act("route", {role: f.get("role") || null, priority: f.get("priority") || null}, "re-routed").catch(() => {});
  });
  const tagBtn = document.getElementById("tag-btn");
  if (tagBtn) tagBtn.addEventListener("click", () => act("tag", {tag: document.getElementById("tag-input").value}, "tag added").catch(() => {}));

  const countdown = document.querySelector(".window[data-closes]");
  if (countdown) {
    const closes = Date.parse(countdown.dataset.closes);
    const tick = () => {
      const left = Math.round((closes - Date.now()) / 1000);
      const out = countdown.querySelector(".countdown");
      if (left <= 0) { out.textContent = "closed"; countdown.classList.add("closed"); return; }
      const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      out.textContent = (h ? h + "h " : "") + m + "m " + s + "s left";
    };
    tick(); setInterval(tick, 1000);
  }

  function neighbour(step) {
    const list = JSON.parse(sessionStorage.getItem("rg-queue") || "[]");
    const i = list.indexOf(key);
    const next = list[i + step];
    if (i >= 0 && next) location.href = "/review/items/" + itemPath(next);
    else toast(step > 0 ? "last item of the queue" : "first item of the queue");
  }
  const button = action => root.querySelector('[data-act="' + action + '"]');
  document.addEventListener("keydown", ev => {
    if (typing(ev) || ev.metaKey || ev.ctrlKey || ev.altKey) return;
    switch (ev.key) {
      case "j": neighbour(1); break;
      case "k": neighbour(-1); break;
      case "b": location.href = sessionStorage.getItem("rg-queue-url") || "/review"; break;
      case "c": act("claim", {}, "claimed").catch(() => {}); break;
      case "u": act("release", {}, "released").catch(() => {}); break;
      case "e": act("resolve", {}, "resolved").catch(() => {}); break;
      case "h": { const b = document.getElementById("hide-btn"); if (b) b.click(); break; }
      case "s": if (button("not-spam")) button("not-spam").click(); break;
      case "a": if (button("not-abusive")) button("not-abusive").click(); break;
      case "r": if (select) { select.focus(); ev.preventDefault(); } break;
      case "w": if (own) { own.focus(); ev.preventDefault(); } break;
      default: return;
    }
  });
}

// ---- auto-actioned view -------------------------------------------------------------------
function setupRowActions() {
  document.querySelectorAll("[data-row-act]").forEach(btn => btn.addEventListener("click", async () => {
    const key = btn.closest("tr[data-key]").dataset.key;
    try {
      await call(itemApi(key, btn.dataset.rowAct), {});
      toast(btn.dataset.rowAct + " done");
      setTimeout(() => location.reload(), 400);
    } catch (e) { /* toast shown */ }
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-help]").forEach(b => b.addEventListener("click", () => toggleHelp()));
  document.querySelectorAll("#help [data-close]").forEach(b => b.addEventListener("click", () => toggleHelp(false)));
  document.addEventListener("keydown", ev => {
    if (ev.key === "Escape") { toggleHelp(false); if (typing(ev)) ev.target.blur(); return; }
    if (ev.key === "?" && !typing(ev)) { toggleHelp(); ev.preventDefault(); }
  });
  const queue = document.getElementById("queue");
  if (queue) setupQueue(queue);
  const item = document.getElementById("item");
  if (item) setupItem(item);
  setupRowActions();
});

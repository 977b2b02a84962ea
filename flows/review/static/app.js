// The review page: plain JavaScript over the JSON API of flows/review. Every decision is sent
// at once; the server's journal is the only state, so reloading or a second tab shows the same.
"use strict";

const LABELS = { 0: "As scanned", 90: "90° right", 180: "180°", 270: "90° left" };
const WORDS = { 0: "upright as scanned", 90: "turn 90° right", 180: "turn 180°", 270: "turn 90° left" };
const ROTATIONS = [0, 90, 180, 270];
const KIND_WORDS = { flagged: "flagged", rotate: "automatically turned", keep: "automatically kept" };

const ui = {
  kind: "flagged", folder: "", min: "", max: "", state: "any",
  items: [], current: null, evidence: true, data: null, busy: false,
};

const $ = (id) => document.getElementById(id);
const pct = (p) => `${Math.round(p * 100)}%`;
// An automatic turn already applied: the photo is shown as it is now, and "0" means "leave it so".
const labelOf = (item, r) => (r === 0 && item.applied_by_run ? "As it is now" : LABELS[r]);
const turnWords = (item, r) => (r === 0 && item.applied_by_run ? "upright as it is now" : WORDS[r]);

// ------------------------------------------------------------------ talking to the server

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : `the server said ${response.status}`;
    throw new Error(detail);
  }
  return data;
}

function query() {
  const q = new URLSearchParams({ kind: ui.kind, state: ui.state });
  if (ui.folder) q.set("folder", ui.folder);
  if (ui.min !== "") q.set("min_confidence", String(Number(ui.min) / 100));
  if (ui.max !== "") q.set("max_confidence", String(Number(ui.max) / 100));
  return q;
}

// The server sends one page of the queue at a time (a queue may hold tens of thousands of
// photos). Without an offset it sends the page holding the current photo; "pick" chooses the
// photo to show on a page turned to: its first, its last, or its first unreviewed one.
async function load(keepId, offset = null, pick = "open") {
  const q = query();
  const wanted = keepId ?? ui.current;
  if (offset !== null) q.set("offset", String(offset));
  else if (wanted) q.set("around", wanted);
  let data;
  try {
    data = await api(`/api/state?${q}`);
  } catch (error) {
    toast(`Could not load the queue: ${error.message}`, true);
    return;
  }
  ui.data = data;
  ui.items = data.items;
  const index = offset === null ? ui.items.findIndex((i) => i.id === wanted) : -1;
  if (index >= 0) {
    ui.current = wanted;
  } else {
    const firstOpen = ui.items.find((i) => i.state === "unreviewed");
    const chosen = pick === "last" ? ui.items[ui.items.length - 1]
      : pick === "first" ? ui.items[0] : firstOpen || ui.items[0];
    ui.current = (chosen || {}).id ?? null;
  }
  renderAll();
}

// ------------------------------------------------------------------ rendering

function renderAll() {
  const data = ui.data;
  setText($("archive"), data.archive);
  $("archive").title = data.archive;
  $("reviewer").textContent = data.reviewer;
  renderKinds();
  const folder = $("folder");
  const folders = ["", ...data.folders.filter((f) => f !== "")];
  if (ui.folder && !folders.includes(ui.folder)) folders.push(ui.folder);
  folder.replaceChildren(...folders.map((f) => {
    const option = document.createElement("option");
    option.value = f;
    option.textContent = f === "" ? "All folders" : f;
    return option;
  }));
  folder.value = ui.folder;
  $("min-confidence").value = ui.min;
  $("max-confidence").value = ui.max;
  $("state").value = ui.state;
  renderProgress();
  renderList();
  renderPager();
  renderItem();
  renderBatch();
  writeHash();
}

// Long paths keep their end (the file name) visible; <bdi> keeps a leading "/" where it belongs.
function setText(element, text) {
  const bdi = document.createElement("bdi");
  bdi.textContent = text;
  element.replaceChildren(bdi);
}

function renderKinds() {
  for (const button of document.querySelectorAll("#kinds button")) {
    const kind = button.dataset.kind;
    const c = ui.data.counts[kind];
    button.classList.toggle("active", kind === ui.kind);
    button.setAttribute("aria-pressed", String(kind === ui.kind));
    button.querySelector(".count").textContent = c ? `${c.reviewed} of ${c.total}` : "";
  }
}

function renderProgress() {
  const p = ui.data.progress;
  $("progress-text").textContent = `${p.reviewed} of ${p.total} reviewed`;
  $("progress-fill").style.width = p.total ? `${(100 * p.reviewed) / p.total}%` : "0";
}

function stateBadge(item) {
  if (item.state === "applied") return ["applied", "Applied"];
  if (item.state === "decided") return ["decided", item.decision_deg === 0 ? "Upright" : `${item.decision_deg}°`];
  return ["open", ""];
}

function renderList() {
  const list = $("list");
  list.replaceChildren(...ui.items.map((item) => {
    const li = document.createElement("li");
    li.dataset.id = item.id;
    li.className = `entry ${item.state}${item.id === ui.current ? " current" : ""}`;
    const dot = document.createElement("span");
    dot.className = "dot";
    const name = document.createElement("span");
    name.className = "name";
    setText(name, item.path);
    name.title = item.path;
    const conf = document.createElement("span");
    conf.className = "conf";
    conf.textContent = pct(item.confidence);
    const [cls, text] = stateBadge(item);
    const badge = document.createElement("span");
    badge.className = `badge ${cls}`;
    badge.textContent = text;
    li.append(dot, name, badge, conf);
    li.addEventListener("click", () => go(item.id));
    return li;
  }));
  showCurrent();
}

// Moving to another photo only moves the highlight: the list is not built again.
function showCurrent() {
  const list = $("list");
  for (const entry of list.querySelectorAll(".current")) entry.classList.remove("current");
  const current = [...list.children].find((li) => li.dataset.id === ui.current);
  if (current) {
    current.classList.add("current");
    current.scrollIntoView({ block: "nearest" });
  }
}

function renderPager() {
  const { matching, offset, limit } = ui.data;
  $("pager").hidden = matching <= limit;
  const last = Math.min(offset + ui.items.length, matching);
  $("page-text").textContent = `${(offset + 1).toLocaleString()}–${last.toLocaleString()} of ${matching.toLocaleString()}`;
  $("page-prev").disabled = offset === 0;
  $("page-next").disabled = last >= matching;
}

function turnPage(step, pick) {
  const { matching, offset, limit } = ui.data;
  // Showing only unreviewed photos, those decided on this page have left the server's list:
  // the next page starts that many places earlier, or it would skip as many unreviewed ones.
  const left = ui.state === "unreviewed" ? ui.items.filter((i) => i.state !== "unreviewed").length : 0;
  const to = step > 0 ? offset + limit - left : offset > 0 ? Math.max(0, offset - limit) : -1;
  if (to < 0 || to >= matching - left) return false;
  load(null, to, pick);
  return true;
}

function currentItem() {
  return ui.items.find((i) => i.id === ui.current) || null;
}

function renderItem() {
  const item = currentItem();
  $("item").hidden = !item;
  $("empty").hidden = !!item;
  if (!item) {
    const total = ui.data ? ui.data.counts[ui.kind].total : 0;
    $("empty-text").textContent = total
      ? "No photos match these filters."
      : `No ${KIND_WORDS[ui.kind]} photos in this archive's reports.`;
    return;
  }
  const path = $("path");
  setText(path, item.path);
  path.href = `/photo/${item.path.split("/").map(encodeURIComponent).join("/")}`;
  const what = item.action === "flag" ? `flagged by run ${item.run_id}`
    : item.applied_by_run ? `turned automatically by run ${item.run_id}`
      : item.action === "rotate" ? `automatic decision of run ${item.run_id} (not applied)`
        : `kept automatically by run ${item.run_id}`;
  $("meta").textContent = `Suggested: ${turnWords(item, item.suggested_deg)} · confidence ${pct(item.confidence)} · ${what}`;
  const status = $("status");
  status.className = `status ${item.state}`;
  if (item.state === "unreviewed") {
    status.textContent = "Not reviewed yet";
  } else {
    const when = item.decided_at
      ? new Date(item.decided_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "";
    const verb = item.state === "applied" ? "Applied" : "Decided";
    status.textContent = `${verb}: ${turnWords(item, item.decision_deg)} · ${item.reviewer} · ${when}`;
  }
  const version = item.current_sha256.slice(0, 12);
  const cards = ROTATIONS.map((r, k) => {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "card";
    card.dataset.rotation = String(r);
    if (r === item.suggested_deg) card.classList.add("suggested");
    if (item.decision_deg === r && item.state !== "unreviewed") card.classList.add("chosen");
    card.disabled = item.state === "applied";
    const p = item.probs[String(r)];
    card.innerHTML = `
      <div class="card-head">
        <kbd>${k + 1}</kbd><span class="label">${labelOf(item, r)}</span>
        <span class="tag"></span>
      </div>
      <div class="prob"><div class="prob-bar"></div>
        <span class="prob-text">${pct(p)}</span></div>
      <div class="frame"><img alt="" loading="eager"></div>
      <div class="frame evidence"><img alt="" loading="eager"></div>`;
    card.querySelector(".prob-bar").style.width = `${(100 * p).toFixed(1)}%`;  // CSSOM: the page's CSP allows no inline style
    card.querySelector(".tag").textContent =
      card.classList.contains("chosen") ? "✓ Upright" : card.classList.contains("suggested") ? "Suggested" : "";
    const [photo, evidence] = card.querySelectorAll("img");
    photo.src = `/api/items/${item.id}/candidate/${r}.jpg?v=${version}`;
    photo.alt = `${item.path}, ${labelOf(item, r).toLowerCase()}`;
    evidence.src = `/api/items/${item.id}/evidence/${r}.jpg?v=${version}`;
    evidence.alt = `evidence for ${labelOf(item, r).toLowerCase()}`;
    evidence.addEventListener("error", () => { evidence.parentElement.classList.add("missing"); });
    card.addEventListener("click", () => choose(r));
    return card;
  });
  $("candidates").replaceChildren(...cards);
  $("candidates").classList.toggle("no-evidence", !ui.evidence);
  $("evidence-note").hidden = !ui.evidence;
  preload(neighbour(1));
}

function renderBatch() {
  const open = ui.items.filter((i) => i.state === "unreviewed");
  const button = $("accept-all");
  button.disabled = open.length === 0;
  button.textContent = open.length ? `Accept ${open.length} suggestion${open.length === 1 ? "" : "s"}` : "Accept suggestions";
  const where = ui.folder ? `in ${ui.folder}` : "in all folders";
  const range = ui.min !== "" || ui.max !== "" ? `, confidence ${ui.min || 0}–${ui.max || 100}%` : "";
  const scope = ui.data.matching > ui.items.length ? "on this page" : "shown";
  $("batch-hint").textContent = open.length ? `Unreviewed photos ${scope}: ${where}${range}.` : "";
}

function preload(item) {
  if (!item) return;
  const version = item.current_sha256.slice(0, 12);
  for (const r of ROTATIONS) {
    new Image().src = `/api/items/${item.id}/candidate/${r}.jpg?v=${version}`;
    if (ui.evidence) new Image().src = `/api/items/${item.id}/evidence/${r}.jpg?v=${version}`;
  }
}

function writeHash() {
  const q = new URLSearchParams({ kind: ui.kind });
  if (ui.folder) q.set("folder", ui.folder);
  if (ui.min !== "") q.set("min", ui.min);
  if (ui.max !== "") q.set("max", ui.max);
  if (ui.state !== "any") q.set("state", ui.state);
  if (ui.current) q.set("item", ui.current);
  history.replaceState(null, "", `#${q}`);
}

function readHash() {
  const q = new URLSearchParams(location.hash.slice(1));
  ui.kind = ["flagged", "rotate", "keep"].includes(q.get("kind")) ? q.get("kind") : "flagged";
  ui.folder = q.get("folder") || "";
  ui.min = q.get("min") || "";
  ui.max = q.get("max") || "";
  ui.state = q.get("state") || "any";
  ui.current = q.get("item");
}

// ------------------------------------------------------------------ acting

function neighbour(step) {
  const index = ui.items.findIndex((i) => i.id === ui.current);
  return ui.items[index + step] || null;
}

function go(id) {
  if (!id) return;
  ui.current = id;
  showCurrent();
  renderItem();
  writeHash();
}

function move(step) {
  const next = neighbour(step);
  if (next) go(next.id);
  else turnPage(step, step > 0 ? "first" : "last");
}

function nextOpen() {
  const index = ui.items.findIndex((i) => i.id === ui.current);
  const after = ui.items.slice(index + 1).find((i) => i.state === "unreviewed");
  const before = ui.items.slice(0, index).find((i) => i.state === "unreviewed");
  return after || before || null;
}

async function choose(rotation) {
  const item = currentItem();
  if (!item || ui.busy) return;
  if (item.state === "applied") {
    toast("Already applied to the file; undo that apply-review run to decide again.", true);
    return;
  }
  ui.busy = true;
  try {
    const updated = await api(`/api/items/${item.id}/decision`, { rotation_deg: rotation });
    const was = item.state;
    Object.assign(item, updated);
    if (was === "unreviewed") {
      ui.data.progress.reviewed += 1;
      ui.data.counts[ui.kind].reviewed += 1;
    }
    renderProgress();
    renderKinds();
    renderItem();
    renderList();
    renderBatch();
    const next = nextOpen();
    setTimeout(() => {
      if (ui.current !== item.id) return;
      if (next) go(next.id);
      else turnPage(1, "open"); // this page is done: the next one opens at its first unreviewed photo
    }, 220);
  } catch (error) {
    toast(error.message, true);
    load();
  } finally {
    ui.busy = false;
  }
}

async function acceptAll() {
  const open = ui.items.filter((i) => i.state === "unreviewed");
  if (!open.length) return;
  const where = ui.folder ? ` in ${ui.folder}` : "";
  if (!confirm(`Accept the suggested view for ${open.length} unreviewed photo${open.length === 1 ? "" : "s"}${where}?`)) return;
  try {
    const result = await api("/api/accept", {
      kind: ui.kind,
      folder: ui.folder || null,
      min_confidence: ui.min === "" ? null : Number(ui.min) / 100,
      max_confidence: ui.max === "" ? null : Number(ui.max) / 100,
      ids: open.map((i) => i.id),
    });
    toast(`Accepted ${result.accepted} suggestion${result.accepted === 1 ? "" : "s"}.`);
  } catch (error) {
    toast(error.message, true);
  }
  load();
}

let toastTimer = null;
function toast(text, isError = false) {
  const t = $("toast");
  t.textContent = text;
  t.className = `toast${isError ? " error" : ""}`;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 6000 : 2500);
}

// ------------------------------------------------------------------ wiring

function onKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const tag = (event.target.tagName || "").toLowerCase();
  if (["input", "select", "textarea"].includes(tag) || $("help").open) return;
  const key = event.key;
  if (["1", "2", "3", "4"].includes(key)) {
    choose(ROTATIONS[Number(key) - 1]);
  } else if (key === "Enter") {
    const item = currentItem();
    if (item) choose(item.suggested_deg);
  } else if (key === "s" || key === "S") {
    move(1);
  } else if (key === "ArrowRight" || key === "ArrowDown") {
    move(1);
  } else if (key === "ArrowLeft" || key === "ArrowUp") {
    move(-1);
  } else if (key === "e" || key === "E") {
    ui.evidence = !ui.evidence;
    $("show-evidence").checked = ui.evidence;
    renderItem();
  } else if (key === "?") {
    $("help").showModal();
  } else {
    return;
  }
  event.preventDefault();
}

function setup() {
  readHash();
  for (const button of document.querySelectorAll("#kinds button")) {
    button.addEventListener("click", () => {
      ui.kind = button.dataset.kind;
      ui.folder = "";
      ui.current = null;
      load();
    });
  }
  const refilter = () => load();
  $("folder").addEventListener("change", (e) => { ui.folder = e.target.value; e.target.blur(); refilter(); });
  $("state").addEventListener("change", (e) => { ui.state = e.target.value; e.target.blur(); refilter(); });
  $("min-confidence").addEventListener("change", (e) => { ui.min = e.target.value; refilter(); });
  $("max-confidence").addEventListener("change", (e) => { ui.max = e.target.value; refilter(); });
  $("accept-all").addEventListener("click", acceptAll);
  $("prev").addEventListener("click", () => move(-1));
  $("next").addEventListener("click", () => move(1));
  $("page-prev").addEventListener("click", () => turnPage(-1, "first"));
  $("page-next").addEventListener("click", () => turnPage(1, "first"));
  $("skip").addEventListener("click", () => move(1));
  $("show-evidence").addEventListener("change", (e) => { ui.evidence = e.target.checked; e.target.blur(); renderItem(); });
  $("help-button").addEventListener("click", () => $("help").showModal());
  document.addEventListener("keydown", onKey);
  // Another tab (or person) may decide too: catch up when this tab comes back, and now and then.
  window.addEventListener("focus", () => load());
  setInterval(() => { if (document.visibilityState === "visible" && !ui.busy) load(); }, 15000);
  load();
}

setup();

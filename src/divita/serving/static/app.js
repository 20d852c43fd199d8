// The page of `divita serve`: upload a trailer, follow its job, show its genres and timeline; earlier jobs below.
// Plain JavaScript, no build step. Text from the server is always set with textContent (file names are the
// client's own and never trusted as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 10;
let token = localStorage.getItem("divita-token") || "";
let current = null;        // id of the job shown
let pollTimer = null;
let offset = 0;
let timelineUrl = null;

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (r.status === 401) { askToken(); throw new Error("token required"); }
  if (!r.ok) {
    let reason = r.status + " " + r.statusText;
    try { reason = (await r.json()).error || reason; } catch (e) { /* not JSON */ }
    throw new Error(reason);
  }
  return r;
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function message(text, isError = false) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

function askToken() {
  $("token-card").style.display = "block";
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function size(bytes) {
  if (bytes >= 1048576) return (bytes / 1048576).toFixed(1) + " MiB";
  if (bytes >= 1024) return (bytes / 1024).toFixed(0) + " KiB";
  return bytes + " bytes";
}

function seconds(a, b) {
  return a && b ? ((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1) + " s" : "";
}

// -- the served model -------------------------------------------------------------------------------------
async function loadHealth() {
  try {
    const h = await (await api("/healthz")).json();
    const backbones = Object.entries(h.backbones).map(([m, b]) => b + " (" + m + ")").join(" + ");
    const uap = h.metrics && h.metrics.tst ? h.metrics.tst.uap : null;
    const m = uap == null ? "" : " · test μAP " + (100 * uap).toFixed(1) + " %";
    $("model").textContent = backbones + m + " · queue " + h.queue_length + " · " + h.workers + " worker" + (h.workers === 1 ? "" : "s");
    $("token-card").style.display = "none";
    return true;
  } catch (e) {
    $("model").textContent = e.message === "token required" ? "token required" : "server: " + e.message;
    return false;
  }
}

// -- uploading --------------------------------------------------------------------------------------------
function upload(file) {
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/predictions");
  if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
  $("progress").style.display = "block";
  $("progress-fill").style.width = "0%";
  $("progress-text").textContent = "uploading " + file.name + "…";
  message("");
  xhr.upload.onprogress = (ev) => {
    if (!ev.lengthComputable) return;
    const pct = Math.round((100 * ev.loaded) / ev.total);
    $("progress-fill").style.width = pct + "%";
    $("progress-text").textContent = "uploading " + file.name + ": " + pct + " % of " + size(ev.total);
  };
  xhr.onload = () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 202) {
      $("progress-fill").style.width = "100%";
      $("progress-text").textContent = "uploaded " + file.name;
      show(body.id);
      loadJobs();
    } else {
      if (xhr.status === 401) askToken();
      const retry = xhr.getResponseHeader("Retry-After");
      message((body.error || "upload refused (" + xhr.status + ")") + (retry ? " (retry in " + retry + " s)" : ""), true);
      $("progress").style.display = "none";
    }
  };
  xhr.onerror = () => { message("upload failed: the server did not answer", true); $("progress").style.display = "none"; };
  xhr.send(form);
}

// -- one job ----------------------------------------------------------------------------------------------
async function show(id) {
  current = id;
  if (location.hash !== "#" + id) history.replaceState(null, "", "#" + id);
  clearTimeout(pollTimer);
  $("timeline").style.display = "none";
  $("timeline").removeAttribute("src");
  await poll();
}

async function poll() {
  const id = current;
  let job;
  try {
    job = await (await api("/v1/predictions/" + id)).json();
  } catch (e) {
    message(e.message, true);
    return;
  }
  if (id !== current) return;
  render(job);
  if (job.status === "queued" || job.status === "running") {
    pollTimer = setTimeout(poll, 700);
  } else {
    loadJobs();
    loadHealth();
  }
}

function render(job) {
  $("result").style.display = "block";
  $("result-title").textContent = job.filename;
  const badge = $("result-status");
  badge.textContent = job.status;
  badge.className = "badge " + job.status;
  const meta = ["uploaded " + when(job.created), size(job.size)];
  if (job.started && job.finished) meta.push("ran " + seconds(job.started, job.finished));
  else if (job.status === "running") meta.push("running since " + when(job.started));
  if (job.attempts > 1) meta.push("started " + job.attempts + " times");
  $("result-meta").textContent = meta.join(" · ");
  $("result-error").textContent = job.error || "";
  const body = $("result-body");
  body.style.display = job.status === "done" ? "" : "none";
  if (job.status !== "done") {
    $("result-meta").textContent += job.status === "queued" ? " · waiting for a worker" : job.status === "running" ? " · extracting features…" : "";
    return;
  }
  const r = job.result;
  $("result-meta").textContent += " · " + r.shots.length + " shots, " + r.snippets.length + " snippet" + (r.snippets.length === 1 ? "" : "s") +
    ", " + (r.num_frames / r.fps).toFixed(1) + " s of video";
  const tbody = $("genres").querySelector("tbody");
  tbody.replaceChildren();
  for (const [genre, p] of Object.entries(r.genres)) {
    const thr = r.thresholds[genre];
    const bar = el("div", { class: "pbar" }, el("div", { class: "fill", style: "width:" + (100 * p).toFixed(1) + "%" }),
      el("div", { class: "thr", style: "left:calc(" + (100 * thr).toFixed(1) + "% - 1px)", title: "threshold " + thr }));
    const row = el("tr", { class: r.predicted.includes(genre) ? "predicted" : "" },
      el("td", { class: "genre", text: genre }), el("td", {}, bar),
      el("td", { class: "num", text: p.toFixed(3) }), el("td", { class: "num", text: thr.toFixed(2) }));
    tbody.append(row);
  }
  loadTimeline(job.id);
}

async function loadTimeline(id) {
  $("timeline-wait").textContent = "drawing the timeline…";
  try {
    const blob = await (await api("/v1/predictions/" + id + "/timeline.png")).blob();
    if (id !== current) return;
    if (timelineUrl) URL.revokeObjectURL(timelineUrl);
    timelineUrl = URL.createObjectURL(blob);
    const img = $("timeline");
    img.onload = () => { img.style.display = "block"; $("timeline-wait").textContent = ""; };
    img.src = timelineUrl;
  } catch (e) {
    $("timeline-wait").textContent = "no timeline: " + e.message;
  }
}

// -- earlier jobs -----------------------------------------------------------------------------------------
async function loadJobs() {
  let page;
  try {
    page = await (await api("/v1/predictions?limit=" + PAGE + "&offset=" + offset)).json();
  } catch (e) {
    return;
  }
  const tbody = $("jobs").querySelector("tbody");
  tbody.replaceChildren();
  $("jobs-empty").style.display = page.total ? "none" : "block";
  $("jobs").style.display = page.total ? "" : "none";
  for (const job of page.items) {
    const del = el("button", { class: "button small ghost", type: "button", text: "Delete", title: "delete the upload and its result" });
    del.onclick = async (ev) => {
      ev.stopPropagation();
      try {
        await api("/v1/predictions/" + job.id, { method: "DELETE" });
        if (current === job.id) { current = null; $("result").style.display = "none"; history.replaceState(null, "", "#"); }
        loadJobs();
      } catch (e) { message(e.message, true); }
    };
    const badge = el("span", { class: "badge " + job.status, text: job.status });
    const genres = job.status === "done" ? (job.predicted.length ? job.predicted.join(", ") : "(none above threshold)") : (job.error || "");
    const row = el("tr", { class: "job" + (job.id === current ? " current" : "") },
      el("td", { class: "file", text: job.filename }), el("td", { class: "status-cell" }, badge),
      el("td", { class: "when", text: when(job.created) }), el("td", { class: "genres-cell", text: genres }),
      el("td", { class: "actions" }, del));
    row.onclick = () => show(job.id).then(loadJobs);
    tbody.append(row);
  }
  const pager = $("pager");
  pager.replaceChildren();
  if (offset > 0) {
    const prev = el("button", { class: "button small ghost", type: "button", text: "Newer" });
    prev.onclick = () => { offset = Math.max(0, offset - PAGE); loadJobs(); };
    pager.append(prev);
  }
  if (offset + PAGE < page.total) {
    const next = el("button", { class: "button small ghost", type: "button", text: "Older" });
    next.onclick = () => { offset += PAGE; loadJobs(); };
    pager.append(next);
  }
}

// -- wiring -----------------------------------------------------------------------------------------------
$("file-input").addEventListener("change", (ev) => { upload(ev.target.files[0]); ev.target.value = ""; });
const drop = $("drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, (ev) => { ev.preventDefault(); drop.classList.remove("over"); });
}
drop.addEventListener("drop", (ev) => upload(ev.dataTransfer.files[0]));
$("token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("divita-token", token);
  if (await loadHealth()) { loadJobs(); if (current) show(current); }
});

(async () => {
  if (await loadHealth()) {
    await loadJobs();
    const id = location.hash.slice(1);
    if (/^[0-9a-f]{32}$/.test(id)) show(id);
  }
})();

// usqa live page: plays a cine through /ws/scan and shows each frame's score, guidance and prediction.
// Frames go out as raw 8-bit grayscale (after a hello declaring their size): the browser decodes images
// and videos itself; DICOM and video files are unpacked by the server (/cine/frames) into PNG frames.
"use strict";

const el = (id) => document.getElementById(id);
const TIMELINE_POINTS = 300;
// Frames waiting in the browser's socket buffer beyond this are skipped: the newest frame matters.
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const COLORS = { good: "#2ecc71", adjust: "#f39c12", no_signal: "#7f8c8d", out_of_scope: "#9b59b6" };
// The reason codes of service/inference/verdict.py, as the page words them.
const REASONS = {
  amenable: "amenable to the task",
  low_score: "below the threshold: adjust the probe",
  blank: "blank frame",
  saturated: "saturated frame",
  no_contact: "no probe contact",
  frozen: "image frozen",
  out_of_distribution: "not the trained anatomy",
};

const state = {
  ws: null,
  frames: [],
  fps: 25,
  index: 0,
  timer: null,
  seq: 0,
  sentAt: new Map(),
  helloSize: null,
  threshold: null,
  task: null,
  timeline: [],
  lastResult: null,
  scored: 0,
  skipped: 0,
  latencies: [],
  ending: false,
};

const work = document.createElement("canvas");
const workCtx = work.getContext("2d", { willReadFrequently: true });
const view = el("frame-canvas");
const viewCtx = view.getContext("2d");

function setStatus(text, kind = "idle") {
  el("status").textContent = text;
  el("status").dataset.state = kind;
}

function authHeaders() {
  const token = el("token").value.trim();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function fetchJson(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("a frame could not be decoded"));
    image.src = src;
  });
}

async function playCine(cine) {
  setStatus(`loading ${cine.frames.length} frames…`);
  const frames = await Promise.all(cine.frames.map(loadImage));
  await play(frames, cine.fps, cine.source);
}

async function playDemo() {
  try {
    setStatus("rendering the demo cine…");
    await playCine(await fetchJson("/cine/demo"));
  } catch (error) {
    setStatus(`demo failed: ${error.message}`, "error");
  }
}

async function playFile(file) {
  try {
    if (file.type.startsWith("image/") && !file.name.toLowerCase().endsWith(".dcm")) {
      await play([await createImageBitmap(file)], 1, file.name);
      return;
    }
    setStatus(`unpacking ${file.name}…`);
    const cine = await fetchJson(`/cine/frames?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      body: file,
      headers: { "Content-Type": "application/octet-stream" },
    });
    await playCine(cine);
  } catch (error) {
    setStatus(`${file.name}: ${error.message}`, "error");
  }
}

async function playFolder(files) {
  const images = [...files]
    .filter((f) => f.type.startsWith("image/"))
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  if (!images.length) {
    setStatus("the folder holds no images", "error");
    return;
  }
  try {
    setStatus(`loading ${images.length} images…`);
    const frames = await Promise.all(images.map((f) => createImageBitmap(f)));
    await play(frames, 25, `${images.length} images`);
  } catch (error) {
    setStatus(`folder: ${error.message}`, "error");
  }
}

function resetView() {
  Object.assign(state, {
    index: 0, seq: 0, sentAt: new Map(), helloSize: null, timeline: [], lastResult: null,
    scored: 0, skipped: 0, latencies: [], ending: false,
  });
  el("summary").hidden = true;
  el("swap-notice").hidden = true;
  el("frames-scored").textContent = "0";
  el("dropped").textContent = "0";
  drawTimeline();
}

function openSocket() {
  return new Promise((resolve, reject) => {
    const protocol = location.protocol === "https:" ? "wss" : "ws";
    const token = el("token").value.trim();
    const query = token ? `?token=${encodeURIComponent(token)}` : "";
    const ws = new WebSocket(`${protocol}://${location.host}/ws/scan${query}`);
    ws.binaryType = "arraybuffer";
    let ready = false;
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") {
        ready = true;
        resolve(ws);
      }
      onMessage(message);
    };
    ws.onclose = (event) => {
      stopTimer();
      el("stop").disabled = true;
      if (!ready) reject(new Error(event.reason || `closed (${event.code})`));
      else if (event.code !== 1000) setStatus(`stream closed: ${event.reason || event.code}`, "error");
      else if (!state.ending) setStatus("stream closed");
      state.ws = null;
    };
    ws.onerror = () => setStatus("WebSocket error", "error");
  });
}

async function play(frames, fps, source) {
  stop(false);
  resetView();
  state.frames = frames;
  state.fps = Math.min(Math.max(fps || 25, 1), 60);
  try {
    state.ws = await openSocket();
  } catch (error) {
    setStatus(`cannot stream: ${error.message}`, "error");
    return;
  }
  setStatus(`streaming ${source} at ${state.fps} fps`, "streaming");
  el("stop").disabled = false;
  state.timer = setInterval(tick, 1000 / state.fps);
  tick();
}

function tick() {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  if (state.index >= state.frames.length) {
    if (el("loop").checked) state.index = 0;
    else {
      finish();
      return;
    }
  }
  const frame = state.frames[state.index++];
  drawFrame(frame);
  sendFrame(frame);
}

function sendFrame(frame) {
  const width = frame.naturalWidth || frame.width;
  const height = frame.naturalHeight || frame.height;
  if (state.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    state.skipped += 1;
    return;
  }
  if (!state.helloSize || state.helloSize[0] !== width || state.helloSize[1] !== height) {
    state.ws.send(JSON.stringify({ type: "hello", format: "raw", width, height }));
    state.helloSize = [width, height];
  }
  work.width = width;
  work.height = height;
  workCtx.drawImage(frame, 0, 0);
  const rgba = workCtx.getImageData(0, 0, width, height).data;
  const gray = new Uint8Array(width * height);
  for (let i = 0, j = 0; j < gray.length; i += 4, j += 1) {
    // Rec. 601 luminance, as the service's decoders use.
    gray[j] = Math.round(0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2]);
  }
  state.sentAt.set(state.seq, performance.now());
  state.seq += 1;
  state.ws.send(gray.buffer);
}

function fitTransform(width, height) {
  const scale = Math.min(view.width / width, view.height / height);
  return { scale, dx: (view.width - width * scale) / 2, dy: (view.height - height * scale) / 2 };
}

function drawFrame(frame) {
  const width = frame.naturalWidth || frame.width;
  const height = frame.naturalHeight || frame.height;
  const t = fitTransform(width, height);
  viewCtx.fillStyle = "#000";
  viewCtx.fillRect(0, 0, view.width, view.height);
  viewCtx.drawImage(frame, t.dx, t.dy, width * t.scale, height * t.scale);
  const result = state.lastResult;
  const prediction = result && result.prediction;
  if (prediction && prediction.task === "segment" && prediction.outlines) {
    viewCtx.strokeStyle = COLORS[result.verdict] || "#4aa3ff";
    viewCtx.lineWidth = 2;
    for (const outline of prediction.outlines) {
      viewCtx.beginPath();
      outline.forEach(([x, y], i) => {
        const px = t.dx + x * t.scale;
        const py = t.dy + y * t.scale;
        if (i === 0) viewCtx.moveTo(px, py);
        else viewCtx.lineTo(px, py);
      });
      viewCtx.closePath();
      viewCtx.stroke();
    }
  }
}

function onMessage(message) {
  switch (message.type) {
    case "ready":
      // Gauge, timeline and threshold all on the display scale (percentile of validation scores, or raw).
      state.threshold = message.display_threshold ?? message.threshold;
      state.task = message.model.task;
      el("model-version").textContent = `${message.model.name} v${message.model.version} (${message.model.task})`;
      setGaugeThreshold(state.threshold);
      loadCard(message.model);
      break;
    case "result":
      onResult(message);
      break;
    case "model_swap":
      state.threshold = null;  // the next result carries the new version's display threshold

      el("model-version").textContent = `${message.model.name} v${message.model.version} (${message.model.task})`;
      el("swap-notice").textContent = `model updated: version ${message.from_version} → ${message.to_version}`;
      el("swap-notice").hidden = false;
      setTimeout(() => { el("swap-notice").hidden = true; }, 4000);
      loadCard(message.model);
      break;
    case "error":
      setStatus(`frame ${message.seq ?? "-"}: ${message.message}`, "error");
      break;
    case "summary":
      showSummary(message);
      break;
    default:
      break;
  }
}

function onResult(result) {
  state.lastResult = result;
  state.scored += 1;
  const sent = state.sentAt.get(result.seq);
  if (sent !== undefined) {
    state.latencies.push(performance.now() - sent);
    for (const seq of state.sentAt.keys()) {
      if (seq <= result.seq) state.sentAt.delete(seq);
      else break;
    }
  }
  if (state.threshold !== result.display_threshold) {
    state.threshold = result.display_threshold;
    setGaugeThreshold(state.threshold);
  }
  // One verdict on screen: the word, its colour and its reason; no second opinion beside it.
  const inScope = result.verdict === "good" || result.verdict === "adjust";
  const shown = inScope ? (result.smoothed_score ?? result.display_score) : 0;
  el("gauge").dataset.guidance = result.verdict;
  el("gauge-value").textContent = inScope ? shown.toFixed(2) : "–";
  el("gauge-arc").setAttribute("stroke-dasharray", `${(shown * 100).toFixed(1)} 100`);
  el("guidance").textContent = result.verdict.replaceAll("_", " ");
  el("score").textContent = REASONS[result.reason] || result.reason;
  el("prediction").textContent = describePrediction(result.prediction);
  const roundTrip = state.latencies.length ? state.latencies[state.latencies.length - 1] : null;
  el("latency").textContent = `server ${result.latency_ms.total.toFixed(1)} ms` +
    (roundTrip !== null ? `, round trip ${roundTrip.toFixed(1)} ms` : "");
  el("frames-scored").textContent = String(state.scored);
  el("dropped").textContent = String(result.dropped + state.skipped);
  state.timeline.push({ score: result.display_score, smoothed: result.smoothed_score, guidance: result.verdict });
  if (state.timeline.length > TIMELINE_POINTS) state.timeline.shift();
  drawTimeline();
}

function describePrediction(prediction) {
  if (!prediction) return "–";
  if (prediction.task === "classify") return `${prediction.label} (${(prediction.probability * 100).toFixed(0)} %)`;
  const area = (prediction.mask_area_fraction * 100).toFixed(1);
  return prediction.bounding_box ? `mask ${area} % of the image` : "no structure found";
}

function setGaugeThreshold(threshold) {
  // The gauge is a half circle from 0 (left) to 1 (right); the tick marks the amenability threshold.
  const angle = Math.PI * (1 - threshold);
  const x = 100 + 80 * Math.cos(angle);
  const y = 100 - 80 * Math.sin(angle);
  const tick = el("gauge-threshold");
  tick.setAttribute("x1", (100 + 62 * Math.cos(angle)).toFixed(1));
  tick.setAttribute("y1", (100 - 62 * Math.sin(angle)).toFixed(1));
  tick.setAttribute("x2", x.toFixed(1));
  tick.setAttribute("y2", y.toFixed(1));
}

function drawTimeline() {
  const canvas = el("timeline");
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const points = state.timeline;
  canvas.dataset.points = String(points.length);
  if (!points.length) return;
  const step = width / TIMELINE_POINTS;
  const y = (v) => height - 6 - v * (height - 12);
  points.forEach((p, i) => {
    ctx.fillStyle = COLORS[p.guidance] || "#555";
    ctx.globalAlpha = 0.18;
    ctx.fillRect(i * step, 0, Math.ceil(step), height);
  });
  ctx.globalAlpha = 1;
  if (state.threshold !== null) {
    ctx.strokeStyle = "#e6e9ee";
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    ctx.moveTo(0, y(state.threshold));
    ctx.lineTo(width, y(state.threshold));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  ctx.fillStyle = "#8b96a5";
  points.forEach((p, i) => ctx.fillRect(i * step + step / 2 - 1.5, y(p.score) - 1.5, 3, 3));
  ctx.strokeStyle = "#4aa3ff";
  ctx.lineWidth = 2;
  ctx.beginPath();
  let started = false;
  points.forEach((p, i) => {
    if (p.smoothed === null) {
      started = false;
      return;
    }
    const px = i * step + step / 2;
    if (!started) ctx.moveTo(px, y(p.smoothed));
    else ctx.lineTo(px, y(p.smoothed));
    started = true;
  });
  ctx.stroke();
}

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function showSummary(summary) {
  const f = summary.frames;
  const p50 = percentile(state.latencies, 0.5);
  const p99 = percentile(state.latencies, 0.99);
  const lines = [
    `session ${summary.session}: ${f.received} frames received, ${f.scored} scored, ${f.dropped} dropped, ${f.failed} failed`,
    `amenable fraction ${summary.amenable_fraction ?? "–"}, mean score ${summary.mean_score ?? "–"}`,
    `server latency p50 ${summary.latency_ms.p50 ?? "–"} ms, p99 ${summary.latency_ms.p99 ?? "–"} ms` +
      (p50 !== null ? `; round trip p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms` : ""),
    `guidance frames: ${Object.entries(summary.guidance_frames).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    `score drift (PSI vs validation): ${summary.drift.psi ?? "not enough frames"}`,
    `model versions: ${summary.model_versions.join(" → ")}`,
  ];
  el("summary").textContent = lines.join("\n");
  el("summary").hidden = false;
  setStatus("stream finished");
}

function stopTimer() {
  if (state.timer !== null) clearInterval(state.timer);
  state.timer = null;
}

function finish() {
  stopTimer();
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ending = true;
    state.ws.send(JSON.stringify({ type: "end" }));
  }
  el("stop").disabled = true;
}

function stop(sendEnd = true) {
  if (sendEnd) finish();
  else {
    stopTimer();
    if (state.ws) state.ws.close(1000);
    state.ws = null;
  }
}

el("play-demo").addEventListener("click", playDemo);
el("stop").addEventListener("click", () => stop(true));
el("file-input").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) playFile(file);
});
el("folder-input").addEventListener("change", (event) => playFolder(event.target.files));
el("token").value = sessionStorage.getItem("usqa-token") || "";
el("token").addEventListener("change", () => sessionStorage.setItem("usqa-token", el("token").value));

// The served model's card (GET /models/{name}/{version}/card), shown in a collapsible panel. The server
// renders it to escaped HTML; only its <article> is taken into the page.
const card = { shown: null };

async function loadCard(model, force = false) {
  if (!model) return;
  const key = `${model.name}/${model.version}`;
  if (card.shown === key && !force) return;
  card.shown = key;
  el("card-title").textContent = `${model.name} v${model.version}`;
  try {
    const url = `/models/${encodeURIComponent(model.name)}/${encodeURIComponent(model.version)}/card?format=html`;
    const response = await fetch(url, { headers: authHeaders() });
    const text = await response.text();
    if (!response.ok) {
      const detail = (() => { try { return JSON.parse(text).detail; } catch { return null; } })();
      throw new Error(detail || `${response.status} ${response.statusText}`);
    }
    const article = new DOMParser().parseFromString(text, "text/html").querySelector("article.model-card");
    el("card-body").replaceChildren(article ? document.importNode(article, true) : "the card is empty");
  } catch (error) {
    card.shown = null;
    el("card-body").textContent = `card unavailable: ${error.message}`;
  }
}

async function loadServedCard(force = false) {
  try {
    const response = await fetch("/readyz");
    const body = await response.json();
    if (body.model) await loadCard(body.model, force);
    else el("card-body").textContent = "no model is being served yet";
  } catch (error) {
    el("card-body").textContent = `card unavailable: ${error.message}`;
  }
}

el("token").addEventListener("change", () => loadServedCard(true));
loadServedCard();

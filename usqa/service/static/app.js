// usqa live page: streams frames through /ws/scan and shows each frame's score, guidance and prediction.
// Frames go out as raw 8-bit grayscale (after a hello declaring their size): the browser decodes images
// and videos itself; DICOM and video files are unpacked by the server (/cine/frames) into PNG frames; a
// camera (a capture card on the scanner's video output appears as one) is read in camera.js.
// The other scripts: captures.js (the best-frames strip and the session report), camera.js, large.js
// (the large-type verdict), card.js (the model card). The protocol's words (verdicts, reasons, message
// types, close codes) are never typed here: /protocol.js defines USQA_PROTOCOL from usqa/contracts/protocol.py.
"use strict";

const el = (id) => document.getElementById(id);
const TIMELINE_POINTS = 300;
// Frames waiting in the browser's socket buffer beyond this are skipped: the newest frame matters.
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
// A live source sends a frame only while fewer than this many are unanswered: the service's pace.
const MAX_IN_FLIGHT = 2;
const IN_FLIGHT_MS = 2000;
const VERDICT = USQA_PROTOCOL.verdict;
const MESSAGE = USQA_PROTOCOL.messageType;
const CLOSE = USQA_PROTOCOL.closeCode;
// Each reason code as the page words it.
const REASONS = USQA_PROTOCOL.reasonLabels;
// Frames of the trained anatomy: their score means something.
const inScope = (verdict) => USQA_PROTOCOL.inScope.includes(verdict);
// How each verdict looks: its colour on the canvases, and the colours (variables of style.css) of its word,
// the gauge's arc and the large type. A verdict the page does not know keeps the stylesheet's defaults.
const LOOKS = {
  [VERDICT.GOOD]: { canvas: "#2ecc71", word: "--good", arc: "--good", large: "--good-large" },
  [VERDICT.ADJUST]: { canvas: "#f39c12", word: "--adjust", arc: "--adjust", large: "--adjust-large" },
  [VERDICT.NO_SIGNAL]: { canvas: "#7f8c8d", word: "--nosignal", arc: null, large: null },
  [VERDICT.OUT_OF_SCOPE]: { canvas: "#9b59b6", word: "--outofscope", arc: null, large: "--outofscope-large" },
};
const COLORS = Object.fromEntries(Object.entries(LOOKS).map(([verdict, look]) => [verdict, look.canvas]));

// Sets `property` of `element` to a variable of style.css, or back to the stylesheet's own with none.
function paint(element, property, variable) {
  element.style.setProperty(property, variable ? `var(${variable})` : "");
}

const state = {
  ws: null,
  source: null,
  timer: null,
  seq: 0,
  sentAt: new Map(),
  // Frames of a file source sent and not yet answered, by seq: each is drawn when its own verdict arrives,
  // so a picture never sits under another frame's verdict.
  unanswered: new Map(),
  helloSize: null,
  threshold: null,
  task: null,
  timeline: [],
  lastResult: null,
  scored: 0,
  skipped: 0,
  latencies: [],
  ending: false,
  started: 0,
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

function resetView() {
  Object.assign(state, {
    seq: 0, sentAt: new Map(), unanswered: new Map(), helloSize: null, timeline: [], lastResult: null,
    scored: 0, skipped: 0, latencies: [], ending: false,
  });
  resetCaptures();
  el("swap-notice").hidden = true;
  el("frames-scored").textContent = "0";
  el("dropped").textContent = "0";
  drawTimeline();
}

function openSocket() {
  return new Promise((resolve, reject) => {
    const protocol = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams();
    const token = el("token").value.trim();
    if (token) params.set("token", token);
    if (el("exam").value) params.set("model", el("exam").value);  // exams.js fills the picker
    const query = params.size ? `?${params}` : "";
    const ws = new WebSocket(`${protocol}://${location.host}/ws/scan${query}`);
    ws.binaryType = "arraybuffer";
    let ready = false;
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === MESSAGE.READY) {
        ready = true;
        resolve(ws);
      }
      onMessage(message);
    };
    ws.onclose = (event) => {
      stopTimer();
      el("stop").disabled = true;
      if (!ready) reject(new Error(event.reason || `closed (${event.code})`));
      else if (event.code !== CLOSE.NORMAL) setStatus(`stream closed: ${event.reason || event.code}`, "error");
      else if (!state.ending) setStatus("stream closed");
      state.ws = null;
    };
    ws.onerror = () => setStatus("WebSocket error", "error");
  });
}

async function play(source) {
  stop(false);
  resetView();
  state.source = source;
  el("crop-panel").hidden = !source.live;  // the scan region is a camera's: files are scored whole
  const fps = Math.min(Math.max(source.fps || 25, 1), 60);
  try {
    state.ws = await openSocket();
  } catch (error) {
    source.close();
    setStatus(`cannot stream: ${error.message}`, "error");
    return;
  }
  const pace = source.live ? `up to ${fps} fps, at the service's pace` : `at ${fps} fps`;
  setStatus(`streaming ${source.label} ${pace}`, "streaming");
  el("stop").disabled = false;
  state.started = performance.now();
  state.timer = setInterval(tick, 1000 / fps);
  tick();
}

function tick() {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const source = state.source;
  if (source.live && inFlight() >= MAX_IN_FLIGHT) {
    if (source.preview) source.preview();  // the picture stays live while the service catches up
    return;
  }
  const frame = source.next();
  if (!frame) {
    finish();
    return;
  }
  if (source.preview) source.preview();  // a camera: the live picture (its scan region is what is sent)
  else state.unanswered.set(state.seq, frame);
  sendFrame(frame);
}

// Frames sent and not yet answered; one that waited past IN_FLIGHT_MS is taken as dropped by the server.
function inFlight() {
  const now = performance.now();
  for (const [seq, sent] of state.sentAt) if (now - sent > IN_FLIGHT_MS) state.sentAt.delete(seq);
  return state.sentAt.size;
}

function sendFrame(frame) {
  const width = frame.naturalWidth || frame.videoWidth || frame.width;
  const height = frame.naturalHeight || frame.videoHeight || frame.height;
  if (state.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    state.skipped += 1;
    return;
  }
  if (!state.helloSize || state.helloSize[0] !== width || state.helloSize[1] !== height) {
    state.ws.send(JSON.stringify({ type: MESSAGE.HELLO, format: "raw", width, height }));
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
  rememberSent(state.seq, gray, width, height, (performance.now() - state.started) / 1000);
  state.seq += 1;
  state.ws.send(gray.buffer);
}

function fitTransform(width, height) {
  const scale = Math.min(view.width / width, view.height / height);
  return { scale, dx: (view.width - width * scale) / 2, dy: (view.height - height * scale) / 2 };
}

// Draws `frame` fitted to the viewer; `region` (image pixels) is where the scored part lies when only a
// part of the frame is sent (a camera's scan-region crop): outlines are placed inside it.
function drawFrame(frame, region = null) {
  const width = frame.naturalWidth || frame.videoWidth || frame.width;
  const height = frame.naturalHeight || frame.videoHeight || frame.height;
  const t = fitTransform(width, height);
  viewCtx.fillStyle = "#000";
  viewCtx.fillRect(0, 0, view.width, view.height);
  viewCtx.drawImage(frame, t.dx, t.dy, width * t.scale, height * t.scale);
  const ox = region ? region.x : 0;
  const oy = region ? region.y : 0;
  const result = state.lastResult;
  const prediction = result && trusted(result) ? result.prediction : null;
  if (prediction && prediction.task === "segment" && prediction.outlines) {
    viewCtx.strokeStyle = COLORS[result.verdict] || "#4aa3ff";
    viewCtx.lineWidth = 2;
    for (const outline of prediction.outlines) {
      viewCtx.beginPath();
      outline.forEach(([x, y], i) => {
        const px = t.dx + (ox + x) * t.scale;
        const py = t.dy + (oy + y) * t.scale;
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
    case MESSAGE.READY:
      // Gauge, timeline and threshold all on the display scale (percentile of validation scores, or raw).
      state.threshold = message.display_threshold ?? message.threshold;
      state.task = message.model.task;
      el("model-version").textContent = `${message.model.name} v${message.model.version} (${message.model.task})`;
      showPassLine(message.pass_line);
      setGaugeThreshold(state.threshold);
      loadCard(message.model);
      break;
    case MESSAGE.RESULT:
      onResult(message);
      break;
    case MESSAGE.MODEL_SWAP:
      state.threshold = null;  // the next result carries the new version's display threshold

      el("model-version").textContent = `${message.model.name} v${message.model.version} (${message.model.task})`;
      el("swap-notice").textContent = message.from_model
        ? `exam changed: ${message.from_model} → ${message.model.name}`
        : `model updated: version ${message.from_version} → ${message.to_version}`;
      el("swap-notice").hidden = false;
      setTimeout(() => { el("swap-notice").hidden = true; }, 4000);
      showPassLine(message.pass_line);
      loadCard(message.model);
      break;
    case MESSAGE.ERROR:
      if (message.seq !== null) forgetSentUpTo(message.seq);
      setStatus(`frame ${message.seq ?? "-"}: ${message.message}`, "error");
      break;
    case MESSAGE.SUMMARY:
      showSummary(message);
      break;
    default:
      break;
  }
}

// What the line on the gauge promises, as the service words it: the certified risk, or "not certified" and why.
function showPassLine(line) {
  const node = el("pass-line");
  if (!line) {
    node.hidden = true;
    return;
  }
  node.textContent = line.certified ? `Pass line: ${line.promise}` : `Pass line ${line.promise}`;
  node.dataset.certified = String(line.certified);
  node.hidden = false;
}

function onResult(result) {
  state.lastResult = result;
  const frame = state.unanswered.get(result.seq);
  if (frame) {
    drawFrame(frame);
    view.dataset.seq = String(result.seq);
  }
  state.scored += 1;
  const sent = state.sentAt.get(result.seq);
  if (sent !== undefined) state.latencies.push(performance.now() - sent);
  forgetSentUpTo(result.seq);
  if (state.threshold !== result.display_threshold) {
    state.threshold = result.display_threshold;
    setGaugeThreshold(state.threshold);
  }
  // One verdict on screen: the word, its colour and its reason; no second opinion beside it.
  const scoreMeans = inScope(result.verdict);
  const shown = scoreMeans ? (result.smoothed_score ?? result.display_score) : 0;
  const look = LOOKS[result.verdict] || {};
  el("gauge").dataset.guidance = result.verdict;
  el("gauge").dataset.seq = String(result.seq);
  paint(el("gauge-arc"), "stroke", look.arc);
  paint(el("guidance"), "color", look.word);
  el("gauge-value").textContent = scoreMeans ? shown.toFixed(2) : "–";
  el("gauge-arc").setAttribute("stroke-dasharray", `${(shown * 100).toFixed(1)} 100`);
  el("guidance").textContent = result.verdict.replaceAll("_", " ");
  el("score").textContent = REASONS[result.reason] || result.reason;
  el("prediction").textContent = trusted(result) ? describePrediction(result.prediction) : "– (not trusted on this frame)";
  const roundTrip = state.latencies.length ? state.latencies[state.latencies.length - 1] : null;
  el("latency").textContent = `server ${result.latency_ms.total.toFixed(1)} ms` +
    (roundTrip !== null ? `, round trip ${roundTrip.toFixed(1)} ms` : "");
  el("frames-scored").textContent = String(state.scored);
  el("dropped").textContent = String(result.dropped + state.skipped);
  state.timeline.push({ score: result.display_score, smoothed: result.smoothed_score, guidance: result.verdict });
  if (state.timeline.length > TIMELINE_POINTS) state.timeline.shift();
  drawTimeline();
  if (result.captured) onCaptured(result);
  showLarge(result);
}

// Earlier frames than an answered one will not be answered: the server kept the newest.
function forgetSentUpTo(seq) {
  for (const pending of [state.sentAt, state.unanswered]) {
    for (const key of pending.keys()) {
      if (key <= seq) pending.delete(key);
      else break;
    }
  }
}

// The task model's answer is shown only where the meter trusts it: a refused frame's class or outline would be
// read as an answer all the same.
function trusted(result) {
  return result.verdict === VERDICT.GOOD;
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

function stopTimer() {
  if (state.timer !== null) clearInterval(state.timer);
  state.timer = null;
  if (state.source) state.source.close();
}

function finish() {
  stopTimer();
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ending = true;
    state.ws.send(JSON.stringify({ type: MESSAGE.END }));
  }
  el("stop").disabled = true;
}

function stop(sendEnd = true) {
  if (sendEnd) finish();
  else {
    stopTimer();
    if (state.ws) state.ws.close(CLOSE.NORMAL);
    state.ws = null;
  }
}

el("stop").addEventListener("click", () => stop(true));
el("token").value = sessionStorage.getItem("usqa-token") || "";
el("token").addEventListener("change", () => sessionStorage.setItem("usqa-token", el("token").value));

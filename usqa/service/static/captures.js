// The best frames of the session, live, and the session's report when it ends.
// The service decides what to keep (usqa/service/live/captures.py): a result whose frame entered the captures
// carries `captured`, the kept frames' seqs best first. The page draws the strip from its own copy of the
// frames it sent (the very pixels the service scored), so no request races the ranks changing; at the end
// the report (GET /sessions/{id}) links the service's PNGs.
"use strict";

// Sent frames kept for the strip: a captured frame is decided a frame or two after it was sent.
const SENT_KEPT = 16;
const captures = { sent: new Map(), kept: new Map(), session: null, objectUrls: [] };

function resetCaptures() {
  captures.sent.clear();
  captures.kept.clear();
  for (const url of captures.objectUrls) URL.revokeObjectURL(url);
  captures.objectUrls = [];
  renderStrip([]);
  el("report").hidden = true;
  el("summary").hidden = true;
  el("report-captures").replaceChildren();
}

function rememberSent(seq, gray, width, height, timeS) {
  captures.sent.set(seq, { gray, width, height, timeS });
  for (const key of captures.sent.keys()) {
    if (captures.sent.size <= SENT_KEPT) break;
    captures.sent.delete(key);
  }
}

function grayCanvas(frame) {
  const canvas = document.createElement("canvas");
  canvas.width = frame.width;
  canvas.height = frame.height;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(frame.width, frame.height);
  for (let i = 0, j = 0; j < frame.gray.length; i += 4, j += 1) {
    image.data[i] = image.data[i + 1] = image.data[i + 2] = frame.gray[j];
    image.data[i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

function clock(seconds) {
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function onCaptured(result) {
  const sent = captures.sent.get(result.seq);
  if (sent && !captures.kept.has(result.seq)) {
    captures.kept.set(result.seq, {
      seq: result.seq,
      score: result.display_score,
      timeS: sent.timeS,
      png: grayCanvas(sent).toDataURL("image/png"),
    });
  }
  for (const seq of [...captures.kept.keys()]) if (!result.captured.includes(seq)) captures.kept.delete(seq);
  renderStrip(result.captured.map((seq) => captures.kept.get(seq)).filter(Boolean));
}

function captureFigure(item, href, name) {
  const figure = document.createElement("figure");
  figure.className = "capture";
  figure.dataset.seq = String(item.seq);
  const image = document.createElement("img");
  image.src = href;
  image.alt = `frame ${item.seq}, score ${item.score.toFixed(2)}`;
  const caption = document.createElement("figcaption");
  caption.textContent = `${clock(item.timeS)} · score ${item.score.toFixed(2)} `;
  const link = document.createElement("a");
  link.href = href;
  link.download = name;
  link.textContent = "PNG";
  caption.append(link);
  figure.append(image, caption);
  return figure;
}

function renderStrip(items) {
  const strip = el("capture-strip");
  strip.dataset.count = String(items.length);
  strip.replaceChildren(...items.map((item) => captureFigure(item, item.png, `usqa-frame-${item.seq}.png`)));
  el("captures-empty").hidden = items.length > 0;
}

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

// The engineering figures of the stream's summary message, folded under the report.
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
  el("report").hidden = false;
  el("report-text").textContent = "loading the session report…";
  setStatus("stream finished");
  showReport(summary.session);
}

// The report in the words a sonographer reads, with the kept frames as the service stored them.
async function showReport(session) {
  captures.session = session;
  try {
    const report = await fetchJson(`/sessions/${encodeURIComponent(session)}`);
    if (captures.session !== session) return;  // a newer stream started meanwhile
    el("report-text").textContent = report.summary_text;
    el("report").dataset.session = session;
    const figures = await Promise.all(report.captures.map(async (c) => {
      const response = await fetch(c.url, { headers: authHeaders() });
      if (!response.ok) throw new Error(`capture ${c.rank}: ${response.status} ${response.statusText}`);
      const url = URL.createObjectURL(await response.blob());
      captures.objectUrls.push(url);
      const item = { seq: c.frame, score: c.score, timeS: c.time_s };
      return captureFigure(item, url, `usqa-${session}-best-${c.rank + 1}.png`);
    }));
    if (captures.session === session) el("report-captures").replaceChildren(...figures);
  } catch (error) {
    el("report-text").textContent = `the session report is unavailable: ${error.message}`;
  }
}

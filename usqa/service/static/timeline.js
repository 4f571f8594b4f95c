// The score timeline under the frame: one dot per scored frame, the smoothed score as a line, the verdict
// as the band's colour, the threshold dashed.
"use strict";

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

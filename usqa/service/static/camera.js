// Live capture: frames from a camera device through getUserMedia. A capture card on the scanner's video
// output appears as a camera; its picture is the scanner's whole screen (text, rulers, menus), so only the
// scan region is sent: the crop is drawn on the preview and adjusted by dragging on it or in the fields.
// Chosen with the Camera button or by the URL (/?source=camera, optionally &crop=x,y,w,h in percent).
"use strict";

// The whole picture by default; fractions of the camera's width and height.
const WHOLE = { x: 0, y: 0, w: 1, h: 1 };
const MIN_CROP = 0.05;
const CROP_KEY = "usqa-crop";
const CAMERA_MAX_FPS = 30;
const camera = { crop: { ...WHOLE }, drag: null, video: null };

function validCrop(c) {
  return c && [c.x, c.y, c.w, c.h].every(Number.isFinite) && c.x >= 0 && c.y >= 0 &&
    c.w >= MIN_CROP && c.h >= MIN_CROP && c.x + c.w <= 1.0001 && c.y + c.h <= 1.0001;
}

function setCrop(crop, remember = true) {
  if (!validCrop(crop)) return false;
  camera.crop = { ...crop };
  const fields = { x: crop.x, y: crop.y, w: crop.w, h: crop.h };
  for (const [key, value] of Object.entries(fields)) el(`crop-${key}`).value = (value * 100).toFixed(1);
  if (remember) localStorage.setItem(CROP_KEY, JSON.stringify(camera.crop));
  return true;
}

function cropFromFields() {
  const value = (key) => Number(el(`crop-${key}`).value) / 100;
  if (!setCrop({ x: value("x"), y: value("y"), w: value("w"), h: value("h") })) {
    setStatus("the scan region must lie inside the picture and be at least 5 % each way", "error");
    setCrop(camera.crop, false);
  }
}

// The crop in the camera's pixels, whole pixels inside the picture.
function cropPixels(video) {
  const x = Math.round(camera.crop.x * video.videoWidth);
  const y = Math.round(camera.crop.y * video.videoHeight);
  const w = Math.max(1, Math.min(video.videoWidth - x, Math.round(camera.crop.w * video.videoWidth)));
  const h = Math.max(1, Math.min(video.videoHeight - y, Math.round(camera.crop.h * video.videoHeight)));
  return { x, y, w, h };
}

function cameraSource(stream, video) {
  const cropped = document.createElement("canvas");
  const ctx = cropped.getContext("2d");
  const [track] = stream.getVideoTracks();
  const settings = track.getSettings();
  return {
    label: `camera "${track.label || "device"}" (${video.videoWidth}×${video.videoHeight})`,
    fps: Math.min(settings.frameRate || CAMERA_MAX_FPS, CAMERA_MAX_FPS),
    live: true,
    next() {
      if (track.readyState !== "live") return null;
      const r = cropPixels(video);
      cropped.width = r.w;
      cropped.height = r.h;
      ctx.drawImage(video, r.x, r.y, r.w, r.h, 0, 0, r.w, r.h);
      return cropped;
    },
    preview() {
      const r = cropPixels(video);
      drawFrame(video, r);
      const t = fitTransform(video.videoWidth, video.videoHeight);
      // Dim what is not scored; outline the scan region.
      viewCtx.fillStyle = "rgba(0, 0, 0, 0.55)";
      const [left, top] = [t.dx + r.x * t.scale, t.dy + r.y * t.scale];
      const [width, height] = [r.w * t.scale, r.h * t.scale];
      const right = t.dx + video.videoWidth * t.scale;
      const bottom = t.dy + video.videoHeight * t.scale;
      viewCtx.fillRect(t.dx, t.dy, right - t.dx, top - t.dy);
      viewCtx.fillRect(t.dx, top + height, right - t.dx, bottom - top - height);
      viewCtx.fillRect(t.dx, top, left - t.dx, height);
      viewCtx.fillRect(left + width, top, right - left - width, height);
      viewCtx.strokeStyle = "#4aa3ff";
      viewCtx.lineWidth = 2;
      viewCtx.strokeRect(left, top, width, height);
    },
    close() {
      for (const t of stream.getTracks()) t.stop();
      camera.video = null;
    },
  };
}

async function playCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("this browser offers the page no camera (it needs https, or localhost)", "error");
    return;
  }
  let stream;
  try {
    setStatus("opening the camera…");
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) {
    setStatus(`camera: ${error.message || error.name}`, "error");
    return;
  }
  const video = document.createElement("video");
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream;
  try {
    await video.play();
  } catch (error) {
    for (const t of stream.getTracks()) t.stop();
    setStatus(`camera: ${error.message}`, "error");
    return;
  }
  camera.video = video;
  await play(cameraSource(stream, video));
}

// Dragging on the preview draws a new scan region (in the camera's picture, whatever the canvas's size).
function pictureFraction(event) {
  const video = camera.video;
  const box = view.getBoundingClientRect();
  const cx = ((event.clientX - box.left) / box.width) * view.width;
  const cy = ((event.clientY - box.top) / box.height) * view.height;
  const t = fitTransform(video.videoWidth, video.videoHeight);
  const clamp = (v) => Math.min(Math.max(v, 0), 1);
  return [clamp((cx - t.dx) / t.scale / video.videoWidth), clamp((cy - t.dy) / t.scale / video.videoHeight)];
}

view.addEventListener("pointerdown", (event) => {
  if (!camera.video) return;
  camera.drag = pictureFraction(event);
  view.setPointerCapture(event.pointerId);
});
view.addEventListener("pointerup", (event) => {
  if (!camera.drag || !camera.video) return;
  const [x0, y0] = camera.drag;
  const [x1, y1] = pictureFraction(event);
  camera.drag = null;
  const crop = { x: Math.min(x0, x1), y: Math.min(y0, y1), w: Math.abs(x1 - x0), h: Math.abs(y1 - y0) };
  if (!setCrop(crop)) setStatus("drag a larger scan region (at least 5 % of the picture each way)", "error");
});

function cropFromUrl(params) {
  const parts = (params.get("crop") || "").split(",").map((v) => Number(v) / 100);
  return parts.length === 4 ? { x: parts[0], y: parts[1], w: parts[2], h: parts[3] } : null;
}

el("camera").addEventListener("click", playCamera);
for (const key of ["x", "y", "w", "h"]) el(`crop-${key}`).addEventListener("change", cropFromFields);
el("crop-reset").addEventListener("click", () => setCrop(WHOLE));
{
  const params = new URLSearchParams(location.search);
  const stored = (() => { try { return JSON.parse(localStorage.getItem(CROP_KEY)); } catch { return null; } })();
  if (!setCrop(cropFromUrl(params), false) && !setCrop(stored, false)) setCrop(WHOLE, false);
  if (params.get("source") === "camera") playCamera();
}

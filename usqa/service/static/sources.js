// The file sources of the live page: the built-in demo cine, a DICOM or video (unpacked by the server into
// PNG frames), a single image, a folder of images (decoded by the browser).
"use strict";

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("a frame could not be decoded"));
    image.src = src;
  });
}

// A source hands out the frames to send: `next()` is the next one (an image, bitmap or canvas) or null at
// the end; `live` sources (a camera) send at the service's pace, files at their frame rate.
function listSource(frames, fps, label) {
  let index = 0;
  return {
    label,
    fps,
    live: false,
    next() {
      if (index >= frames.length) {
        if (!el("loop").checked) return null;
        index = 0;
      }
      return frames[index++];
    },
    close() {},
  };
}

async function playCine(cine) {
  setStatus(`loading ${cine.frames.length} frames…`);
  const frames = await Promise.all(cine.frames.map(loadImage));
  await play(listSource(frames, cine.fps, cine.source));
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
      await play(listSource([await createImageBitmap(file)], 1, file.name));
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
    await play(listSource(frames, 25, `${images.length} images`));
  } catch (error) {
    setStatus(`folder: ${error.message}`, "error");
  }
}

el("play-demo").addEventListener("click", playDemo);
el("file-input").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) playFile(file);
});
el("folder-input").addEventListener("change", (event) => playFolder(event.target.files));

// Large type: the verdict readable at arm's length from the scanner, as a word on its colour filling the
// screen (full screen where the browser allows), and optionally a tone when the verdict changes, so the
// sonographer can keep their eyes on the patient. The Large type button, or /?large=1; Escape leaves it.
"use strict";

// A rising tone for good, a level one for adjust, a low one for anything out of scope or without signal.
const TONES = { [VERDICT.GOOD]: 880, [VERDICT.ADJUST]: 523, [VERDICT.NO_SIGNAL]: 262, [VERDICT.OUT_OF_SCOPE]: 262 };
const TONE_S = 0.18;
const large = { shown: null, audio: null };

function setLarge(on) {
  el("large").hidden = !on;
  // Before a stream the overlay would cover Play and Camera: it carries them itself until a verdict comes.
  el("large-start").hidden = large.shown !== null;
  el("large-type").setAttribute("aria-pressed", String(on));
  if (on && document.fullscreenEnabled && !document.fullscreenElement) {
    el("large").requestFullscreen().catch(() => {});  // refused without a click: the overlay still covers
  } else if (!on && document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  }
}

function beep(verdict) {
  if (!el("sound").checked) return;
  if (!large.audio) large.audio = new AudioContext();
  const ctx = large.audio;
  const oscillator = ctx.createOscillator();
  const gain = ctx.createGain();
  oscillator.frequency.value = TONES[verdict] || 262;
  gain.gain.setValueAtTime(0.2, ctx.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + TONE_S);
  oscillator.connect(gain).connect(ctx.destination);
  oscillator.start();
  oscillator.stop(ctx.currentTime + TONE_S);
}

function showLarge(result) {
  const verdict = result.verdict;
  el("large-start").hidden = true;
  if (large.shown !== null && large.shown !== verdict) beep(verdict);
  large.shown = verdict;
  const box = el("large");
  box.dataset.verdict = verdict;
  paint(box, "background", (LOOKS[verdict] || {}).large);
  el("large-word").textContent = verdict.replaceAll("_", " ");
  el("large-reason").textContent = REASONS[result.reason] || result.reason;
  const shown = result.smoothed_score ?? result.display_score;
  el("large-score").textContent = inScope(verdict) ? `score ${shown.toFixed(2)}` : "";
}

el("large-type").addEventListener("click", () => setLarge(el("large").hidden));
el("large").addEventListener("click", () => setLarge(false));
for (const [button, target] of [["large-demo", "play-demo"], ["large-camera", "camera"]]) {
  el(button).addEventListener("click", (event) => {
    event.stopPropagation();  // starting a stream does not leave large type
    el(target).click();
  });
}
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !el("large").hidden) setLarge(false);
});
document.addEventListener("fullscreenchange", () => {
  if (!document.fullscreenElement && !el("large").hidden) setLarge(false);
});
el("sound").addEventListener("change", () => {
  // Browsers start audio only from a user's gesture: this click is one.
  if (el("sound").checked && !large.audio) large.audio = new AudioContext();
});
if (new URLSearchParams(location.search).get("large") === "1") setLarge(true);

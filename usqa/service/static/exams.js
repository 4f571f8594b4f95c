// The exam picker: the service's served models (GET /models), the default first. A new stream opens with the
// picked exam (app.js adds ?model=); picking another during a stream sends a hello naming it, with the raw
// frame size the stream already declared, and the service answers with a model_swap.
"use strict";

async function loadExams() {
  const token = el("token").value.trim();
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const picker = el("exam");
  try {
    const response = await fetch("/models", { headers });
    if (!response.ok) return;
    const listing = await response.json();
    picker.replaceChildren(...listing.models.map((model) => {
      const option = document.createElement("option");
      option.value = model.name;
      option.textContent = model.state === "serving" ? model.name : `${model.name} (${model.state})`;
      option.disabled = model.state !== "serving";
      option.selected = model.name === listing.default;
      return option;
    }));
    picker.closest("label").hidden = listing.models.length < 2;
  } catch (error) {
    picker.closest("label").hidden = true;
  }
}

el("exam").addEventListener("change", () => {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;  // the next stream opens with it
  const hello = { type: MESSAGE.HELLO, model: el("exam").value };
  if (state.helloSize) Object.assign(hello, { format: "raw", width: state.helloSize[0], height: state.helloSize[1] });
  state.ws.send(JSON.stringify(hello));
});

loadExams();

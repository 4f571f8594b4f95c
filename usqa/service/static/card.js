// The served model's card panel: GET /models/{name}/{version}/card, rendered by the server to escaped HTML.
"use strict";

// Only the card's <article> is taken into the page.
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

// The drawing page: draws on a canvas, posts it to /api/predict while you draw, shows every model's answer.
"use strict";

const pad = document.getElementById("pad");
const context = pad.getContext("2d");
const seen = document.getElementById("seen");
const photo = document.getElementById("photo");
const strokeInput = document.getElementById("stroke");
const strokeValue = document.getElementById("stroke-value");
const topKSelect = document.getElementById("top-k");
const statusLine = document.getElementById("status");
const modelsSection = document.getElementById("models");
const cardTemplate = document.getElementById("card");

const cards = new Map();  // model id -> its card element
let hasInk = false;       // anything drawn since the last clear
let drawing = false;
let lastPoint = null;
let pending = null;       // what to send next: {body, type}, or null
let inFlight = false;
let maxPicturePixels = Infinity;  // the server's limit for an uploaded picture (GET /api/models)
let lastPixels = null;    // the 28x28 image of the answers shown: what an explanation explains

function setState(state, message) {
  document.body.dataset.state = state;
  if (message !== undefined) statusLine.textContent = message;
}

function percent(probability) {
  return (100 * probability).toFixed(1) + " %";
}

// ------------------------------------------------------------------ the models

function addCard(model) {
  const card = cardTemplate.content.firstElementChild.cloneNode(true);
  card.dataset.modelId = model.id;
  card.querySelector(".name").textContent = model.name;
  card.querySelector(".name").title = model.id;
  const parameters = model.parameters === null ? "" : ` · ${model.parameters.toLocaleString("en")} parameters`;
  card.querySelector(".architecture").textContent = (model.architecture || "architecture unknown") + parameters;
  card.querySelector(".runtime").textContent = ` · ${model.runtime}`;
  card.querySelector(".accuracy").textContent = model.test_accuracy === null
    ? "test accuracy: not evaluated"
    : `test accuracy ${(100 * model.test_accuracy).toFixed(2)} % (${model.dataset})`;
  if (model.explainable) {
    const details = card.querySelector(".explain");
    details.hidden = false;
    details.addEventListener("toggle", () => { if (details.open) explainCard(card); });
  }
  modelsSection.appendChild(card);
  cards.set(model.id, card);
}

// ------------------------------------------------------------------ explaining

// One explanation request at a time for the whole page (the server computes one at a time):
// the open cards wait their turn, and a card whose drawing changed meanwhile is explained again.
let explainBusy = false;
const explainWaiting = new Set();

function explainCard(card) {
  if (!card.querySelector(".explain").open || !lastPixels) return;
  explainWaiting.add(card);
  pumpExplanations();
}

async function pumpExplanations() {
  if (explainBusy || explainWaiting.size === 0) return;
  const card = explainWaiting.values().next().value;
  explainWaiting.delete(card);
  explainBusy = true;
  card.explaining = true;
  const pixels = lastPixels;
  const status = card.querySelector(".explain-status");
  status.textContent = "explaining…";
  try {
    const response = await fetch("/api/explain", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pixels, model: card.dataset.modelId }),
    });
    const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (response.status === 503) {  // busy with other pages' explanations: ask again in a second
      status.textContent = "the server is busy; trying again…";
      setTimeout(() => explainCard(card), 1000);
    } else if (!response.ok) {
      status.textContent = answer.error || `the server answered ${response.status}`;
    } else if (pixels === lastPixels) {
      showExplanation(card, answer);
    }
  } catch (error) {
    status.textContent = `cannot reach the server: ${error.message}`;
  } finally {
    card.explaining = false;
    explainBusy = false;
    if (lastPixels && pixels !== lastPixels) explainWaiting.add(card);
    pumpExplanations();
  }
}

// Signed values over the digit: red where they are positive, blue where negative, stronger where larger.
function paintOverlay(canvas, pixels, values, signed) {
  const limit = Math.max(1e-12, ...values.map(Math.abs));
  const image = canvas.getContext("2d").createImageData(28, 28);
  values.forEach((value, index) => {
    const base = 0.35 * pixels[index];  // the digit, dimmed
    const strength = Math.min(1, Math.abs(value) / limit);
    const colour = value >= 0 ? (signed ? [178, 24, 43] : [253, 174, 97]) : [33, 102, 172];
    image.data.set([...colour.map((channel) => Math.round(base + strength * (channel - base))), 255], 4 * index);
  });
  canvas.getContext("2d").putImageData(image, 0, 0);
}

function showExplanation(card, answer) {
  card.explanation = answer;  // kept for the page's tests
  paintOverlay(card.querySelector(".saliency"), answer.pixels, answer.integrated_gradients, true);
  const cam = card.querySelector(".cam");
  cam.hidden = answer.grad_cam === null;
  if (answer.grad_cam !== null) {
    paintOverlay(card.querySelector(".grad-cam"), answer.pixels, answer.grad_cam, false);
    card.querySelector(".cam-caption").textContent = `Grad-CAM of ${answer.grad_cam_layer}: where it looked`;
  }
  const maps = card.querySelector(".maps");
  maps.replaceChildren(...answer.feature_maps.flatMap((layer) => {
    const heading = document.createElement("h3");
    const [height, width, channels] = layer.shape;
    const shown = layer.channels_shown < channels ? `, first ${layer.channels_shown}` : "";
    heading.textContent = `${layer.layer} (${layer.kind}) ${height}×${width}×${channels}${shown}`;
    const picture = document.createElement("img");
    picture.src = layer.png;
    picture.alt = `feature maps of ${layer.layer}`;
    return [heading, picture];
  }));
  card.querySelector(".explain-status").textContent =
    `why ${answer.prediction} and not ${answer.runner_up}; baseline: ${answer.baseline}; ${answer.milliseconds.toFixed(0)} ms`;
  card.dataset.explained = "true";
}

function showPrediction(prediction) {
  const card = cards.get(prediction.model);
  if (!card) return;
  const best = prediction.top_k[0];
  card.querySelector(".digit").textContent = prediction.prediction;
  card.querySelector(".confidence").textContent = percent(best.probability);
  const bars = card.querySelector(".bars");
  bars.replaceChildren(...prediction.top_k.map((entry) => {
    const row = document.createElement("li");
    row.dataset.class = entry.class;
    row.dataset.probability = String(entry.probability);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = entry.class;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = (100 * entry.probability).toFixed(2) + "%";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = percent(entry.probability);
    row.append(label, track, value);
    return row;
  }));
  const shared = prediction.batch_size > 1 ? `, ${prediction.batch_size} drawings in the call` : "";
  card.querySelector(".time").textContent = `model call ${prediction.milliseconds.toFixed(2)} ms${shared}`;
}

function resetCards() {
  for (const card of cards.values()) {
    card.querySelector(".digit").textContent = "–";
    card.querySelector(".confidence").textContent = "";
    card.querySelector(".bars").replaceChildren();
    card.querySelector(".time").textContent = "";
    delete card.dataset.explained;
    delete card.explanation;
    card.querySelector(".maps").replaceChildren();
    card.querySelector(".explain-status").textContent = "";
    for (const canvas of card.querySelectorAll(".explain canvas")) canvas.getContext("2d").clearRect(0, 0, 28, 28);
  }
}

function showSeen(pixels) {
  const image = seen.getContext("2d").createImageData(28, 28);
  pixels.forEach((value, index) => {
    image.data.set([value, value, value, 255], 4 * index);
  });
  seen.getContext("2d").putImageData(image, 0, 0);
}

// ------------------------------------------------------------------ predicting

// One request at a time; while one is out, only the newest drawing waits (older ones are stale).
function schedule(body, type) {
  pending = { body, type };
  if (!inFlight) sendPending();
}

async function sendPending() {
  const { body, type } = pending;
  pending = null;
  inFlight = true;
  setState("busy");
  try {
    const response = await fetch(`/api/predict?top_k=${topKSelect.value}`, {
      method: "POST", headers: { "Content-Type": type }, body: await body(),
    });
    const answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (!pending) {  // a newer drawing makes this answer stale
      if (!response.ok) {
        resetCards();
        setState("error", answer.error || `the server answered ${response.status}`);
      } else {
        showSeen(answer.pixels);
        answer.predictions.forEach(showPrediction);
        setState("shown", "");
        lastPixels = answer.pixels;
        for (const card of cards.values()) explainCard(card);
      }
    }
  } catch (error) {
    setState("error", `cannot reach the server: ${error.message}`);
  } finally {
    inFlight = false;
    if (pending) sendPending();
    else document.body.dataset.idle = "true";  // the answer shown is the current drawing's
  }
}

function drawingAsPNG() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

function predictDrawing() {
  if (!hasInk) return;
  delete document.body.dataset.idle;
  schedule(drawingAsPNG, "image/png");
}

// ------------------------------------------------------------------ drawing

function clearPad() {
  context.fillStyle = "#000";
  context.fillRect(0, 0, pad.width, pad.height);
  photo.hidden = true;
  photo.removeAttribute("src");
  hasInk = false;
  seen.getContext("2d").clearRect(0, 0, 28, 28);
  lastPixels = null;
  resetCards();
  setState("empty", "Draw a digit in the black square.");
}

function pointFrom(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: (event.clientX - box.left) * (pad.width / box.width),
    y: (event.clientY - box.top) * (pad.height / box.height),
  };
}

function strokeTo(point) {
  context.strokeStyle = "#fff";
  context.fillStyle = "#fff";
  context.lineWidth = Number(strokeInput.value);
  context.lineCap = "round";
  context.lineJoin = "round";
  if (lastPoint === null) {
    context.beginPath();
    context.arc(point.x, point.y, context.lineWidth / 2, 0, 2 * Math.PI);
    context.fill();
  } else {
    context.beginPath();
    context.moveTo(lastPoint.x, lastPoint.y);
    context.lineTo(point.x, point.y);
    context.stroke();
  }
  lastPoint = point;
  hasInk = true;
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  if (!photo.hidden) clearPad();  // drawing after a photo starts a new drawing
  drawing = true;
  lastPoint = null;
  pad.setPointerCapture(event.pointerId);
  strokeTo(pointFrom(event));
  predictDrawing();
  event.preventDefault();
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of events.length ? events : [event]) strokeTo(pointFrom(each));
  predictDrawing();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  lastPoint = null;
  predictDrawing();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", clearPad);
strokeInput.addEventListener("input", () => { strokeValue.textContent = strokeInput.value; });
topKSelect.addEventListener("change", () => {
  if (!photo.hidden && photo.dataset.type) schedule(photo.upload, photo.dataset.type);
  else predictDrawing();
});

document.getElementById("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";  // choosing the same file again fires another change
  if (!file) return;
  clearPad();
  photo.src = URL.createObjectURL(file);
  photo.hidden = false;
  delete document.body.dataset.idle;  // not idle while the photo is read, before its request goes
  const small = await fitted(file);
  photo.dataset.type = small === file ? (file.type || "application/octet-stream") : "image/png";
  photo.upload = async () => small;
  schedule(photo.upload, photo.dataset.type);
});

// A photo over the server's pixel limit (a 48-megapixel phone photo) is scaled down here, as a
// PNG; smaller ones are sent as they are, so that the page answers what `predict` answers for the file.
async function fitted(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file;  // not a picture this browser reads: the server says what is wrong with it
  }
  const pixels = bitmap.width * bitmap.height;
  if (pixels <= maxPicturePixels) {
    bitmap.close();
    return file;
  }
  const scale = Math.sqrt(maxPicturePixels / pixels) * 0.99;
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.floor(bitmap.width * scale));
  canvas.height = Math.max(1, Math.floor(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// ------------------------------------------------------------------ start

async function start() {
  clearPad();
  try {
    const response = await fetch("/api/models");
    const listing = await response.json();
    maxPicturePixels = listing.max_picture_pixels || Infinity;
    for (let k = 1; k <= listing.max_top_k; k++) topKSelect.add(new Option(String(k), String(k), false, k === listing.top_k));
    listing.models.forEach(addCard);
    setState("empty", `Draw a digit in the black square: ${listing.models.length} model${listing.models.length === 1 ? "" : "s"} will answer.`);
    document.body.dataset.idle = "true";
  } catch (error) {
    setState("error", `cannot load the models: ${error.message}`);
  }
}
start();

// The page of `metalearn serve`: drawing pads, the session's classes, teach, try, save, load.
// Plain script, no build step and nothing loaded from elsewhere; every call goes to /api.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

// Omniglot strokes are about 4 px wide on a 105 px page; the pads draw at the same scale.
const STROKE_FRACTION = 4 / 105;

async function api(method, path, body, contentType) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.body = body;
    options.headers["Content-Type"] = contentType;
  }
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.startsWith("application/json") ? response.json() : response.blob();
}

const json = (value) => [JSON.stringify(value), "application/json"];
const classPath = (name) => `/api/classes/${encodeURIComponent(name)}`;

function showMessage(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(showMessage.timer);
  showMessage.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

// A canvas drawn on with any pointer (mouse, pen, touch): black strokes on a white page.
class Pad {
  constructor(canvas, onStroke) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.onStroke = onStroke;
    this.strokes = 0;
    this.last = null;
    this.clear();
    canvas.addEventListener("pointerdown", (event) => this.down(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    canvas.addEventListener("pointerup", (event) => this.up(event));
    canvas.addEventListener("pointercancel", (event) => this.up(event));
  }

  clear() {
    const { context, canvas } = this;
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    this.strokes = 0;
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }

  down(event) {
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.last = this.point(event);
    this.segment(this.last, this.last);
  }

  move(event) {
    if (this.last === null) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const each of events.length ? events : [event]) {
      const next = this.point(each);
      this.segment(this.last, next);
      this.last = next;
    }
  }

  up(event) {
    if (this.last === null) return;
    this.move(event);
    this.last = null;
    this.strokes += 1;
    if (this.onStroke) this.onStroke(this);
  }

  segment(from, to) {
    const { context, canvas } = this;
    context.strokeStyle = "#000";
    context.lineWidth = canvas.width * STROKE_FRACTION;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(from[0], from[1]);
    context.lineTo(to[0], to[1]);
    context.stroke();
  }

  blob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}

const state = { data: null, predictions: 0 };
let drawPad = null;
let tryPad = null;

async function refresh() {
  state.data = await api("GET", "/api/state");
  render();
}

function render() {
  const { model, classes, taught } = state.data;
  const needs = model.n_way === null ? "any number of classes" : `exactly ${model.n_way} classes`;
  $("#model-info").textContent = `run ${model.name} · ${needs}`;
  $("#no-classes").hidden = classes.length > 0;
  $("#classes").replaceChildren(...classes.map(renderClass));
  const status = $("#teach-status");
  if (taught === null) status.textContent = "";
  else if (taught.stale) status.textContent = "examples changed: teach again";
  else status.textContent = `taught ${taught.classes.length} classes`;
  status.dataset.taught = taught !== null && !taught.stale ? "yes" : "no";
}

function button(text, className, onClick, title) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.className = className;
  if (title) element.title = title;
  element.addEventListener("click", onClick);
  return element;
}

function renderClass({ name, examples }) {
  const item = document.createElement("li");
  item.className = "class-card";
  item.dataset.class = name;
  const head = document.createElement("div");
  head.className = "class-head";
  const title = document.createElement("span");
  title.className = "class-name";
  title.textContent = name;
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = `${examples.length} example${examples.length === 1 ? "" : "s"}`;
  const upload = document.createElement("label");
  upload.className = "button small";
  upload.textContent = "Upload";
  const input = document.createElement("input");
  Object.assign(input, { type: "file", accept: "image/*", multiple: true, hidden: true });
  input.addEventListener("change", () => act(() => uploadExamples(name, input.files)));
  upload.append(input);
  head.append(
    title,
    count,
    button("Add drawing", "add-drawing small primary", () => act(() => addDrawing(name))),
    upload,
    button("Clear", "clear small", () => act(() => api("DELETE", `${classPath(name)}/examples`))),
    button("×", "delete small quiet", () => act(() => api("DELETE", classPath(name))), "remove class"),
  );
  const thumbs = document.createElement("div");
  thumbs.className = "thumbs";
  thumbs.append(...examples.map((id) => renderThumb(name, id)));
  item.append(head, thumbs);
  return item;
}

function renderThumb(name, id) {
  const figure = document.createElement("figure");
  figure.className = "thumb";
  const image = document.createElement("img");
  image.src = `${classPath(name)}/examples/${id}`;
  image.alt = `${name} example ${id}`;
  figure.append(
    image,
    button("×", "remove", () => act(() => api("DELETE", `${classPath(name)}/examples/${id}`)), "remove example"),
  );
  return figure;
}

// Runs a change, then shows the server's state (or its error message).
async function act(change) {
  try {
    await change();
  } catch (error) {
    showMessage(error.message);
  }
  await refresh();
}

async function addDrawing(name) {
  if (drawPad.strokes === 0) throw new Error("draw an example on the pad first");
  await api("POST", `${classPath(name)}/examples`, await drawPad.blob(), "image/png");
  drawPad.clear();
}

async function uploadExamples(name, files) {
  for (const file of files) {
    if (!file.type) throw new Error(`${file.name} is not an image`);
    await api("POST", `${classPath(name)}/examples`, file, file.type);
  }
}

async function teach() {
  const status = $("#teach-status");
  status.textContent = "teaching…";
  try {
    const result = await api("POST", "/api/adapt");
    state.data = result;
    render();
    status.textContent += ` in ${(result.seconds * 1000).toFixed(0)} ms`;
    if (tryPad.strokes > 0) predictPad(tryPad);
  } catch (error) {
    status.textContent = error.message;
    status.dataset.taught = "no";
  }
}

async function predict(body, type, strokes) {
  const number = ++state.predictions;
  const result = await api("POST", "/api/predict", body, type);
  if (number !== state.predictions) return; // a later drawing's answer is on its way
  renderPrediction(result);
  $("#result").dataset.strokes = String(strokes);
}

function renderPrediction(result) {
  $("#predicted").textContent = `${result.class} · ${(result.probability * 100).toFixed(0)}%`;
  $("#predicted").dataset.class = result.class;
  $("#bars").replaceChildren(
    ...result.probabilities.map(({ class: name, probability }) => {
      const row = document.createElement("li");
      row.className = name === result.class ? "bar best" : "bar";
      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = name;
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${(probability * 100).toFixed(1)}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = `${(probability * 100).toFixed(0)}%`;
      row.append(label, track, value);
      return row;
    }),
  );
}

function predictPad(pad) {
  const strokes = pad.strokes;
  if (!state.data || state.data.taught === null) {
    $("#predicted").textContent = "Teach first, then draw here.";
    return;
  }
  pad.blob()
    .then((blob) => predict(blob, "image/png", strokes))
    .catch((error) => { $("#predicted").textContent = error.message; });
}

function clearTry() {
  tryPad.clear();
  state.predictions += 1; // drop answers still on their way
  $("#result").dataset.strokes = "0";
  $("#predicted").textContent = "Draw here.";
  delete $("#predicted").dataset.class;
  $("#bars").replaceChildren();
}

async function save() {
  try {
    const blob = await api("GET", "/api/export");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "personal.pt";
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (error) {
    showMessage(error.message);
  }
}

async function load(file) {
  await act(() => api("POST", "/api/import", file, "application/octet-stream"));
  if (state.data.taught) $("#teach-status").textContent = `loaded ${file.name}`;
}

function start() {
  drawPad = new Pad($("#draw-pad"));
  tryPad = new Pad($("#try-pad"), predictPad);
  $("#add-class-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#class-name");
    act(() => api("POST", "/api/classes", ...json({ name: input.value }))).then(() => {
      input.value = "";
    });
  });
  $("#draw-clear").addEventListener("click", () => drawPad.clear());
  $("#teach").addEventListener("click", teach);
  $("#try-clear").addEventListener("click", clearTry);
  $("#try-upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) predict(file, file.type, 0).catch((error) => showMessage(error.message));
    event.target.value = "";
  });
  $("#save").addEventListener("click", save);
  $("#load").addEventListener("change", (event) => {
    if (event.target.files[0]) load(event.target.files[0]);
    event.target.value = "";
  });
  refresh().catch((error) => showMessage(error.message));
}

start();

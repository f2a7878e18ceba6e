// emolens page: webcam frames over a WebSocket, or one uploaded photo over POST /v1/predict.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. Label names and
// their order come from GET /v1/model, never from this file.
"use strict";

const MAX_FPS = 12;             // frames sent per second at most; the server answers each in turn
const FRAME_SIDE = 640;         // longer side of a camera frame sent to the server
const PHOTO_SIDE = 1600;        // longer side of an uploaded photo after resizing in the browser
const TIMELINE_SECONDS = 30;
const PALETTE = ["#e5484d", "#30a46c", "#8e4ec6", "#f5d90a", "#9ba1a6", "#3e63dd", "#f76b15", "#d6409f", "#12a594"];

const $ = (id) => document.getElementById(id);
const state = {
  labels: [], colors: {}, inks: {}, model: null,
  mode: "camera", stream: null, socket: null, running: false, waiting: false,
  lastSent: 0, sentAt: 0, history: [], rateWindow: [], frames: 0,
  mainShown: null, photoResult: null, lastFrame: null,
};

// ---------------------------------------------------------------- start-up

async function init() {
  $("window-s").textContent = TIMELINE_SECONDS;
  $("tab-camera").addEventListener("click", () => setMode("camera"));
  $("tab-photo").addEventListener("click", () => setMode("photo"));
  $("start").addEventListener("click", startCamera);
  $("stop").addEventListener("click", stopCamera);
  $("mirror").addEventListener("change", () => $("video").classList.toggle("mirrored", $("mirror").checked));
  $("video").classList.toggle("mirrored", $("mirror").checked);
  $("file").addEventListener("change", (e) => e.target.files[0] && predictPhoto(e.target.files[0]));
  setupDrop($("stage"));
  $("overlay").addEventListener("click", pickAt);
  try {
    const info = await getJSON("/v1/model");
    state.model = info;
    state.labels = info.labels;
    // The server's colour table (emolens.pipeline.colors): the same colours as annotated images and videos.
    state.labels.forEach((label, i) => {
      state.colors[label] = (info.colors && info.colors[label]) || PALETTE[i % PALETTE.length];
      state.inks[label] = (info.inks && info.inks[label]) || "#000000";  // the text on that colour
    });
    $("model").textContent = `model ${info.name || "?"} ${info.version || ""} · ${state.labels.length} emotions`
      + (info.detector ? ` · faces found by ${info.detector}` : "");
    buildBars();
    buildLegend();
    drawTimeline();
    document.body.dataset.state = "ready";
  } catch (err) {
    showMessage(`Could not reach the server: ${err.message}`, true);
    document.body.dataset.state = "error";
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $("start").disabled = true;
    showMessage("This browser gives no camera access here; use Photo mode.", false);
  }
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new Error(body && body.detail ? `${response.status}: ${body.detail}` : `HTTP ${response.status}`);
  return body;
}

function setMode(mode) {
  state.mode = mode;
  $("tab-camera").setAttribute("aria-pressed", String(mode === "camera"));
  $("tab-photo").setAttribute("aria-pressed", String(mode === "photo"));
  $("camera-controls").hidden = mode !== "camera";
  $("photo-controls").hidden = mode !== "photo";
  $("video").hidden = mode !== "camera";
  $("photo").hidden = mode !== "photo";
  $("timeline-panel").hidden = mode !== "camera";  // a photo is one moment: nothing to plot over time
  if (mode === "photo") stopCamera();
  state.photoResult = null;
  clearOverlay();
  $("placeholder").hidden = false;
  $("placeholder").textContent = mode === "camera"
    ? "Start the camera, or switch to Photo to upload a picture."
    : "Choose a photo, or drop one here.";
}

function showMessage(text, isError) {
  $("message").textContent = text;
  $("message").classList.toggle("error", Boolean(isError));
}

// ---------------------------------------------------------------- camera

async function startCamera() {
  if (state.running) return;
  state.mainShown = null;
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (err) {
    showMessage(`No camera (${err.name}): ${err.message}. Photo mode works without one.`, true);
    return;
  }
  const video = $("video");
  video.srcObject = state.stream;
  await video.play();
  $("placeholder").hidden = true;
  state.running = true;
  state.history = [];
  $("start").disabled = true;
  $("stop").disabled = false;
  document.body.dataset.state = "camera";
  showMessage("Camera on; connecting…", false);
  connect();
}

function stopCamera() {
  state.running = false;
  state.lastFrame = null;
  if (state.socket) { state.socket.close(); state.socket = null; }
  if (state.stream) { state.stream.getTracks().forEach((t) => t.stop()); state.stream = null; }
  $("video").srcObject = null;
  $("start").disabled = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  $("stop").disabled = true;
  $("rate").textContent = "";
  if (document.body.dataset.state === "camera") document.body.dataset.state = "ready";
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  state.waiting = false;
  socket.onmessage = (event) => onStreamMessage(JSON.parse(event.data));
  socket.onclose = () => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (state.running) {
      showMessage("Connection lost; reconnecting…", true);
      setTimeout(() => state.running && connect(), 1000);
    }
  };
}

function onStreamMessage(msg) {
  if (msg.type === "follow") return;  // the server's echo of a click's choice (followFace); a frame may be in flight
  if (msg.type === "hello") {
    showMessage(`Streaming to ${msg.model.name || "the model"}.`, false);
    scheduleFrame();
    return;
  }
  state.waiting = false;
  if (msg.type === "result") {
    state.frames += 1;
    document.body.dataset.frames = String(state.frames);
    const now = performance.now();
    state.rateWindow.push(now);
    while (state.rateWindow.length && now - state.rateWindow[0] > 2000) state.rateWindow.shift();
    const fps = state.rateWindow.length / 2;
    $("rate").textContent = `${fps.toFixed(1)} fps · ${Math.round(now - state.sentAt)} ms round trip · ${msg.timings.predict_ms.toFixed(0)} ms model`;
    state.lastFrame = msg;
    const main = liveMain(msg.faces, msg.main);
    showResult(msg, $("mirror").checked, main.face, main.held);
    pushHistory(main.face);
    scheduleFrame();
  } else if (msg.type === "error") {
    showMessage(`Frame ${msg.seq}: ${msg.detail}`, true);
    setTimeout(scheduleFrame, (msg.retry_after || 0) * 1000);
  }
}

function scheduleFrame() {
  if (!state.running) return;
  const wait = Math.max(0, 1000 / MAX_FPS - (performance.now() - state.lastSent));
  setTimeout(sendFrame, wait);
}

function sendFrame() {
  const video = $("video");
  const socket = state.socket;
  if (!state.running || state.waiting || !socket || socket.readyState !== WebSocket.OPEN) return;
  if (!video.videoWidth) { setTimeout(sendFrame, 100); return; }
  const scale = Math.min(1, FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const canvas = grab(video, Math.round(video.videoWidth * scale), Math.round(video.videoHeight * scale));
  state.waiting = true;
  canvas.toBlob((blob) => {
    if (!blob || socket.readyState !== WebSocket.OPEN) { state.waiting = false; return; }
    state.lastSent = state.sentAt = performance.now();
    socket.send(blob);
  }, "image/jpeg", 0.85);
}

let grabCanvas = null;
function grab(source, width, height) {
  grabCanvas = grabCanvas || document.createElement("canvas");
  grabCanvas.width = width;
  grabCanvas.height = height;
  grabCanvas.getContext("2d").drawImage(source, 0, 0, width, height);
  return grabCanvas;
}

// ---------------------------------------------------------------- photo

function setupDrop(zone) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("drop"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("drop"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("drop");
    const file = e.dataTransfer.files[0];
    if (file) { setMode("photo"); predictPhoto(file); }
  });
}

async function predictPhoto(file) {
  showMessage(`Reading ${file.name}…`, false);
  let bitmap;
  try {
    // The browser applies the EXIF rotation here, so phone photos arrive upright.
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch (err) {
    await predictUnshown(file);  // HEIC in most browsers: the server may read it (its heif extra)
    return;
  }
  const scale = Math.min(1, PHOTO_SIDE / Math.max(bitmap.width, bitmap.height));
  const photo = $("photo");
  photo.width = Math.round(bitmap.width * scale);
  photo.height = Math.round(bitmap.height * scale);
  photo.getContext("2d").drawImage(bitmap, 0, 0, photo.width, photo.height);
  $("placeholder").hidden = true;
  clearOverlay();
  const blob = await new Promise((resolve) => photo.toBlob(resolve, "image/jpeg", 0.92));
  const form = new FormData();
  form.append("file", blob, file.name.replace(/\.[^.]*$/, "") + ".jpg");
  try {
    const t0 = performance.now();
    const result = await getJSON("/v1/predict", { method: "POST", body: form });
    showPhotoResult(file, result, ` in ${Math.round(performance.now() - t0)} ms`);
  } catch (err) {
    showMessage(`${file.name}: ${err.message}`, true);
  }
}

// The faces of an uploaded photo, boxed and listed, the largest one's bars, and a message that
// counts them, with `detail` after the count.
function showPhotoResult(file, result, detail) {
  state.photoResult = result;
  showResult(result, false, largestFace(result.faces));
  const n = result.faces.length;
  const found = n === 0 ? "no face found" : n === 1 ? "1 face" : `${n} faces`;
  showMessage(`${file.name}: ${found}${detail}.`, false);
  document.body.dataset.state = "photo";
}

// A photo this browser cannot open (an iPhone's HEIC outside Safari) goes to the server as it
// is; the faces are drawn where they lie on a blank picture of the photo's size.
async function predictUnshown(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const result = await getJSON("/v1/predict", { method: "POST", body: form });
    const photo = $("photo");
    photo.width = result.image.width;
    photo.height = result.image.height;
    const ctx = photo.getContext("2d");
    ctx.fillStyle = "#333";
    ctx.fillRect(0, 0, photo.width, photo.height);
    $("placeholder").hidden = true;
    clearOverlay();
    showPhotoResult(file, result, " (this browser cannot show the photo; the server read it)");
  } catch (err) {
    showMessage(`${file.name}: neither this browser nor the server can read it (${err.message}).`, true);
  }
}

// ---------------------------------------------------------------- drawing

function boxOf(face) {
  const b = face.box;
  if (!b) return null;
  return Array.isArray(b) ? b : [b.x, b.y, b.w ?? b.width, b.h ?? b.height];
}

function areaOf(face) {
  const b = boxOf(face);
  return b ? b[2] * b[3] : 0;
}

function largestFace(faces) {
  let best = null;
  for (const face of faces) if (best === null || areaOf(face) > areaOf(best)) best = face;
  return best;
}

// The face whose bars and timeline the camera view shows, as the server chose it (`main` of each
// /v1/stream answer: one person's until another face grows 1.3 times as large, kept while missed
// for a moment, the rule of `emolens video`), and while that face is missed (`held`) the face as
// last seen, whose scores the bars keep. Without `main` (a server that reads frames afresh): the largest.
function liveMain(faces, main) {
  if (!main) return { face: largestFace(faces), held: null };
  const face = faces.find((f) => f.face_id === main.face_id) || null;
  if (face) {
    state.mainShown = face;
    document.body.dataset.mainBox = boxOf(face).map((v) => Math.round(v)).join(",");
  }
  const shown = state.mainShown;
  return { face, held: main.held && shown && shown.face_id === main.face_id ? shown : null };
}

function clearOverlay() {
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  $("faces").replaceChildren();
  document.body.dataset.faces = "0";
}

// Every face of a server answer (`result`: faces, tags, image) boxed and labelled over the
// picture, `main`'s box thicker and its scores in the bars (`held`'s, the main face as last
// seen, while it is missed for a moment). Labels go where the server placed them (`tags`: where
// annotated images put them, over no other face or label, sized to the picture and the face).
function showResult(result, mirrored, main, held = null) {
  const { faces, image } = result;
  const overlay = $("overlay");
  overlay.width = image.width;   // the overlay has the frame's own pixels; CSS scales both alike
  overlay.height = image.height;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const line = Math.max(2, Math.round(image.width / 240));
  const tags = new Map((result.tags || []).map((tag) => [tag.face, tag]));
  const items = [];
  faces.forEach((face, i) => {
    const b = boxOf(face);
    if (!b) return;
    let [x, y, w, h] = b;
    if (mirrored) x = image.width - x - w;  // the video is shown mirrored; the frame was not
    const color = state.colors[face.label] || "#ffffff";
    ctx.strokeStyle = color;
    ctx.lineWidth = face === main && faces.length > 1 ? 2 * line : line;  // whose scores the bars show
    ctx.strokeRect(x, y, w, h);
    const tag = tags.get(i) || tagAbove(ctx, face, b, line);
    drawTag(ctx, tag, color, state.inks[face.label] || "#000000", mirrored ? image.width : null);
    const li = document.createElement("li");
    li.dataset.label = face.label;
    li.dataset.box = b.map((v) => Math.round(v)).join(",");
    li.dataset.tag = [tag.box.x, tag.box.y, tag.box.w, tag.box.h].map((v) => Math.round(v)).join(",");
    li.textContent = `${tag.text} — box ${li.dataset.box}`;
    if (result === state.photoResult) {  // a photo: any face's bars, by its line or its box
      li.tabIndex = 0;
      li.title = "show this face's scores";
      li.addEventListener("click", () => pickFace(i));
      li.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && pickFace(i));
    }
    items.push(li);
  });
  $("faces").replaceChildren(...items);
  document.body.dataset.faces = String(items.length);
  updateBars(main, held, whoseBars(result, main));
}

// What the bars' heading calls the face they show: on a photo, the one clicked; live, the one
// the viewer chose (a click: followFace), else the largest.
function whoseBars(result, main) {
  if (result === state.photoResult) {
    const picked = main && result.faces.length > 1 && main !== largestFace(result.faces);
    return picked ? `face ${result.faces.indexOf(main) + 1}` : "largest face";
  }
  return result.main && result.main.followed ? "the face you chose" : "largest face";
}

// ---------------------------------------------------------------- choosing a face (photo and live)

// On a photo of several people, the bars show the face chosen by a click on its box or its line
// in the list (the largest at first), drawn with the thicker box. Live, a click on a face asks the
// server to keep the bars on it (followFace); a second click gives them back to the largest.
function pickFace(index) {
  const result = state.photoResult;
  if (state.mode !== "photo" || !result || !result.faces[index]) return;
  showResult(result, false, result.faces[index]);
}

// A click on the picture: the face under it (the overlay is shown scaled to fit the stage,
// `object-fit: contain`, so the click is mapped back to the picture's pixels; live, the mirrored
// view back to the frame's).
function pickAt(event) {
  const overlay = $("overlay");
  const rect = overlay.getBoundingClientRect();
  const scale = Math.min(rect.width / overlay.width, rect.height / overlay.height);
  let x = (event.clientX - rect.left - (rect.width - overlay.width * scale) / 2) / scale;
  const y = (event.clientY - rect.top - (rect.height - overlay.height * scale) / 2) / scale;
  if (state.mode === "photo" && state.photoResult) {
    const i = faceAt(state.photoResult.faces, x, y);
    if (i >= 0) pickFace(i);
  } else if (state.mode === "camera" && state.running && state.lastFrame) {
    if ($("mirror").checked) x = overlay.width - x;
    const i = faceAt(state.lastFrame.faces, x, y);
    if (i >= 0) followFace(state.lastFrame.faces[i].face_id);
  }
}

// The index of the smallest face whose box holds (x, y), or -1.
function faceAt(faces, x, y) {
  let best = -1;
  faces.forEach((face, i) => {
    const b = boxOf(face);
    const inside = b && x >= b[0] && x <= b[0] + b[2] && y >= b[1] && y <= b[1] + b[3];
    if (inside && (best < 0 || areaOf(face) < areaOf(faces[best]))) best = i;
  });
  return best;
}

// Ask the server to keep the live bars on the face with this track id (LayoutMemory.follow), or,
// for the face already chosen, to give them back to the largest. The answers that follow say so.
function followFace(faceId) {
  const main = state.lastFrame.main;
  const again = main && main.followed && main.face_id === faceId;
  if (faceId == null || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;  // no id: not followed
  state.socket.send(JSON.stringify({ type: "follow", face_id: again ? null : faceId }));
}

// A tag's text in `ink` on `color`, as large as its box holds; `mirrorWidth`: the picture's
// width where it is shown mirrored (the tag moves with its face; its text stays readable).
function drawTag(ctx, tag, color, ink, mirrorWidth) {
  let { x, y, w, h } = tag.box;
  if (mirrorWidth !== null) x = mirrorWidth - x - w;
  ctx.fillStyle = color;
  ctx.fillRect(x, y, w, h);
  const pad = Math.max(2, Math.round(h * 0.15));
  let size = Math.max(6, (h - 2 * pad) / 0.72);  // capitals are about 0.72 of the font size
  ctx.font = `${size}px system-ui, sans-serif`;
  const room = w - 2 * pad;
  const width = ctx.measureText(tag.text).width;
  if (width > room) {
    size = Math.max(6, Math.floor((size * room) / width));
    ctx.font = `${size}px system-ui, sans-serif`;
  }
  ctx.fillStyle = ink;
  ctx.textBaseline = "middle";
  ctx.fillText(tag.text, x + pad, y + h / 2);
}

// A server that sends no tags (one serving a recognizer of an application's own): above the box.
function tagAbove(ctx, face, box, line) {
  const score = face.scores ? face.scores[face.label] : undefined;
  const text = score === undefined ? face.label : `${face.label} ${Math.round(score * 100)}%`;
  const h = 9 * line;
  ctx.font = `${h - 2 * line}px system-ui, sans-serif`;
  const w = ctx.measureText(text).width + 2 * line;
  return { box: { x: box[0], y: box[1] - h < 0 ? box[1] + box[3] : box[1] - h, w, h }, text };
}

function buildBars() {
  const bars = $("bars");
  bars.replaceChildren();
  for (const label of state.labels) {
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.id = `bar-${label}`;
    fill.style.background = state.colors[label];
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.id = `value-${label}`;
    value.textContent = "–";
    bars.append(name, track, value);
  }
}

// The bars of `face` (`who` names it), or with none, those `held` had when it was last seen.
function updateBars(face, held = null, who = "largest face") {
  $("bars-who").textContent = face ? `(${who})` : held ? "(out of view a moment)" : "(no face)";
  face = face || held;
  for (const label of state.labels) {
    const p = face && face.scores ? face.scores[label] || 0 : 0;
    $(`bar-${label}`).style.width = `${(p * 100).toFixed(1)}%`;
    $(`value-${label}`).textContent = face ? `${Math.round(p * 100)}%` : "–";
  }
}

function buildLegend() {
  const legend = $("legend");
  legend.replaceChildren(...state.labels.map((label) => {
    const item = document.createElement("span");
    item.textContent = label;
    item.style.setProperty("--swatch", state.colors[label]);
    return item;
  }));
}

function pushHistory(face) {
  const now = performance.now() / 1000;
  state.history.push({ t: now, scores: face && face.scores ? face.scores : null });
  while (state.history.length && now - state.history[0].t > TIMELINE_SECONDS) state.history.shift();
  drawTimeline();
}

function drawTimeline() {
  const canvas = $("timeline");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 28;
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = "#34414d";
  ctx.fillStyle = "#8b96a1";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (const v of [0, 0.5, 1]) {
    const y = H - pad - v * (H - 2 * pad);
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(W - 8, y); ctx.stroke();
    ctx.fillText(`${v * 100}%`, 0, y + 4);
  }
  ctx.fillText(`-${TIMELINE_SECONDS}s`, pad, H - 8);
  ctx.fillText("now", W - 30, H - 8);
  if (!state.history.length) return;
  const end = state.history[state.history.length - 1].t;
  const x = (t) => pad + (1 - (end - t) / TIMELINE_SECONDS) * (W - pad - 8);
  const y = (p) => H - pad - p * (H - 2 * pad);
  ctx.lineWidth = 2;
  for (const label of state.labels) {
    ctx.strokeStyle = state.colors[label];
    ctx.beginPath();
    let drawing = false;
    for (const point of state.history) {
      if (!point.scores) { drawing = false; continue; }  // a gap where no face was seen
      const px = x(point.t), py = y(point.scores[label] || 0);
      if (drawing) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      drawing = true;
    }
    ctx.stroke();
  }
}

document.addEventListener("DOMContentLoaded", init);

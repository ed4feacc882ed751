// The studio page: brushes, crop pickers, generation settings, the job queue and the result.
"use strict";

const state = {
  config: null,
  painter: null,
  picked: new Map(),   // class id -> [{id, label}] chosen crops
  offsets: new Map(),  // class id -> crops already listed
  jobs: [],            // {id, state, ...} newest last
  shown: null,         // job id whose result is on the page
  polling: false,
};

function className(id) { return state.config.classes.find((c) => c.id === id)?.name ?? `class ${id}`; }

// ------------------------------------------------------------------ painting
function buildBrushes() {
  const box = hs.$("#brushes");
  for (const c of state.config.classes) {
    const b = hs.el("button", { type: "button", class: "brush", title: c.name, dataset: { class: c.id } }, [
      hs.el("span", { class: "swatch", style: `background: rgb(${c.color.join(",")})` }),
      hs.el("span", { text: c.name }),
    ]);
    b.addEventListener("click", () => selectClass(c.id));
    box.append(b);
  }
  selectClass(state.painter.current);
  for (const tool of ["brush", "fill", "erase"]) {
    hs.$(`#tool-${tool}`).addEventListener("click", () => {
      state.painter.tool = tool;
      document.querySelectorAll(".tool").forEach((t) => t.classList.toggle("active", t.id === `tool-${tool}`));
    });
  }
  const size = hs.$("#brush-size");
  const setSize = () => { state.painter.radius = Number(size.value); hs.$("#brush-size-value").textContent = size.value; };
  size.addEventListener("input", setSize);
  setSize();
  hs.$("#clear").addEventListener("click", () => state.painter.clear());
}

function selectClass(id) {
  state.painter.current = id;
  if (state.painter.tool === "erase") hs.$("#tool-brush").click();
  document.querySelectorAll(".brush").forEach((b) => b.classList.toggle("active", Number(b.dataset.class) === id));
}

function mapChanged(painter) {
  const counts = painter.counts(), total = painter.label.length;
  const parts = [...counts.entries()].sort((a, b) => a[0] - b[0])
    .map(([id, n]) => `${className(id)} ${((100 * n) / total).toFixed(0)}%`);
  hs.$("#map-stats").textContent = parts.join(" · ");
  for (const c of state.config.classes) {
    const panel = hs.$(`#crop-panel-${c.id}`);
    if (panel) panel.classList.toggle("absent", !counts.has(c.id));
  }
}

async function setupMaps() {
  if (!state.config.maps) return;
  const maps = await hs.request("/api/maps");
  const select = hs.$("#map-select");
  for (const m of maps) select.append(hs.el("option", { value: m.index, text: `${m.id} (${m.slide})` }));
  const preview = () => { hs.$("#map-preview").src = `/api/maps/${select.value}/preview.png`; };
  select.addEventListener("change", preview);
  preview();
  hs.$("#map-load").addEventListener("click", async () => {
    try {
      const got = await hs.request(`/api/maps/${select.value}/label`);
      state.painter.load(Painter.fromBase64(got.label));
    } catch (err) { hs.showMessage(err.message); }
  });
  hs.$("#maps-row").hidden = false;
}

// ------------------------------------------------------------------ crops
function buildCropPanels() {
  const box = hs.$("#crop-classes");
  for (const c of state.config.classes) {
    if (c.id === state.config.background && c.crops === 0) continue;
    const panel = hs.el("div", { class: "crop-class", id: `crop-panel-${c.id}` }, [
      hs.el("h3", {}, [hs.el("span", { class: "swatch", style: `background: rgb(${c.color.join(",")})` }),
        hs.el("span", { text: ` ${c.name}` }), hs.el("span", { class: "small", text: ` · ${c.crops} in bank` })]),
      hs.el("div", { class: "picked", id: `picked-${c.id}` }, [hs.el("span", { class: "small", text: "none picked" })]),
      hs.el("div", { class: "thumbs", id: `thumbs-${c.id}` }),
      hs.el("div", { class: "row" }, [
        hs.el("button", { type: "button", class: "more", id: `more-${c.id}`, text: "more crops" }),
        hs.el("label", { class: "upload" }, [hs.el("span", { text: "upload " }),
          hs.el("input", { type: "file", accept: "image/*", id: `upload-${c.id}` })]),
      ]),
      hs.el("div", { class: "message error small", id: `upload-msg-${c.id}`, hidden: "" }),
    ]);
    box.append(panel);
    hs.$(`#more-${c.id}`, panel).addEventListener("click", () => listCrops(c.id));
    hs.$(`#upload-${c.id}`, panel).addEventListener("change", (e) => upload(c.id, e.target));
    state.picked.set(c.id, []);
    state.offsets.set(c.id, 0);
    listCrops(c.id);
  }
}

async function listCrops(classId) {
  const offset = state.offsets.get(classId);
  try {
    const page = await hs.request(`/api/crops?class_id=${classId}&offset=${offset}&limit=12`);
    const box = hs.$(`#thumbs-${classId}`);
    for (const item of page.items) {
      const source = `slide ${item.slide}, patch ${item.patch}, box x=${item.box[0]} y=${item.box[1]} ` +
        `${item.box[2]}×${item.box[3]} px`;
      const img = hs.el("img", { src: `/api/crops/${item.id}.png`, alt: item.id, title: source });
      const fig = hs.el("figure", { class: "thumb", dataset: { crop: item.id, class: classId } },
        [img, hs.el("figcaption", { text: item.slide })]);
      fig.addEventListener("click", () => togglePick(classId, item.id, source, fig));
      box.append(fig);
    }
    state.offsets.set(classId, offset + page.items.length);
    hs.$(`#more-${classId}`).hidden = offset + page.items.length >= page.total;
  } catch (err) { hs.showMessage(err.message); }
}

function togglePick(classId, cropId, label, fig) {
  const list = state.picked.get(classId);
  const at = list.findIndex((p) => p.id === cropId);
  if (at >= 0) list.splice(at, 1);
  else if (list.length >= state.config.limits.max_crops_per_class) {
    hs.showMessage(`at most ${state.config.limits.max_crops_per_class} crops may be picked per class`);
    return;
  } else list.push({ id: cropId, label });
  if (fig) fig.classList.toggle("selected", at < 0);
  renderPicked(classId);
}

function renderPicked(classId) {
  const box = hs.$(`#picked-${classId}`), list = state.picked.get(classId);
  box.replaceChildren();
  if (!list.length) box.append(hs.el("span", { class: "small", text: "none picked" }));
  for (const p of list) {
    const img = hs.el("img", { src: `/api/crops/${p.id}.png`, alt: p.id, title: `${p.label} (click to remove)` });
    img.addEventListener("click", () => {
      togglePick(classId, p.id, p.label, document.querySelector(`.thumb[data-crop="${p.id}"]`));
    });
    box.append(img);
  }
}

async function upload(classId, input) {
  const msg = hs.$(`#upload-msg-${classId}`);
  msg.hidden = true;
  const file = input.files[0];
  if (!file) return;
  const limit = state.config.limits.max_upload_bytes;
  if (file.size > limit) {
    msg.textContent = `'${file.name}' is ${(file.size / 2 ** 20).toFixed(1)} MB; uploads are limited to ` +
      `${(limit / 2 ** 20).toFixed(0)} MB`;
    msg.hidden = false;
    input.value = "";
    return;
  }
  const form = new FormData();
  form.append("class_id", String(classId));
  form.append("file", file);
  try {
    const got = await hs.request("/api/uploads", { method: "POST", body: form });
    togglePick(classId, got.id, `uploaded ${got.name} (${got.width}×${got.height} px)`, null);
  } catch (err) {
    msg.textContent = err.message;
    msg.hidden = false;
  }
  input.value = "";
}

// ------------------------------------------------------------------ settings and generation
function setupControls() {
  const { defaults, limits } = state.config;
  const slider = (id, min, max, value) => {
    const input = hs.$(`#${id}`), out = hs.$(`#${id}-value`);
    Object.assign(input, { min, max, value });
    const show = () => { out.textContent = input.value; };
    input.addEventListener("input", show);
    show();
  };
  slider("guidance-map", 0, Math.min(limits.max_guidance, 10), defaults.guidance_map);
  slider("guidance-crops", 0, Math.min(limits.max_guidance, 10), defaults.guidance_crops);
  slider("steps", 1, Math.min(limits.max_steps, 250), defaults.steps);
  const sampler = hs.$("#sampler");
  for (const s of state.config.samplers) sampler.append(hs.el("option", { value: s, text: s }));
  sampler.value = defaults.sampler;
  Object.assign(hs.$("#seed"), { value: defaults.seed, max: limits.max_seed });
  hs.$("#seed-random").addEventListener("click", () => {
    hs.$("#seed").value = Math.floor(Math.random() * 2 ** 31);
  });
  hs.$("#generate").addEventListener("click", generate);
  hs.$("#overlay-toggle").addEventListener("change", (e) => { hs.$("#result-overlay").hidden = !e.target.checked; });
}

async function generate() {
  hs.clearMessage();
  const crops = [];
  for (const [classId, list] of state.picked) for (const p of list) crops.push({ class_id: classId, crop: p.id });
  const body = {
    label: state.painter.toBase64(), crops,
    guidance_map: Number(hs.$("#guidance-map").value), guidance_crops: Number(hs.$("#guidance-crops").value),
    steps: Number(hs.$("#steps").value), sampler: hs.$("#sampler").value, seed: Number(hs.$("#seed").value),
  };
  try {
    const job = await hs.postJSON("/api/generate", body);
    state.jobs.push(job);
    renderJobs();
    poll();
  } catch (err) { hs.showMessage(err.message); }
}

async function poll() {
  if (state.polling) return;
  state.polling = true;
  try {
    while (state.jobs.some((j) => j.state === "queued" || j.state === "running")) {
      for (const job of state.jobs.filter((j) => j.state === "queued" || j.state === "running")) {
        try {
          Object.assign(job, await hs.request(`/api/jobs/${job.id}`));
        } catch (err) { Object.assign(job, { state: "failed", error: err.message }); }
        if (job.state === "done") showResult(job);
        if (job.state === "failed") hs.showMessage(job.error);
      }
      renderJobs();
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally { state.polling = false; }
}

function renderJobs() {
  const box = hs.$("#jobs");
  box.replaceChildren();
  for (const job of state.jobs.slice(-8).reverse()) {
    let text = job.state;
    if (job.state === "queued") text = `queued (${job.position} before it)`;
    if (job.state === "running") text = job.total ? `running, step ${job.step} of ${job.total}` : "starting";
    if (job.state === "done") text = `done in ${job.seconds} s`;
    const bar = hs.el("progress", { max: job.total || 1, value: job.state === "done" ? job.total || 1 : job.step });
    const li = hs.el("li", { class: `job ${job.state}`, id: `job-${job.id}`, dataset: { state: job.state } },
      [hs.el("span", { text: `${job.id}: ${text}` }), bar]);
    if (job.state === "done") li.addEventListener("click", () => showResult(job));
    box.append(li);
  }
}

function showResult(job) {
  const base = `/api/jobs/${job.id}`;
  hs.$("#result-image").src = `${base}/image.png`;
  hs.$("#result-overlay").src = `${base}/label-colour.png`;
  hs.$("#result-map").src = `${base}/label-colour.png`;
  hs.$("#download-image").href = `${base}/image.png?download=true`;
  hs.$("#download-label").href = `${base}/label.png?download=true`;
  hs.$("#download-geojson").href = `${base}/annotation.geojson?download=true`;
  hs.$("#download-provenance").href = `${base}/provenance.json?download=true`;
  hs.$("#result-info").textContent = `${job.id}: ${job.size[1]}×${job.size[0]} px, classes ` +
    job.classes.map(className).join(", ");
  hs.$("#result").hidden = false;
  hs.$("#result").dataset.job = job.id;
  state.shown = job.id;
}

async function main() {
  try {
    state.config = await hs.request("/api/config");
  } catch (err) { hs.showMessage(err.message); return; }
  const { size, classes, background } = state.config;
  state.painter = new Painter(hs.$("#canvas"), size, classes, background, mapChanged);
  buildBrushes();
  buildCropPanels();
  setupControls();
  mapChanged(state.painter);
  await setupMaps();
  document.body.dataset.ready = "1";
}

main();

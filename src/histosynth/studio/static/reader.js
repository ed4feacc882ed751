// The reader-study page: one image at a time, a realism score and a real/synthetic guess.
// Every answer is saved by the server before the next image is shown.
"use strict";

const reader = { rater: null, item: null, realism: null, guess: null, shownAt: 0 };

function show(progress) {
  hs.$("#start").hidden = true;
  hs.$("#progress").textContent = `image ${Math.min(progress.done + 1, progress.total)} of ${progress.total}` +
    ` · ${progress.done} saved`;
  if (progress.next === null) {
    hs.$("#rating").hidden = true;
    hs.$("#done").hidden = false;
    document.body.dataset.finished = "1";
    return;
  }
  reader.item = progress.next;
  reader.realism = null;
  reader.guess = null;
  document.querySelectorAll(".realism, .guess").forEach((b) => b.classList.remove("active"));
  hs.$("#submit").disabled = true;
  const img = hs.$("#item-image");
  img.dataset.item = progress.next;
  img.src = `/api/study/images/${progress.next}.png`;
  reader.shownAt = performance.now();
  hs.$("#rating").hidden = false;
}

function updateSubmit() { hs.$("#submit").disabled = reader.realism === null || reader.guess === null; }

async function start() {
  hs.clearMessage();
  const rater = hs.$("#rater").value.trim();
  try {
    const progress = await hs.postJSON("/api/study/session", { rater });
    reader.rater = rater;
    localStorage.setItem("histosynth-rater", rater);
    show(progress);
  } catch (err) { hs.showMessage(err.message); }
}

async function submit() {
  hs.$("#submit").disabled = true;
  try {
    const progress = await hs.postJSON("/api/study/rate", {
      rater: reader.rater, item: reader.item, realism: reader.realism, guess: reader.guess,
      seconds: Math.round((performance.now() - reader.shownAt) / 100) / 10,
    });
    hs.clearMessage();
    show(progress);
  } catch (err) {
    hs.showMessage(`not saved: ${err.message}`);
    updateSubmit();
  }
}

function setup() {
  const box = hs.$("#realism");
  for (let v = 1; v <= 5; v++) {
    const b = hs.el("button", { type: "button", class: "realism", text: String(v), dataset: { value: v } });
    b.addEventListener("click", () => {
      reader.realism = v;
      document.querySelectorAll(".realism").forEach((x) => x.classList.toggle("active", x === b));
      updateSubmit();
    });
    box.append(b);
  }
  document.querySelectorAll(".guess").forEach((b) => b.addEventListener("click", () => {
    reader.guess = b.dataset.guess;
    document.querySelectorAll(".guess").forEach((x) => x.classList.toggle("active", x === b));
    updateSubmit();
  }));
  hs.$("#submit").addEventListener("click", submit);
  hs.$("#start-button").addEventListener("click", start);
  hs.$("#rater").addEventListener("keydown", (e) => { if (e.key === "Enter") start(); });
  // keys: 1-5 score, R / S guess, Enter saves (while an image is shown)
  document.addEventListener("keydown", (e) => {
    if (hs.$("#rating").hidden || e.target.tagName === "INPUT") return;
    if (e.key >= "1" && e.key <= "5") hs.$(`.realism[data-value='${e.key}']`).click();
    else if (e.key === "r" || e.key === "R") hs.$("#guess-real").click();
    else if (e.key === "s" || e.key === "S") hs.$("#guess-synthetic").click();
    else if (e.key === "Enter" && !hs.$("#submit").disabled) hs.$("#submit").click();
  });
  hs.$("#rater").value = localStorage.getItem("histosynth-rater") || "";
  document.body.dataset.ready = "1";
}

setup();

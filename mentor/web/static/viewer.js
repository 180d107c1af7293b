// The PDF viewer of a citation: one page at a time, drawn by PDF.js, with
// the cited passage marked. Where the passage lies is worked out on the
// server (mentor/ingest/locate.py) and fetched as boxes in fractions of the
// page, so the marks scale with the page at any zoom and on any screen.

import * as pdfjs from "./pdfjs/pdf.min.mjs";

const ASSETS = new URL("./", import.meta.url);
pdfjs.GlobalWorkerOptions.workerSrc = new URL("pdfjs/pdf.worker.min.mjs", ASSETS).href;

const root = document.getElementById("viewer");
const doc = root.dataset.doc;
const chunk = root.dataset.chunk;
const els = {
  sheet: document.getElementById("sheet"),
  canvas: document.getElementById("page"),
  marks: document.getElementById("marks"),
  label: document.getElementById("label"),
  of: document.getElementById("of"),
  prev: document.getElementById("prev"),
  next: document.getElementById("next"),
  zoomIn: document.getElementById("zoom-in"),
  zoomOut: document.getElementById("zoom-out"),
  fit: document.getElementById("fit"),
  level: document.getElementById("zoom-level"),
  note: document.getElementById("note"),
  original: document.getElementById("original"),
  loading: document.getElementById("loading"),
};
const ZOOMS = [0.5, 0.75, 1, 1.25, 1.5, 2, 3];
const state = { pdf: null, page: Number(root.dataset.page) || 1, labels: null, zoom: null, passage: null, scrolled: false, task: null };

async function main() {
  const passage = chunk ? fetchPassage() : Promise.resolve(null);
  try {
    state.pdf = await pdfjs.getDocument({
      url: `/files/${doc}`,
      wasmUrl: new URL("pdfjs/", ASSETS).href,
      // Only what the page draws: no links, no forms, no script of the PDF's own.
      enableXfa: false,
      disableAutoFetch: true,
    }).promise;
  } catch (error) {
    els.loading.textContent = "This PDF cannot be shown here. Open the original instead.";
    return;
  }
  els.loading.remove();
  state.labels = await state.pdf.getPageLabels().catch(() => null);
  state.page = Math.min(Math.max(1, state.page), state.pdf.numPages);
  state.passage = await passage;
  bind();
  await show();
}

async function fetchPassage() {
  try {
    const response = await fetch(`/view/${doc}/passage?chunk=${encodeURIComponent(chunk)}`, { credentials: "same-origin" });
    return response.ok ? await response.json() : null;
  } catch (error) {
    return null;
  }
}

function bind() {
  els.prev.onclick = () => go(state.page - 1);
  els.next.onclick = () => go(state.page + 1);
  els.zoomIn.onclick = () => zoom(+1);
  els.zoomOut.onclick = () => zoom(-1);
  els.fit.onclick = () => { state.zoom = null; show(); };
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea")) return;
    if (event.key === "ArrowLeft") go(state.page - 1);
    if (event.key === "ArrowRight") go(state.page + 1);
  });
  let width = window.innerWidth;
  window.addEventListener("resize", () => {
    if (state.zoom === null && Math.abs(window.innerWidth - width) > 40) {
      width = window.innerWidth;
      show();
    }
  });
}

function go(page) {
  if (page < 1 || page > state.pdf.numPages || page === state.page) return;
  state.page = page;
  const url = new URL(location.href);
  url.searchParams.set("page", page);
  history.replaceState(null, "", url);
  window.scrollTo(0, 0);
  show();
}

function zoom(step) {
  const current = state.zoom ?? fitScale(state.width1);
  const next = step > 0 ? ZOOMS.find((z) => z > current + 0.01) : [...ZOOMS].reverse().find((z) => z < current - 0.01);
  if (next) {
    state.zoom = next;
    show();
  }
}

// "Fit": the page as wide as the screen, up to a comfortable reading width.
const READING_WIDTH = 920;

function fitScale(width1) {
  const room = document.querySelector(".stage").clientWidth - (window.innerWidth > 600 ? 32 : 0);
  return Math.min(Math.max(Math.min(room, READING_WIDTH) / width1, 0.3), 3);
}

async function show() {
  const page = await state.pdf.getPage(state.page);
  state.width1 = page.getViewport({ scale: 1 }).width;
  const scale = state.zoom ?? fitScale(state.width1);
  const viewport = page.getViewport({ scale });
  const ratio = window.devicePixelRatio || 1;
  if (state.task) state.task.cancel();
  const canvas = document.createElement("canvas");
  canvas.id = "page";
  canvas.width = Math.floor(viewport.width * ratio);
  canvas.height = Math.floor(viewport.height * ratio);
  canvas.style.width = `${Math.floor(viewport.width)}px`;
  canvas.style.height = `${Math.floor(viewport.height)}px`;
  const transform = ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : null;
  state.task = page.render({ canvasContext: canvas.getContext("2d"), viewport, transform });
  try {
    await state.task.promise;
  } catch (error) {
    return; // cancelled by a newer request
  }
  els.canvas.replaceWith(canvas);
  els.canvas = canvas;
  els.sheet.style.width = canvas.style.width;
  els.sheet.style.height = canvas.style.height;
  describe(scale);
  mark();
}

function describe(scale) {
  const label = state.labels?.[state.page - 1] || String(state.page);
  els.label.textContent = `Page ${label}`;
  els.of.textContent = label === String(state.page) ? `of ${state.pdf.numPages}` : `(${state.page} of ${state.pdf.numPages})`;
  els.prev.disabled = state.page <= 1;
  els.next.disabled = state.page >= state.pdf.numPages;
  els.level.textContent = `${Math.round(scale * 100)}%`;
  els.original.href = `/files/${doc}#page=${state.page}`;
  document.title = `${root.dataset.name}, page ${label}`;
}

function mark() {
  els.marks.replaceChildren();
  const passage = state.passage;
  if (!chunk) {
    els.note.textContent = "";
    return;
  }
  if (!passage || passage.page !== state.page) {
    els.note.textContent = passage && passage.page !== state.page ? `The cited passage is on ${passage.label}.` : "";
    return;
  }
  if (!passage.boxes.length) {
    els.note.textContent = "The cited passage is on this page; it could not be marked exactly.";
    return;
  }
  for (const [x0, y0, x1, y1] of passage.boxes) {
    const box = document.createElement("div");
    box.className = "mark";
    // A little air around the letters, as a marker pen leaves.
    box.style.left = `${(x0 * 100).toFixed(3)}%`;
    box.style.top = `calc(${(y0 * 100).toFixed(3)}% - 1px)`;
    box.style.width = `${((x1 - x0) * 100).toFixed(3)}%`;
    box.style.height = `calc(${((y1 - y0) * 100).toFixed(3)}% + 2px)`;
    els.marks.append(box);
  }
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  els.note.replaceChildren(swatch, "The passage the answer cites is marked.");
  if (!state.scrolled) {
    state.scrolled = true;
    els.marks.firstChild.scrollIntoView({ block: "center", inline: "nearest" });
  }
}

main();

// The semantic-map canvas: the map is a Uint8Array of class ids (exact, no anti-aliasing);
// the canvas only shows it through the class colours.
"use strict";

class Painter {
  constructor(canvas, size, classes, background, onChange) {
    this.canvas = canvas;
    this.size = size;
    this.background = background;
    this.onChange = onChange || (() => {});
    this.label = new Uint8Array(size * size).fill(background);
    this.lut = new Uint8Array(256 * 3);
    for (const c of classes) this.lut.set(c.color, c.id * 3);
    this.current = classes.find((c) => c.id !== background)?.id ?? background;
    this.tool = "brush";
    this.radius = 6;
    canvas.width = size;
    canvas.height = size;
    this.ctx = canvas.getContext("2d");
    this.image = this.ctx.createImageData(size, size);
    this.last = null;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    for (const ev of ["pointerup", "pointerleave", "pointercancel"]) {
      canvas.addEventListener(ev, () => this.up());
    }
    this.render();
  }

  // canvas pixel under a pointer event
  at(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = Math.floor(((e.clientX - r.left) / r.width) * this.size);
    const y = Math.floor(((e.clientY - r.top) / r.height) * this.size);
    return [Math.min(Math.max(x, 0), this.size - 1), Math.min(Math.max(y, 0), this.size - 1)];
  }

  paintValue() { return this.tool === "erase" ? this.background : this.current; }

  down(e) {
    e.preventDefault();
    const [x, y] = this.at(e);
    if (this.tool === "fill") {
      this.fill(x, y, this.current);
      this.changed();
      return;
    }
    this.canvas.setPointerCapture?.(e.pointerId);
    this.last = [x, y];
    this.disc(x, y, this.paintValue());
    this.changed();
  }

  move(e) {
    if (!this.last) return;
    const [x, y] = this.at(e);
    this.line(this.last[0], this.last[1], x, y, this.paintValue());
    this.last = [x, y];
    this.changed();
  }

  up() { this.last = null; }

  disc(cx, cy, value) {
    const r = this.radius, s = this.size, r2 = (r - 0.5) * (r - 0.5);
    for (let y = Math.max(0, cy - r); y <= Math.min(s - 1, cy + r); y++) {
      for (let x = Math.max(0, cx - r); x <= Math.min(s - 1, cx + r); x++) {
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= Math.max(r2, 0.25)) this.label[y * s + x] = value;
      }
    }
  }

  line(x0, y0, x1, y1, value) {
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    for (let i = 1; i <= n; i++) {
      this.disc(Math.round(x0 + ((x1 - x0) * i) / n), Math.round(y0 + ((y1 - y0) * i) / n), value);
    }
  }

  // 4-connected flood fill of the region holding (x, y)
  fill(x, y, value) {
    const s = this.size, lab = this.label, target = lab[y * s + x];
    if (target === value) return;
    const stack = [y * s + x];
    while (stack.length) {
      const p = stack.pop();
      if (lab[p] !== target) continue;
      lab[p] = value;
      const px = p % s;
      if (px > 0) stack.push(p - 1);
      if (px < s - 1) stack.push(p + 1);
      if (p >= s) stack.push(p - s);
      if (p < s * (s - 1)) stack.push(p + s);
    }
  }

  clear() { this.label.fill(this.background); this.changed(); }

  load(label) { this.label.set(label); this.changed(); }

  changed() { this.render(); this.onChange(this); }

  render() {
    const d = this.image.data, lab = this.label, lut = this.lut;
    for (let i = 0; i < lab.length; i++) {
      const k = lab[i] * 3;
      d[4 * i] = lut[k]; d[4 * i + 1] = lut[k + 1]; d[4 * i + 2] = lut[k + 2]; d[4 * i + 3] = 255;
    }
    this.ctx.putImageData(this.image, 0, 0);
  }

  // class id -> pixel count of the current map
  counts() {
    const out = new Map();
    for (const v of this.label) out.set(v, (out.get(v) || 0) + 1);
    return out;
  }

  toBase64() {
    let bin = "";
    for (let i = 0; i < this.label.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, this.label.subarray(i, i + 0x8000));
    }
    return btoa(bin);
  }

  static fromBase64(text) {
    const bin = atob(text), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
}

// Helpers shared by the studio and reader pages: JSON requests and the message banner.
"use strict";

const hs = {
  $(sel, root) { return (root || document).querySelector(sel); },

  el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "style") node.style.cssText = v;  // CSSOM: allowed by the page's CSP
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.append(c);
    return node;
  },

  // fetch JSON; a non-2xx answer throws an Error carrying the server's one-sentence detail
  async request(url, options) {
    let resp;
    try {
      resp = await fetch(url, options);
    } catch (err) {
      throw new Error("the studio server cannot be reached; is it still running?");
    }
    const text = await resp.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (err) { body = null; }
    if (!resp.ok) {
      let detail = body && body.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
      throw new Error(detail || `request failed (${resp.status})`);
    }
    return body;
  },

  postJSON(url, obj) {
    return hs.request(url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(obj),
    });
  },

  showMessage(text, kind) {
    const box = hs.$("#message");
    box.textContent = text;
    box.className = `message ${kind || "error"}`;
    box.hidden = !text;
  },

  clearMessage() { hs.showMessage(""); },
};

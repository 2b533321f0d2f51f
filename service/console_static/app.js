// probeguard console: calls the public API (/v1/detect with explain, /v1/trace, /v1/features) and draws the answer.
// Every text is rendered with textContent (never as HTML); the token lives in this closure only (no storage).
"use strict";
(() => {
  const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#808000", "#469990", "#000075", "#a9a9a9"];
  const LINE_COLORS = ["#d9534f", "#1d6fd8", "#2e8b57", "#8e44ad"];
  let token = null; // bearer token, asked for on a 401 and kept in memory only
  let pending = null; // the request to retry once a token is given
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const e = (body && body.error) || {};
      super(`${status} ${e.type || "error"}: ${e.message || "request failed"}` +
        (retryAfter ? ` (retry after ${retryAfter} s)` : ""));
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined,
      cache: "no-store", credentials: "omit" });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data, response.headers.get("retry-after"));
    return data;
  }

  function parseInput() {
    const raw = $("input").value;
    const mode = document.querySelector("input[name=mode]:checked").value;
    if (mode === "text") return { text: raw };
    const messages = [];
    for (const line of raw.split("\n")) {
      const m = line.match(/^\s*([A-Za-z_]+)\s*:\s?(.*)$/);
      if (m) messages.push({ role: m[1].toLowerCase(), content: m[2] });
      else if (messages.length) messages[messages.length - 1].content += "\n" + line;
      else if (line.trim()) messages.push({ role: "user", content: line });
    }
    return { messages };
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function check(event) {
    if (event) event.preventDefault();
    const body = parseInput();
    showError("");
    delete document.body.dataset.rendered;
    $("status").textContent = "checking…";
    $("check").disabled = true;
    try {
      const detected = await api("POST", "/v1/detect", { ...body, explain: true, return_scores: true });
      let traced = null;
      let traceError = null;
      try { traced = await api("POST", "/v1/trace", body); } catch (e) { traceError = e; }
      await render(body, detected, traced, traceError);
      $("status").textContent = "done";
    } catch (e) {
      $("status").textContent = "";
      if (e.status === 401) {
        pending = check;
        $("token-form").hidden = false;
        $("token").focus();
        showError("401: this service needs a bearer token.");
      } else {
        showError(e.message);
      }
    } finally {
      $("check").disabled = false;
    }
  }

  function labelColor(labels, label) {
    if (!labels.has(label)) labels.set(label, COLORS[labels.size % COLORS.length]);
    return labels.get(label);
  }

  function highlighted(text, spans, labels) {
    const block = el("div", null, "text");
    let at = 0;
    for (const s of [...spans].sort((a, b) => a.start - b.start)) {
      if (s.start < at) continue;
      block.append(document.createTextNode(text.slice(at, s.start)));
      const mark = el("span", text.slice(s.start, s.end), "span");
      const color = labelColor(labels, s.label);
      mark.style.borderColor = color;
      mark.style.backgroundColor = color + "22";
      const validator = s.explanation && s.explanation.validator ? `, validated by ${s.explanation.validator}` : "";
      const info = `${s.label} ${s.score.toFixed(2)}${validator}`;
      mark.title = info;
      mark.dataset.label = s.label;
      mark.tabIndex = 0;
      mark.setAttribute("aria-label", `${s.label}: ${info}`);
      block.append(mark);
      at = s.end;
    }
    block.append(document.createTextNode(text.slice(at)));
    return block;
  }

  function renderSpans(body, detected) {
    const out = $("highlighted");
    out.replaceChildren();
    const labels = new Map();
    if (body.text !== undefined) {
      out.append(highlighted(body.text, detected.spans, labels));
    } else {
      body.messages.forEach((m, i) => {
        const row = el("div", null, "message");
        row.append(el("span", m.role, "role"), highlighted(m.content, detected.spans.filter((s) => s.message === i),
          labels));
        out.append(row);
      });
    }
    const legend = $("legend");
    legend.replaceChildren();
    if (!detected.spans.length) legend.append(el("span", "no personal data found"));
    for (const [label, color] of labels) {
      const item = el("span");
      const swatch = el("span", null, "swatch");
      swatch.style.backgroundColor = color;
      item.append(swatch, document.createTextNode(label));
      legend.append(item);
    }
  }

  function renderCategories(detected) {
    const out = $("categories");
    out.replaceChildren();
    for (const [name, c] of Object.entries(detected.categories)) {
      const row = el("div", null, "category");
      row.dataset.category = name;
      row.dataset.flagged = String(c.flagged);
      const bar = el("div", null, "bar" + (c.flagged ? " flagged" : ""));
      const fill = el("div", null, "fill");
      fill.style.width = `${(100 * c.score).toFixed(1)}%`;
      bar.append(fill);
      if (c.threshold !== undefined && c.threshold !== null) {
        const mark = el("div", null, "threshold");
        mark.style.left = `${(100 * c.threshold).toFixed(1)}%`;
        mark.title = `threshold ${c.threshold.toFixed(2)}`;
        bar.append(mark);
      }
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", `${name} ${c.score.toFixed(2)} against threshold ${c.threshold}`);
      const verdict = el("span", `${c.score.toFixed(3)} / ${c.threshold !== undefined ? c.threshold.toFixed(3) : "?"}`);
      if (c.flagged) verdict.append(el("span", "  flagged", "flag"));
      row.append(el("span", name), bar, verdict);
      out.append(row);
    }
  }

  function rowsTable(rows, valueName) {
    const table = el("table", null, "rows");
    const head = el("tr");
    for (const h of ["source", "role", "label", "licence", "text", valueName]) head.append(el("th", h));
    table.append(head);
    for (const r of rows) {
      const tr = el("tr", null, "training-row");
      tr.append(el("td", r.source), el("td", r.role), el("td", r.label), el("td", r.licence),
        el("td", r.snippet === null ? `(row ${r.row}; text not redistributable)` : r.snippet),
        el("td", r.value.toFixed(3), "num"));
      table.append(tr);
    }
    return table;
  }

  async function renderExplanation(detected) {
    const out = $("explanation");
    out.replaceChildren();
    const flagged = Object.entries(detected.categories).filter(([, c]) => c.explanation);
    if (!flagged.length) {
      out.append(el("p", "No category is flagged: nothing to explain.", "muted"));
      return;
    }
    const ids = new Set();
    for (const [, c] of flagged) for (const f of c.explanation.features) ids.add(f.id);
    let labels = {};
    try {
      const known = await api("GET", `/v1/features?ids=${[...ids].slice(0, 32).join(",")}`);
      labels = Object.fromEntries(known.features.map((f) => [f.id, f]));
    } catch (_) { labels = {}; }
    for (const [name, c] of flagged) {
      const e = c.explanation;
      const section = el("div", null, "explained");
      section.dataset.category = name;
      section.append(el("h3", `${name}: logit ${e.logit.toFixed(3)} = bias ${e.bias.toFixed(3)} + features + ` +
        `other features ${e.other_features.toFixed(3)} + SAE offset ${e.sae_offset.toFixed(3)} + ` +
        `SAE error ${e.sae_error.toFixed(3)}`));
      const table = el("table", null, "features");
      const head = el("tr");
      for (const h of ["feature", "label", "contribution", "top context"]) head.append(el("th", h));
      table.append(head);
      for (const f of e.features) {
        const tr = el("tr", null, "feature");
        const info = labels[f.id];
        const ctx = el("td", null, "context");
        const first = info && info.contexts.find((x) => x.text !== null);
        if (first) {
          ctx.append(document.createTextNode(first.text.slice(0, first.mark[0])),
            el("span", first.text.slice(first.mark[0], first.mark[1]), "mark"),
            document.createTextNode(first.text.slice(first.mark[1])), el("span", `  (${first.source})`, "muted"));
        }
        tr.append(el("td", `#${f.id}`), el("td", f.label || (info && info.label) || "—"),
          el("td", f.contribution.toFixed(3), "num"), ctx);
        table.append(tr);
      }
      section.append(table);
      section.append(el("h3", "Training rows that most supported it (influence)"));
      section.append(rowsTable(e.supporting_rows, "influence"));
      section.append(el("h3", "Nearest training rows"));
      section.append(rowsTable(e.nearest_rows, "distance"));
      out.append(section);
    }
  }

  function tracePlot(layers, served, categories) {
    const W = 640, H = 220, L = 40, R = 130, T = 10, B = 30;
    const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", id: "trace-plot",
      "aria-label": "score by layer per category" });
    const x = (i) => L + (i * (W - L - R)) / Math.max(layers.length - 1, 1);
    const y = (v) => T + (1 - v) * (H - T - B);
    plot.append(svg("line", { x1: L, y1: y(0), x2: W - R, y2: y(0), stroke: "#999" }));
    plot.append(svg("line", { x1: L, y1: y(0), x2: L, y2: y(1), stroke: "#999" }));
    for (const v of [0, 0.5, 1]) {
      const t = svg("text", { x: 4, y: y(v) + 4 });
      t.textContent = v.toFixed(1);
      plot.append(t);
    }
    layers.forEach((k, i) => {
      if (i % 2 === 0 || k === served) {
        const t = svg("text", { x: x(i) - 5, y: H - 12 });
        t.textContent = String(k);
        plot.append(t);
      }
    });
    const s = layers.indexOf(served);
    plot.append(svg("line", { x1: x(s), y1: y(0), x2: x(s), y2: y(1), stroke: "#bbb", "stroke-dasharray": "2 3" }));
    Object.entries(categories).forEach(([name, c], j) => {
      const color = LINE_COLORS[j % LINE_COLORS.length];
      const points = c.scores.map((v, i) => `${x(i)},${y(v)}`).join(" ");
      plot.append(svg("polyline", { points, fill: "none", stroke: color, "stroke-width": 2, class: "score-line" }));
      const th = c.thresholds.map((v, i) => `${x(i)},${y(v)}`).join(" ");
      plot.append(svg("polyline", { points: th, fill: "none", stroke: color, "stroke-dasharray": "5 4",
        "stroke-width": 1 }));
      const label = svg("text", { x: W - R + 8, y: T + 14 + 16 * j });
      label.style.fill = color;
      label.textContent = name;
      plot.append(label);
    });
    return plot;
  }

  function renderTrace(body, traced, traceError) {
    const out = $("trace");
    out.replaceChildren();
    if (!traced) {
      out.append(el("p", traceError ? traceError.message : "no trace", "muted"));
      return;
    }
    const texts = body.text !== undefined ? [body.text] : body.messages.map((m) => m.content);
    traced.traces.forEach((t, i) => {
      const box = el("div", null, "trace");
      box.append(el("h3", (t.role ? `${t.role}: ` : "") + "score by layer (dashed: threshold; grey: served layer " +
        `${traced.served_layer})`));
      box.append(el("p", "A mean-pooled probe per layer, fitted on the heads' training rows: where each category " +
        "becomes readable. The score above is the served head's, at the served layer.", "muted"));
      box.append(tracePlot(traced.layers, traced.served_layer, t.categories));
      const crossings = el("ul");
      for (const [name, c] of Object.entries(t.categories)) {
        const at = c.first_crossing === null ? "never crosses its threshold" :
          `first crosses its threshold at layer ${traced.layers[c.first_crossing]}`;
        crossings.append(el("li", `${name}: ${at}`));
      }
      box.append(crossings);
      for (const name of Object.keys(t.categories)) {
        const strip = el("div", null, "strip text");
        strip.append(el("span", `${name} per token at layer ${traced.served_layer}: `, "muted"));
        for (const tok of t.tokens) {
          const span = el("span", texts[i].slice(tok.start, tok.end));
          const v = tok.scores[name];
          span.style.backgroundColor = `rgba(217, 83, 79, ${(0.85 * v).toFixed(3)})`;
          span.title = `${name} ${v.toFixed(2)}`;
          strip.append(span);
        }
        box.append(strip);
      }
      out.append(box);
    });
  }

  function render(body, detected, traced, traceError) {
    $("results").hidden = false;
    $("bundle").textContent = `bundle ${detected.bundle} ${detected.version}; nothing you paste is stored or logged.`;
    renderSpans(body, detected);
    renderCategories(detected);
    renderTrace(body, traced, traceError);
    return renderExplanation(detected).then(() => { document.body.dataset.rendered = "true"; });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("input-form").addEventListener("submit", check);
    $("input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) check(e);
    });
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      token = $("token").value;
      $("token").value = "";
      $("token-form").hidden = true;
      showError("");
      if (pending) pending();
    });
  });
})();

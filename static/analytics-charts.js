// Small charts drawn as inline SVG for the analytics page (static/analytics-admin.js draws with them): a line with
// its area, columns around a zero line, horizontal bars, and paired bars with an error bar. Each is a <figure> with
// the SVG (role "img", named by its <title> and described by its <desc>) and, for every reader, the same figures as
// a table behind a "Show the figures as a table" disclosure. Charts are drawn at the width their box has; the page
// draws them again when that changes. Colours and text sizes come from static/analytics.css.
(function () {
  const NS = "http://www.w3.org/2000/svg";
  let serial = 0;

  function svg(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = svg("text", Object.assign({ x, y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  // A round step (1, 2, 2.5 or 5 times a power of ten) that cuts [0, v] into at most `parts` pieces.
  function niceStep(v, parts) {
    if (!(v > 0)) return 1;
    const raw = v / parts, power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw - 1e-12) return m * power;
    return 10 * power;
  }

  // The top of an axis for values up to `v`: a whole number of round steps.
  function niceCeil(v) {
    const step = niceStep(v, 4);
    return Math.max(step, Math.ceil(v / step - 1e-9) * step);
  }

  function root(width, height, o) {
    const id = "chart-" + (++serial);
    const node = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                              "aria-labelledby": `${id}-t ${id}-d`, class: "chart-svg" });
    svg("title", { id: id + "-t" }, node).textContent = o.title;
    svg("desc", { id: id + "-d" }, node).textContent = o.desc || "";
    return node;
  }

  // The figures as a table: `columns` are header texts, `rows` arrays of cell texts (the first a row header).
  function table(columns, rows) {
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.scope = "col"; th.textContent = c;
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const r of rows) {
      const tr = body.insertRow();
      r.forEach((value, i) => {
        const cell = i === 0 ? document.createElement("th") : tr.insertCell();
        if (i === 0) { cell.scope = "row"; tr.appendChild(cell); }
        cell.textContent = value == null ? "" : String(value);
      });
    }
    return t;
  }

  function figure(chart, o) {
    const f = document.createElement("figure");
    f.className = "chart-figure";
    f.appendChild(chart);
    if (o.legend && o.legend.length) {
      const legend = document.createElement("ul");
      legend.className = "legend";
      for (const item of o.legend) {
        const li = document.createElement("li");
        const key = document.createElement("span");
        key.className = "key " + item.className;
        key.setAttribute("aria-hidden", "true");
        li.append(key, item.label);
        legend.appendChild(li);
      }
      f.appendChild(legend);
    }
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = o.tableLabel;
    details.append(summary, table(o.columns, o.rows));
    f.appendChild(details);
    return f;
  }

  // Labels along the bottom, thinned out to what fits.
  function xLabels(g, xs, labels, y, room) {
    const every = Math.max(1, Math.ceil(labels.length / Math.max(1, Math.floor(room / 64))));
    labels.forEach((label, i) => {
      if (i % every === 0) text(g, xs[i], y, label, { "text-anchor": "middle", class: "axis-label" });
    });
  }

  function yAxis(g, left, right, top, bottom, ticks, format) {
    for (const t of ticks) {
      const y = bottom - (bottom - top) * t.at;
      svg("line", { x1: left, x2: right, y1: y, y2: y, class: t.zero ? "zero-line" : "grid-line" }, g);
      text(g, left - 6, y + 4, format(t.value), { "text-anchor": "end", class: "axis-label" });
    }
  }

  // o: {width, title, desc, points: [{label, value|null}], format(value), columns, rows, tableLabel}
  function line(o) {
    const width = o.width, height = 220, left = 48, right = width - 32, top = 12, bottom = height - 28;
    const node = root(width, height, o);
    const values = o.points.map((p) => p.value).filter((v) => v != null);
    const tick = niceStep(Math.max(...values, 0), 5);
    const max = Math.max(tick, Math.ceil(Math.max(...values, 0) / tick - 1e-9) * tick);
    const step = o.points.length > 1 ? (right - left) / (o.points.length - 1) : 0;
    const xs = o.points.map((_, i) => (o.points.length > 1 ? left + i * step : (left + right) / 2));
    const y = (v) => bottom - (bottom - top) * (v / max);
    const ticks = [];
    for (let v = 0; v <= max + 1e-9; v += tick) ticks.push({ at: v / max, value: v });
    yAxis(node, left, right, top, bottom, ticks, o.format);
    // The line breaks where a month has no value; each run gets its area.
    let run = [];
    const runs = [];
    o.points.forEach((p, i) => {
      if (p.value == null) { if (run.length) runs.push(run); run = []; } else run.push([xs[i], y(p.value)]);
    });
    if (run.length) runs.push(run);
    for (const r of runs) {
      const path = r.map(([x, yy], i) => (i ? "L" : "M") + x.toFixed(1) + " " + yy.toFixed(1)).join(" ");
      if (r.length > 1) svg("path", { d: `${path} L${r[r.length - 1][0].toFixed(1)} ${bottom} L${r[0][0].toFixed(1)} ${bottom} Z`, class: "area" }, node);
      svg("path", { d: path, class: "line" }, node);
    }
    o.points.forEach((p, i) => {
      if (p.value == null) return;
      const dot = svg("circle", { cx: xs[i], cy: y(p.value), r: 3.5, class: "dot" }, node);
      svg("title", {}, dot).textContent = p.label + ": " + o.format(p.value);
    });
    xLabels(node, xs, o.points.map((p) => p.label), height - 8, right - left);
    return figure(node, o);
  }

  // o: {width, title, desc, bars: [{label, value|null, muted, tip}], min, max, format, legend, columns, rows, tableLabel}
  function columns(o) {
    const width = o.width, height = 220, left = 48, right = width - 12, top = 12, bottom = height - 28;
    const node = root(width, height, o);
    const span = o.max - o.min;
    const y = (v) => bottom - (bottom - top) * ((v - o.min) / span);
    const ticks = [];
    for (let v = o.min; v <= o.max + 1e-9; v += span / 4) ticks.push({ at: (v - o.min) / span, value: v, zero: Math.abs(v) < 1e-9 });
    yAxis(node, left, right, top, bottom, ticks, o.format);
    const slot = (right - left) / Math.max(1, o.bars.length);
    const barWidth = Math.max(4, Math.min(40, slot * 0.6));
    const xs = o.bars.map((_, i) => left + slot * (i + 0.5));
    const base = y(Math.max(o.min, Math.min(0, o.max)));
    o.bars.forEach((b, i) => {
      if (b.value == null) return;
      const top_ = Math.min(base, y(b.value)), h = Math.max(1, Math.abs(y(b.value) - base));
      const bar = svg("rect", { x: xs[i] - barWidth / 2, y: top_, width: barWidth, height: h,
                                class: "bar" + (b.muted ? " muted" : "") + (b.value < 0 ? " negative" : "") }, node);
      svg("title", {}, bar).textContent = b.tip;
      if (b.muted) text(node, xs[i], top_ - 4, "*", { "text-anchor": "middle", class: "mark" });
    });
    xLabels(node, xs, o.bars.map((b) => b.label), height - 8, right - left);
    return figure(node, o);
  }

  // o: {width, title, desc, bars: [{label, value, tip}], format, columns, rows, tableLabel}
  function hbars(o) {
    const row = 26, top = 6, labelRoom = Math.min(200, Math.round(o.width * 0.38));
    const height = top * 2 + row * o.bars.length;
    const node = root(o.width, height, o);
    const max = Math.max(...o.bars.map((b) => b.value), 1);
    const room = o.width - labelRoom - 70;
    o.bars.forEach((b, i) => {
      const y = top + i * row;
      text(node, labelRoom - 8, y + row / 2 + 4, b.label, { "text-anchor": "end", class: "bar-label" });
      const bar = svg("rect", { x: labelRoom, y: y + 4, width: Math.max(1, room * (b.value / max)), height: row - 8, class: "bar" }, node);
      svg("title", {}, bar).textContent = b.tip;
      text(node, labelRoom + Math.max(1, room * (b.value / max)) + 6, y + row / 2 + 4, o.format(b.value), { class: "value-label" });
    });
    return figure(node, o);
  }

  // Two bars a group (a solid "a", a hatched "b" with its interval [lo, hi] as an error bar); a group without a "b"
  // says why in its place. o: {width, title, desc, groups: [{label, a, b|null, lo, hi, missing, tipA, tipB}],
  // format, legend, columns, rows, tableLabel}
  function paired(o) {
    const row = 54, top = 8, labelRoom = Math.min(200, Math.round(o.width * 0.32)), right = o.width - 16;
    const height = top * 2 + row * o.groups.length + 18;
    const node = root(o.width, height, o);
    const values = o.groups.flatMap((g) => [g.a, g.b, g.hi, g.lo]).filter((v) => v != null);
    const low = Math.min(0, ...values), high = niceCeil(Math.max(...values, 0)) || 1;
    const x = (v) => labelRoom + (right - labelRoom) * ((v - low) / (high - low));
    const zero = x(0);
    svg("line", { x1: zero, x2: zero, y1: top, y2: height - 18, class: "zero-line" }, node);
    text(node, zero, height - 4, o.format(0), { "text-anchor": "middle", class: "axis-label" });
    text(node, right, height - 4, o.format(high), { "text-anchor": "end", class: "axis-label" });
    o.groups.forEach((g, i) => {
      const y = top + i * row;
      text(node, labelRoom - 8, y + row / 2, g.label, { "text-anchor": "end", class: "bar-label" });
      const a = svg("rect", { x: Math.min(zero, x(g.a)), y: y + 6, width: Math.max(1, Math.abs(x(g.a) - zero)), height: 16, class: "bar" }, node);
      svg("title", {}, a).textContent = g.tipA;
      if (g.b == null) {
        text(node, zero + 6, y + 40, g.missing, { class: "missing" });
        return;
      }
      const b = svg("rect", { x: Math.min(zero, x(g.b)), y: y + 28, width: Math.max(1, Math.abs(x(g.b) - zero)), height: 16, class: "bar incremental" }, node);
      svg("title", {}, b).textContent = g.tipB;
      if (g.lo != null && g.hi != null) {
        const mid = y + 36;
        const err = svg("g", { class: "error-bar" }, node);
        svg("line", { x1: x(g.lo), x2: x(g.hi), y1: mid, y2: mid }, err);
        svg("line", { x1: x(g.lo), x2: x(g.lo), y1: mid - 6, y2: mid + 6 }, err);
        svg("line", { x1: x(g.hi), x2: x(g.hi), y1: mid - 6, y2: mid + 6 }, err);
        svg("title", {}, err).textContent = g.tipB;
      }
    });
    return figure(node, o);
  }

  window.EncoreCharts = { line, columns, hbars, paired, table };
})();

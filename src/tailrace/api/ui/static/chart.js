/* A time series drawn by hand as inline SVG: a line over a shaded area, a y axis with round
   ticks and a time axis. Small enough that a charting library would cost more than it saves. */
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.append(node);
    return node;
  }

  /** 1, 2 or 5 times a power of ten: the step that gives about `count` ticks up to `max`. */
  function niceStep(max, count) {
    const raw = max / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
  }

  function short(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(n % 1e6 ? 1 : 0) + "M";
    if (n >= 1e3) return (n / 1e3).toFixed(n % 1e3 ? 1 : 0) + "k";
    return String(Math.round(n));
  }

  function clock(ms) {
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((n) => String(n).padStart(2, "0"))
      .join(":");
  }

  /** Draw `points` ([{t: ms, v: number}], oldest first) into the <svg> element `root`. */
  function draw(root, points, options) {
    const opts = Object.assign({ color: "#2563eb", unit: "/s", empty: "Waiting for samples…" }, options);
    const width = Math.max(root.clientWidth, 200);
    const height = Math.max(root.clientHeight, 120);
    root.setAttribute("viewBox", "0 0 " + width + " " + height);
    root.replaceChildren();
    const pad = { left: 48, right: 12, top: 10, bottom: 24 };
    const w = width - pad.left - pad.right;
    const h = height - pad.top - pad.bottom;
    const font = { "font-size": 11, fill: "#64748b", "font-family": "system-ui, sans-serif" };

    if (points.length < 2) {
      const text = svg("text", Object.assign({ x: width / 2, y: height / 2, "text-anchor": "middle" }, font), root);
      text.textContent = opts.empty;
      return;
    }

    const t0 = points[0].t;
    const t1 = points[points.length - 1].t;
    const span = Math.max(t1 - t0, 1);
    const peak = Math.max(...points.map((p) => p.v), 1);
    const step = niceStep(peak, 4);
    const top = Math.ceil(peak / step) * step;
    const x = (t) => pad.left + ((t - t0) / span) * w;
    const y = (v) => pad.top + h - (v / top) * h;

    const defs = svg("defs", {}, root);
    const gradientId = "fade-" + Math.random().toString(36).slice(2, 8);
    const gradient = svg("linearGradient", { id: gradientId, x1: 0, y1: 0, x2: 0, y2: 1 }, defs);
    svg("stop", { offset: "0%", "stop-color": opts.color, "stop-opacity": 0.28 }, gradient);
    svg("stop", { offset: "100%", "stop-color": opts.color, "stop-opacity": 0.02 }, gradient);

    for (let v = 0; v <= top + step / 2; v += step) {
      svg("line", { x1: pad.left, x2: pad.left + w, y1: y(v), y2: y(v), stroke: "#e5e9f0" }, root);
      const label = svg("text", Object.assign({ x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, font), root);
      label.textContent = short(v);
    }
    const ticks = Math.min(6, Math.max(2, Math.floor(w / 110)));
    let previous = "";
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (span * i) / ticks;
      const text = clock(t);
      if (text === previous) continue; // a short run: several ticks fall in one second
      previous = text;
      const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
      const label = svg("text", Object.assign({ x: x(t), y: height - 6, "text-anchor": anchor }, font), root);
      label.textContent = text;
    }

    const line = points.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1)).join(" ");
    const area = line + " L" + x(t1).toFixed(1) + " " + y(0) + " L" + x(t0).toFixed(1) + " " + y(0) + " Z";
    svg("path", { d: area, fill: "url(#" + gradientId + ")", stroke: "none" }, root);
    svg("path", { d: line, fill: "none", stroke: opts.color, "stroke-width": 2, "stroke-linejoin": "round" }, root);
    const last = points[points.length - 1];
    svg("circle", { cx: x(last.t), cy: y(last.v), r: 3.5, fill: opts.color }, root);
  }

  window.TR = Object.assign(window.TR || {}, { drawChart: draw });
})();

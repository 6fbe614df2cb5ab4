/* The log viewer: the workers' JSON log lines, grouped per worker or merged by time.

   The first request takes the last 200 lines of each worker; after that, every 2 s, the
   lines of the seconds since the previous request (plus 2 s of overlap, so nothing falls in
   a gap). The overlap returns lines already shown: a Set of line keys drops them.

   Per worker, each worker has its own pane that follows its own tail (one long column
   scrolled to the bottom showed only the last worker's). Search and the level filter hide
   lines without dropping them; Download saves the lines shown, in the order shown. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const INITIAL_TAIL = 200;
  const REFRESH_MS = 2000;
  const OVERLAP_S = 2;
  const MAX_LINES = 10000; // oldest lines go first past this, to keep the page light
  const NEAR_BOTTOM_PX = 40;

  const id = TR.jobIdFromPath();
  const state = {
    chronological: false,
    paused: false,
    lastFetch: null, // Date.now() when the last successful request was sent
    entries: [], // every line kept, oldest first by arrival
    seen: new Set(), // keys of the lines in `entries`
    workers: new Map(), // worker_index -> {pod_name, error}
    lastOrder: null, // the latest line by time, to tell when new lines can just be appended
    search: "", // lower case; "" shows every line
    minLevel: "debug",
  };
  const RANK = { debug: 0, info: 1, warning: 2, error: 3 };

  TR.nav("jobs");
  document.title = "Logs " + id + " · tailrace";
  const jobLink = $("#job-link");
  jobLink.textContent = id;
  jobLink.href = "/ui/jobs/" + encodeURIComponent(id);
  const box = $("#logbox");

  // -- parsing --------------------------------------------------------------------------------

  /** A string that sorts RFC 3339 timestamps in time order, whatever their precision
   *  (Kubernetes drops trailing zeros from the fraction). */
  function sortKey(ts) {
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(ts || "");
    if (!m) return ts || "";
    if (m[3] && m[3] !== "Z") {
      const ms = Date.parse(ts);
      if (!isNaN(ms)) return new Date(ms).toISOString().slice(0, 19) + "." + (m[2] || "").padEnd(9, "0");
    }
    return m[1] + "." + (m[2] || "").padEnd(9, "0");
  }

  const LEVELS = {
    critical: "error", fatal: "error", error: "error", err: "error",
    warning: "warning", warn: "warning", info: "info", debug: "debug", trace: "debug",
  };

  function levelOf(value, raw) {
    if (typeof value === "string" && LEVELS[value.toLowerCase()]) return LEVELS[value.toLowerCase()];
    const match = /\b(CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG)\b/i.exec(raw || "");
    return match ? LEVELS[match[1].toLowerCase()] : "info";
  }

  /** One line as the viewer keeps it. `key` is the same in both API formats, so a line
   *  seen in one view is not shown twice after switching to the other. */
  function entry(worker, ts, raw, level) {
    let json = null;
    if (raw.startsWith("{")) {
      try {
        const parsed = JSON.parse(raw);
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) json = parsed;
      } catch (exc) {
        json = null;
      }
    }
    return {
      key: worker + "|" + ts + " " + raw,
      worker,
      ts,
      order: sortKey(ts),
      raw,
      json,
      level: levelOf(json ? json.level : level, json ? "" : raw),
    };
  }

  /** "<RFC3339 timestamp> <line>", as the per-worker format gives it. */
  function splitStamped(line) {
    const space = line.indexOf(" ");
    if (space > 0 && /^\d{4}-\d\d-\d\dT/.test(line)) return [line.slice(0, space), line.slice(space + 1)];
    return ["", line];
  }

  function entriesOf(data) {
    const out = [];
    if (data.sorted) {
      for (const l of data.lines || []) {
        if (!state.workers.has(l.worker_index)) state.workers.set(l.worker_index, { pod_name: l.pod_name });
        out.push(entry(l.worker_index, l.timestamp || "", l.message || "", l.level));
      }
    } else {
      for (const w of data.logs || []) {
        state.workers.set(w.worker_index, { pod_name: w.pod_name, error: w.error });
        for (const line of w.lines || []) {
          const [ts, raw] = splitStamped(line);
          out.push(entry(w.worker_index, ts, raw));
        }
      }
    }
    return out;
  }

  // -- rendering ------------------------------------------------------------------------------

  function shown(e) {
    if (RANK[e.level] < RANK[state.minLevel]) return false;
    return !state.search || visibleText(e).includes(state.search);
  }

  // What the line shows, lower case: searching the raw JSON matched fields the line hides
  // (`service`), so "worker" kept lines with no "worker" in sight.
  function visibleText(e) {
    if (e.text === undefined || e.textChronological !== state.chronological) {
      e.text = lineNode(e).textContent.toLowerCase();
      e.textChronological = state.chronological;
    }
    return e.text;
  }

  function clockOf(ts) {
    const m = /T(\d\d:\d\d:\d\d)(\.\d{1,3})?/.exec(ts || "");
    return m ? m[1] + (m[2] || ".000").padEnd(4, "0") : "";
  }

  function fieldText(value) {
    if (typeof value === "string") return /[\s"=]/.test(value) || value === "" ? JSON.stringify(value) : value;
    return JSON.stringify(value);
  }

  function lineNode(e) {
    const j = e.json;
    const parts = [];
    parts.push(el("span", { class: "ts", title: e.ts }, clockOf((j && (j.timestamp || j.ts)) || e.ts) + " "));
    if (state.chronological) parts.push(el("span", { class: "wb" }, "[W" + e.worker + "]"));
    parts.push(el("span", { class: "lvl" }, e.level), " ");
    if (j) {
      // `message`/`timestamp` since the log fields of the Kafka workers; `msg`/`ts` before
      const msg = j.message !== undefined ? j.message : j.msg;
      parts.push(el("span", { class: "msg" }, msg !== undefined ? String(msg) : ""));
      const fields = [];
      for (const [k, v] of Object.entries(j)) {
        if (["ts", "timestamp", "level", "msg", "message", "exc", "service"].includes(k)) continue;
        fields.push(" ", el("span", { class: "k" }, k), "=", fieldText(v));
      }
      if (fields.length) parts.push(el("span", { class: "fields" }, fields));
      if (j.exc) parts.push(el("span", { class: "exc" }, String(j.exc)));
    } else {
      parts.push(el("span", { class: "msg" }, e.raw));
    }
    return el("div", { class: "logline " + e.level, dataset: { worker: String(e.worker) } }, parts);
  }

  function nearBottom() {
    return box.scrollHeight - box.scrollTop - box.clientHeight <= NEAR_BOTTOM_PX;
  }

  function workerHead(index) {
    const w = state.workers.get(index) || {};
    return el(
      "div",
      { class: "worker-head", dataset: { worker: String(index) } },
      "Worker " + index + (w.pod_name ? " · " + w.pod_name : ""),
      w.error ? el("span", { class: "err" }, w.error) : null,
    );
  }

  function sectionOf(index) {
    let section = box.querySelector('section[data-worker="' + index + '"]');
    if (!section) {
      section = el(
        "section",
        { dataset: { worker: String(index) } },
        workerHead(index),
        el("div", { class: "worker-lines", tabindex: "0" }),
      );
      const after = [...box.querySelectorAll("section[data-worker]")].find(
        (s) => Number(s.dataset.worker) > index,
      );
      box.insertBefore(section, after || null);
    }
    return section;
  }

  function byTime(a, b) {
    return a.order < b.order ? -1 : a.order > b.order ? 1 : a.worker - b.worker;
  }

  function linesOf(index) {
    return sectionOf(index).querySelector(".worker-lines");
  }

  function atBottom(node) {
    return node.scrollHeight - node.scrollTop - node.clientHeight <= NEAR_BOTTOM_PX;
  }

  /** Each worker's pane to its end (after a redraw), or those that were there already. */
  function followTails(panes) {
    for (const pane of panes || box.querySelectorAll(".worker-lines")) pane.scrollTop = pane.scrollHeight;
  }

  /** Redraw everything (on the first load, and when the view or the filters change). */
  function renderAll() {
    box.replaceChildren();
    box.classList.toggle("per-worker", !state.chronological);
    const lines = state.entries.filter(shown);
    if (state.chronological) {
      box.append(...lines.sort(byTime).map(lineNode));
    } else {
      for (const index of [...state.workers.keys()].sort((a, b) => a - b)) sectionOf(index);
      for (const e of lines) linesOf(e.worker).append(lineNode(e));
      followTails();
    }
    if (!state.entries.length && !state.workers.size) {
      box.append(el("div", { class: "none" }, "No log lines yet."));
    } else if (!lines.length && state.chronological) {
      box.append(el("div", { class: "none" }, "No line matches."));
    }
    showCount();
  }

  /** Add the new lines without redrawing the rest, unless one belongs before a line already
   *  shown (a worker's lines arrived late): then redraw in order. */
  function renderNew(all) {
    const fresh = all.filter(shown);
    if (state.chronological) {
      if (!fresh.length) return;
      const none = box.querySelector(".none");
      if (none) none.remove();
      fresh.sort(byTime);
      const last = state.lastOrder || null;
      if (last !== null && fresh.length && byTime(fresh[0], last) < 0) {
        renderAll();
      } else {
        box.append(...fresh.map(lineNode));
      }
    } else {
      const none = box.querySelector(".none");
      if (none && state.workers.size) none.remove();
      for (const [index, w] of state.workers) {
        const head = sectionOf(index).querySelector(".worker-head");
        if (head && w.error !== undefined) head.replaceWith(workerHead(index));
      }
      const following = new Set();
      for (const e of fresh) {
        const pane = linesOf(e.worker);
        if (!following.has(pane) && atBottom(pane)) following.add(pane);
        pane.append(lineNode(e));
      }
      followTails(following);
    }
  }

  function trim() {
    const extra = state.entries.length - MAX_LINES;
    if (extra <= 0) return false;
    for (const e of state.entries.splice(0, extra)) state.seen.delete(e.key);
    return true;
  }

  function showCount() {
    $("#line-count").textContent =
      TR.fmtNum(state.entries.length) + " lines · " + state.workers.size + " workers";
    const filtered = state.search || state.minLevel !== "debug";
    $("#shown-count").textContent = filtered
      ? TR.fmtNum(state.entries.filter(shown).length) + " shown"
      : "";
  }

  // -- fetching -------------------------------------------------------------------------------

  async function refresh() {
    const query = new URLSearchParams({ sort: String(state.chronological) });
    if (state.lastFetch === null) {
      query.set("tail", String(INITIAL_TAIL));
    } else {
      query.set("since", String(Math.ceil((Date.now() - state.lastFetch) / 1000) + OVERLAP_S));
    }
    const sentAt = Date.now();
    const data = await TR.get(TR.jobApi(id, "/logs?" + query), { quiet: true });
    const first = state.lastFetch === null;
    state.lastFetch = sentAt;
    const fresh = entriesOf(data).filter((e) => {
      if (state.seen.has(e.key)) return false;
      state.seen.add(e.key);
      return true;
    });
    const stick = nearBottom();
    state.entries.push(...fresh);
    if (trim() || first) renderAll();
    else if (fresh.length) renderNew(fresh);
    else if (!data.sorted) renderNew([]); // worker errors may have changed
    if (state.entries.length) {
      state.lastOrder = state.entries.reduce((a, b) => (byTime(a, b) >= 0 ? a : b));
    }
    if (state.chronological && (stick || first)) box.scrollTop = box.scrollHeight;
    showCount();
  }

  const poller = TR.every(REFRESH_MS, refresh);

  $("#toggle-view").addEventListener("click", (e) => {
    state.chronological = !state.chronological;
    e.currentTarget.textContent = state.chronological ? "Switch to Per-Worker" : "Switch to Chronological";
    $("#view-name").textContent = state.chronological ? "chronological" : "per-worker";
    renderAll();
    box.scrollTop = state.chronological ? box.scrollHeight : 0;
    if (!state.paused) poller.now();
  });

  // -- search, level, download ------------------------------------------------------------------

  let typing = null;
  $("#log-search").addEventListener("input", (e) => {
    clearTimeout(typing);
    const value = e.target.value.trim().toLowerCase();
    typing = setTimeout(() => {
      state.search = value;
      renderAll();
    }, 150);
  });
  $("#log-tools").addEventListener("submit", (e) => e.preventDefault());
  $("#log-level").addEventListener("change", (e) => {
    state.minLevel = e.target.value;
    renderAll();
  });

  /** The lines shown, in the order shown, as text: "<timestamp> [W<n>] <line>". */
  function shownText() {
    const lines = state.entries.filter(shown);
    if (state.chronological) lines.sort(byTime);
    else lines.sort((a, b) => a.worker - b.worker || (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
    return lines.map((e) => (e.ts ? e.ts + " " : "") + "[W" + e.worker + "] " + e.raw + "\n").join("");
  }

  $("#download").addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([shownText()], { type: "text/plain" }));
    const link = el("a", { href: url, download: "tailrace-" + id + "-logs.txt" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });

  $("#pause").addEventListener("click", (e) => {
    state.paused = !state.paused;
    if (state.paused) poller.stop();
    else poller.start();
    e.currentTarget.textContent = state.paused ? "Resume" : "Pause";
    $("#live-dot").classList.toggle("paused", state.paused);
    $("#live-text").textContent = state.paused ? "paused" : "live";
  });
})();

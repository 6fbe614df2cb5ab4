/* The live worker processes: the engine's (as they last beat) and the running reprocessing
   jobs' workers. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const REFRESH_MS = 2000;

  TR.nav("workers");

  function engineRow(w) {
    return el(
      "tr",
      { dataset: { workerId: w.id, alive: String(w.alive) } },
      el("td", { class: "mono", title: w.id }, w.host),
      el("td", { class: "num mono" }, w.pid),
      el("td", { class: "mono", dataset: { field: "pool" } }, w.pool || el("span", { class: "muted" }, "–")),
      el("td", {}, w.queues ? w.queues.join(", ") : el("span", { class: "muted" }, "every queue")),
      el("td", { class: "small" }, w.priorities.join(", ")),
      el("td", { class: "num" }, w.concurrency),
      el("td", { class: "num", dataset: { field: "in-flight" } }, w.in_flight),
      el("td", { class: "num" }, TR.fmtNum(w.processed)),
      el("td", { class: "nowrap" }, TR.fmtTime(w.started_at)),
      el("td", { class: "nowrap", title: TR.fmtTime(w.heartbeat_at) }, TR.fmtDuration(w.heartbeat_age_s) + " ago"),
      el("td", {}, TR.badge(w.alive ? "active" : "stale", w.alive ? "active" : "failed")),
    );
  }

  function reprocessingRow(w) {
    return el(
      "tr",
      { dataset: { jobId: w.job_id, worker: String(w.worker_index) } },
      el("td", { class: "mono" }, el("a", { href: "/ui/jobs/" + encodeURIComponent(w.job_id) }, w.job_id)),
      el("td", { class: "num" }, "W" + w.worker_index),
      el("td", {}, TR.badge(w.status)),
      el("td", { class: "num" }, w.processed_files + " / " + w.assigned_files),
      el("td", { class: "num" }, TR.fmtNum(w.lines)),
      el("td", { class: "mono small" }, w.current_file || "–"),
      el("td", { class: "nowrap" }, TR.fmtAge(w.updated_at)),
    );
  }

  async function refresh() {
    const found = await TR.get("/api/admin/workers", { quiet: true });
    const engine = found.engine || [];
    const reprocessing = found.reprocessing || [];
    const body = $("#engine-workers tbody");
    if (!engine.length) fill(body, el("tr", {}, el("td", { class: "empty", colspan: "11" }, "No engine worker is running.")));
    else fill(body, engine.map(engineRow));
    $("#engine-count").textContent = "(" + engine.filter((w) => w.alive).length + " live)";
    const rbody = $("#reprocessing-workers tbody");
    if (!reprocessing.length) fill(rbody, el("tr", {}, el("td", { class: "empty", colspan: "7" }, "No reprocessing job is running.")));
    else fill(rbody, reprocessing.map(reprocessingRow));
    $("#reprocessing-count").textContent = "(" + reprocessing.length + ")";
    $("#updated").textContent = "Updated " + TR.fmtClock(Date.now());
  }

  TR.every(REFRESH_MS, refresh);
})();

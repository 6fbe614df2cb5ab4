/* One reprocessing job, live: progress, counters, workers, throughput, dead letters. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const REFRESH_MS = 1000;
  const MAX_SAMPLES = 600; // ten minutes at one sample a second
  const FINISHED = new Set(["completed", "failed", "cancelled"]);

  const id = TR.jobIdFromPath();
  const samples = []; // {t, lines, bytes}
  const workerNodes = new Map(); // worker_index -> {root, bar, refs}
  let lastJob = null;
  let deadlettersLoaded = false;

  TR.nav("jobs");
  document.title = "Job " + id + " · tailrace";
  $("#job-id").textContent = id;
  $("#crumb-id").textContent = id;
  $("#logs-link").href = "/ui/jobs/" + encodeURIComponent(id) + "/logs";
  $("#deadletters-raw").href = TR.jobApi(id, "/deadletters?limit=100");
  const overallBar = TR.progress(0, "pending", true);
  $("#job-progress").append(overallBar);

  // -- throughput -----------------------------------------------------------------------------

  function record(job, now) {
    const prev = samples[samples.length - 1];
    if (prev && prev.lines === job.total_lines && FINISHED.has(job.status)) return;
    samples.push({ t: now, lines: job.total_lines, bytes: job.processed_bytes });
    if (samples.length > MAX_SAMPLES) samples.shift();
  }

  /** Events/s between successive samples, as steps: each rate holds over its interval. */
  function rates() {
    const points = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = (samples[i].t - samples[i - 1].t) / 1000;
      if (dt <= 0) continue;
      const v = Math.max(0, (samples[i].lines - samples[i - 1].lines) / dt);
      points.push({ t: samples[i - 1].t, v }, { t: samples[i].t, v });
    }
    return points;
  }

  /** For a job that finished before this page sampled it: its average rate over the run. */
  function averageLine(job) {
    const start = TR.parseTime(job.started_at);
    const end = TR.parseTime(job.completed_at);
    if (start === null || end === null || end <= start) return [];
    const v = job.total_lines / ((end - start) / 1000);
    return [{ t: start, v }, { t: end, v }];
  }

  /** Bytes per second over the last ~10 s, for the time-remaining estimate. */
  function byteRate() {
    if (samples.length < 2) return null;
    const last = samples[samples.length - 1];
    const first = samples[Math.max(0, samples.length - 11)];
    const dt = (last.t - first.t) / 1000;
    return dt > 0 ? (last.bytes - first.bytes) / dt : null;
  }

  function drawThroughput(job) {
    let points = rates();
    let note = "";
    if (!points.length && FINISHED.has(job.status)) {
      points = averageLine(job);
      note = points.length ? "average over the run " : "";
    }
    TR.drawChart($("#chart"), points, { empty: "Waiting for samples…" });
    const now = points.length ? points[points.length - 1].v : null;
    const peak = points.length ? Math.max(...points.map((p) => p.v)) : null;
    $("#rate-now").textContent = job.status === "running" ? "now " + TR.fmtRate(now) + " events" : note;
    $("#rate-peak").textContent = peak !== null && !note ? "peak " + TR.fmtRate(peak) : "";
  }

  // -- the job --------------------------------------------------------------------------------

  function stat(label, value, colour, key) {
    return el(
      "div",
      { class: "stat " + (colour || ""), dataset: { counter: key } },
      el("div", { class: "label" }, label),
      el("div", { class: "value" }, value),
    );
  }

  function fact(dl, label, value) {
    if (value === null || value === undefined || value === "" ||
        (Array.isArray(value) && !value.length)) return;
    dl.append(el("dt", {}, label), el("dd", {}, Array.isArray(value) ? value.join(", ") : value));
  }

  function renderJob(job) {
    // a running job whose workers are gone (killed with the process that ran them) says so,
    // and can be resumed like a failed one
    fill(
      $("#job-status"),
      TR.badge(job.status),
      job.abandoned ? el("span", { class: "badge failed gone", title: job.abandoned }, "workers gone") : null,
    );
    $("#cancel").disabled = !(job.status === "pending" || job.status === "running");
    $("#resume").disabled = !(job.status === "failed" || job.status === "cancelled" || job.abandoned);

    TR.setProgress(overallBar, job.progress, job.status, true);
    const byStatus = Object.entries(job.files_by_status || {})
      .filter(([, n]) => n)
      .map(([s, n]) => n + " " + s)
      .join(", ");
    $("#progress-text").textContent =
      TR.fmtBytes(job.processed_bytes) + " of " + TR.fmtBytes(job.total_bytes) + " · " +
      TR.fmtNum(job.processed_files) + " of " + TR.fmtNum(job.total_files) + " files" +
      (byStatus ? " (" + byStatus + ")" : "");
    const rate = byteRate();
    $("#eta").textContent =
      job.status === "running" && rate > 0
        ? "about " + TR.fmtDuration((job.total_bytes - job.processed_bytes) / rate) + " left"
        : "";
    const error = $("#job-error");
    const problem = job.abandoned
      ? "This job still says running, but " + job.abandoned + ". Resume it to continue."
      : job.error;
    error.textContent = problem || "";
    error.classList.toggle("hidden", !problem);
    loadFailedFiles(job).catch(() => {});

    fill(
      $("#counters"),
      stat("Lines", TR.fmtNum(job.total_lines), "blue", "lines"),
      stat("Sent", TR.fmtNum(job.success_count), "green", "sent"),
      stat("Filtered", TR.fmtNum(job.filtered_count), "purple", "filtered"),
      stat("Skipped", TR.fmtNum(job.skipped_count), "amber", "skipped"),
      stat("Dead-lettered", TR.fmtNum(job.error_count), "red", "deadlettered"),
    );

    const c = job.config || {};
    const config = $("#config");
    config.replaceChildren();
    fact(config, "Source", c.source);
    fact(config, "Sink", c.sink);
    fact(config, "Stream ids", c.stream_ids);
    fact(config, "Connection ids", c.connection_ids);
    fact(config, "Date from", c.date_from);
    fact(config, "Date to", c.date_to);
    fact(config, "Where", c.where);
    fact(config, "Max workers", c.max_workers);
    fact(config, "Batch size", c.batch_size);

    const facts = $("#facts");
    facts.replaceChildren();
    fact(facts, "Created", TR.fmtTime(job.created_at));
    fact(facts, "Started", job.started_at ? TR.fmtTime(job.started_at) : "not yet");
    if (job.completed_at) fact(facts, "Finished", TR.fmtTime(job.completed_at));
    const start = TR.parseTime(job.started_at);
    if (start !== null) {
      const end = TR.parseTime(job.completed_at) || Date.now();
      fact(facts, "Duration", TR.fmtDuration((end - start) / 1000));
    }
    fact(facts, "Workers", TR.fmtNum(job.total_workers) + (job.balanced ? " (balanced by size)" : ""));
    fact(facts, "Executor job", job.k8s_job_name);
    const reasons = Object.entries(job.skip_reasons || {}).map(([r, n]) => r + ": " + TR.fmtNum(n));
    fact(facts, "Skip reasons", reasons);
  }

  // -- failed files ---------------------------------------------------------------------------

  let failedShown = -1; // how many failed files the table shows: reloaded when that changes

  async function loadFailedFiles(job) {
    const failed = (job.files_by_status || {}).failed || 0;
    if (failed === failedShown) return;
    failedShown = failed;
    $("#failed-files-card").classList.toggle("hidden", !failed);
    if (!failed) return;
    const data = await TR.get(TR.jobApi(id, "/files?status=failed&limit=100"), { quiet: true });
    $("#failed-files-note").textContent =
      data.total > data.files.length ? data.files.length + " of " + data.total + " shown" : "";
    fill($("#failed-files tbody"), data.files.map((f) => el(
      "tr",
      { dataset: { fileIndex: String(f.index) } },
      el("td", { class: "mono small", title: f.url }, basename(f.url)),
      el("td", { class: "num" }, TR.fmtNum(f.total_lines)),
      el("td", { class: "num" }, TR.fmtNum(f.success_count)),
      el("td", { class: "reason" }, f.error || "failed"),
    )));
  }

  // -- workers --------------------------------------------------------------------------------

  function workerFraction(w) {
    if (w.total_bytes > 0) return w.processed_bytes / w.total_bytes;
    if (w.assigned_files > 0) return w.processed_files / w.assigned_files;
    return w.status === "completed" ? 1 : 0;
  }

  function workerNode(index) {
    let node = workerNodes.get(index);
    if (node) return node;
    const bar = TR.progress(0, "pending");
    const refs = {
      badge: el("span"),
      meta: el("div", { class: "meta" }),
      current: el("div", { class: "current" }),
      error: el("div", { class: "alert hidden" }),
    };
    const root = el(
      "div",
      { class: "worker", dataset: { workerIndex: String(index) } },
      el("div", { class: "head" }, el("span", { class: "name" }, "Worker " + index), refs.badge),
      bar,
      refs.meta,
      refs.current,
      refs.error,
    );
    node = { root, bar, refs };
    workerNodes.set(index, node);
    return node;
  }

  function metaItem(label, value) {
    return el("span", {}, label + " ", el("b", {}, value));
  }

  function renderWorkers(workers) {
    const box = $("#workers");
    if (!workers.length) {
      fill(box, el("div", { class: "muted" }, "No workers have reported yet."));
      workerNodes.clear();
      return;
    }
    const nodes = workers
      .slice()
      .sort((a, b) => a.worker_index - b.worker_index)
      .map((w) => {
        const node = workerNode(w.worker_index);
        node.root.dataset.status = w.status;
        fill(node.refs.badge, TR.badge(w.status));
        TR.setProgress(node.bar, workerFraction(w), w.status);
        fill(
          node.refs.meta,
          metaItem("files", TR.fmtNum(w.processed_files) + " / " + TR.fmtNum(w.assigned_files)),
          metaItem("lines", TR.fmtNum(w.total_lines)),
          metaItem("bytes", TR.fmtBytes(w.processed_bytes) + " / " + TR.fmtBytes(w.total_bytes)),
          metaItem("sent", TR.fmtNum(w.success_count)),
          metaItem("filtered", TR.fmtNum(w.filtered_count)),
          metaItem("skipped", TR.fmtNum(w.skipped_count)),
          metaItem("dead-lettered", TR.fmtNum(w.error_count)),
          w.restarts ? metaItem("restarts", TR.fmtNum(w.restarts)) : null,
          metaItem("updated", TR.fmtAge(w.updated_at)),
        );
        node.refs.current.textContent =
          w.status === "running" && w.current_file
            ? "reading " + w.current_file + ":" + (w.current_line || 0) +
              (w.current_timestamp ? " @ " + w.current_timestamp : "")
            : "";
        node.refs.error.textContent = w.error || "";
        node.refs.error.classList.toggle("hidden", !w.error);
        return node.root;
      });
    fill(box, nodes);
    const done = workers.filter((w) => w.status === "completed").length;
    $("#worker-summary").textContent = done + " of " + workers.length + " completed";
  }

  // -- dead letters ---------------------------------------------------------------------------

  /** The rejected line (or, base64, its bytes) cut to fit a table cell. */
  function preview(record) {
    let text;
    if (record.data !== undefined && record.data !== null) {
      text = typeof record.data === "string" ? record.data : JSON.stringify(record.data);
      if (record.encoding && record.encoding !== "utf-8") text = "(" + record.encoding + ") " + text;
    } else {
      const known = new Set(["file", "line", "offset", "reason", "data", "encoding", "size", "truncated"]);
      const rest = Object.fromEntries(Object.entries(record).filter(([k]) => !known.has(k)));
      text = Object.keys(rest).length ? JSON.stringify(rest) : "";
    }
    return text.length > 300 ? text.slice(0, 299) + "…" : text;
  }

  function basename(path) {
    const parts = String(path || "").split("/");
    return parts[parts.length - 1] || String(path || "");
  }

  async function loadDeadletters() {
    const data = await TR.get(TR.jobApi(id, "/deadletters?limit=100"));
    deadlettersLoaded = true;
    $("#deadletters-location").textContent = data.location ? "Stored at " + data.location : "";
    const body = $("#deadletters tbody");
    if (data.records === null || data.records === undefined) {
      fill(body, el("tr", {}, el("td", { class: "empty", colspan: "5" },
        "This sink's dead letters cannot be read back here; see " + (data.location || "the sink") + ".")));
      return;
    }
    if (!data.records.length) {
      fill(body, el("tr", {}, el("td", { class: "empty", colspan: "5" }, "No dead letters.")));
      return;
    }
    fill(body, data.records.map((r) => el(
      "tr",
      {},
      el("td", { class: "mono small nowrap", title: r.file }, basename(r.file)),
      el("td", { class: "num" }, TR.fmtNum(r.line)),
      el("td", { class: "num" }, TR.fmtNum(r.offset)),
      el("td", { class: "reason" }, r.reason),
      el(
        "td",
        { class: "mono small data", title: r.size ? TR.fmtBytes(r.size) + (r.truncated ? ", truncated" : "") : null },
        preview(r),
      ),
    )));
  }

  $("#load-deadletters").addEventListener("click", () => loadDeadletters());

  // -- actions and polling --------------------------------------------------------------------

  async function act(verb, button) {
    button.disabled = true;
    try {
      const job = await TR.post(TR.jobApi(id, "/" + verb));
      TR.toast("Job " + (verb === "cancel" ? "cancelled" : "resumed"), "ok");
      renderJob(job);
      if (verb === "resume") deadlettersLoaded = false;
    } finally {
      poller.now();
    }
  }

  $("#cancel").addEventListener("click", (e) => {
    if (confirm("Cancel job " + id + "? Its workers stop after their current batch.")) {
      act("cancel", e.currentTarget);
    }
  });
  $("#resume").addEventListener("click", (e) => act("resume", e.currentTarget));

  async function refresh() {
    let job, workers;
    try {
      [job, workers] = await Promise.all([
        TR.get(TR.jobApi(id), { quiet: true }),
        TR.get(TR.jobApi(id, "/workers"), { quiet: true }),
      ]);
    } catch (exc) {
      if (exc.status === 404) {
        poller.stop();
        fill($("#workers"), el("div", { class: "alert" }, exc.message || "No such job"));
      }
      throw exc;
    }
    const now = Date.now();
    record(job, now);
    renderJob(job);
    renderWorkers(workers.workers || []);
    drawThroughput(job);
    $("#updated").textContent = "Updated " + TR.fmtClock(now);
    if (FINISHED.has(job.status) && !deadlettersLoaded && (!lastJob || lastJob.status !== job.status)) {
      loadDeadletters().catch(() => {});
    }
    lastJob = job;
  }

  const poller = TR.every(REFRESH_MS, refresh);
  window.addEventListener("resize", () => lastJob && drawThroughput(lastJob));
})();

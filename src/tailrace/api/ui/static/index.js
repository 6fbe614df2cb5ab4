/* The jobs page: a paged, filterable list refreshed every 2 s, and the form that starts a job. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const PAGE_SIZE = 20;
  const REFRESH_MS = 2000;
  const state = { offset: 0, total: 0, status: "" };
  // job id -> {lines, bytes, at, lineRate, byteRate}: the previous poll and smoothed rates
  const seen = new Map();
  // weight of the newest interval in the smoothed rate: steady without lagging a minute
  const SMOOTHING = 0.3;

  TR.nav("jobs");

  // -- the list -------------------------------------------------------------------------------

  /** How long the job ran (to now while it runs), in seconds; null before it started. */
  function duration(job, now) {
    const start = TR.parseTime(job.started_at);
    if (start === null) return null;
    const end = TR.parseTime(job.completed_at);
    return Math.max(0, ((end === null ? now : end) - start) / 1000);
  }

  /** Events/s and bytes/s: a running job's measured between polls and smoothed (the first
   *  poll falls back to the average since it started); a finished job's average over its run. */
  function rates(job, now) {
    const before = seen.get(job.id);
    const ran = duration(job, now);
    const average = {
      lines: ran ? job.total_lines / ran : null,
      bytes: ran ? job.processed_bytes / ran : null,
    };
    if (job.status !== "running") {
      seen.delete(job.id);
      return { lines: average.lines, bytes: average.bytes, average: true };
    }
    let lineRate = average.lines;
    let byteRate = average.bytes;
    if (before && now > before.at) {
      const seconds = (now - before.at) / 1000;
      // counters never go back; a smaller figure is a worker restarting from a checkpoint
      const lines = Math.max(0, job.total_lines - before.lines) / seconds;
      const bytes = Math.max(0, job.processed_bytes - before.bytes) / seconds;
      lineRate = before.lineRate === null ? lines : before.lineRate + SMOOTHING * (lines - before.lineRate);
      byteRate = before.byteRate === null ? bytes : before.byteRate + SMOOTHING * (bytes - before.byteRate);
    }
    seen.set(job.id, { lines: job.total_lines, bytes: job.processed_bytes, at: now, lineRate, byteRate });
    return { lines: lineRate, bytes: byteRate, average: false };
  }

  /** Seconds left at the current byte rate: only for a running job that is moving. */
  function eta(job, r) {
    if (job.status !== "running" || !r.bytes || !job.total_bytes) return null;
    return Math.max(0, job.total_bytes - job.processed_bytes) / r.bytes;
  }

  function row(job, now) {
    const href = "/ui/jobs/" + encodeURIComponent(job.id);
    const r = rates(job, now);
    const left = eta(job, r);
    const source = (job.config && job.config.source) || "";
    const num = (field, value, extra) =>
      el("td", Object.assign({ class: "num", dataset: { field } }, extra || {}), value);
    return el(
      "tr",
      { dataset: { jobId: job.id, status: job.status } },
      el(
        "td",
        {},
        el("a", { href, class: "mono" }, job.id),
        el("div", { class: "muted small", title: source }, shorten(source, 48)),
      ),
      el(
        "td",
        {},
        TR.badge(job.status),
        job.abandoned ? el("span", { class: "badge failed gone", title: job.abandoned }, "workers gone") : null,
        job.status === "failed" && job.error
          ? el("div", { class: "small reason", title: job.error }, clip(job.error, 90))
          : null,
      ),
      el("td", {}, TR.progress(job.progress, job.status)),
      num("files", TR.fmtNum(job.processed_files) + " / " + TR.fmtNum(job.total_files)),
      num("sent", TR.fmtNum(job.success_count)),
      num("filtered", TR.fmtNum(job.filtered_count)),
      num("dead", TR.fmtNum(job.error_count), { title: "dead-lettered lines" }),
      num("rate", TR.fmtRate(r.lines), {
        class: "num rate" + (r.average ? " muted" : ""),
        title: r.average ? "average over the run" : "now (smoothed over the last polls)",
      }),
      num("duration", TR.fmtDuration(duration(job, now))),
      num("eta", left === null ? "–" : TR.fmtDuration(left), {
        title: left === null ? "" : "at the current rate",
      }),
      num("workers", TR.fmtNum(job.total_workers)),
      el("td", { class: "nowrap", title: TR.fmtTime(job.created_at) }, TR.fmtAge(job.created_at)),
      el(
        "td",
        { class: "nowrap right" },
        el("a", { class: "btn secondary small", href: href + "/logs" }, "Logs"),
      ),
    );
  }

  /** The start of a long text (where an error says what), cut to n characters. */
  function clip(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function shorten(text, n) {
    return text.length > n ? "…" + text.slice(text.length - n + 1) : text;
  }

  async function refresh() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(state.offset) });
    if (state.status) query.set("status", state.status);
    const data = await TR.get("/api/admin/reprocessing/jobs?" + query, { quiet: true });
    const now = Date.now();
    state.total = data.total;
    const body = $("#jobs tbody");
    if (!data.jobs.length) {
      const none = state.status ? "No " + state.status + " jobs." : "No jobs yet.";
      fill(body, el("tr", {}, el("td", { class: "empty", colspan: "13" }, none)));
    } else {
      fill(body, data.jobs.map((job) => row(job, now)));
    }
    const first = data.total ? data.offset + 1 : 0;
    const last = data.offset + data.jobs.length;
    $("#page-info").textContent = first + "–" + last + " of " + TR.fmtNum(data.total);
    $("#prev").disabled = data.offset <= 0;
    $("#next").disabled = last >= data.total;
    $("#updated").textContent = "Updated " + TR.fmtClock(now);
  }

  const poller = TR.every(REFRESH_MS, refresh);

  $("#status-filter").addEventListener("change", (e) => {
    state.status = e.target.value;
    state.offset = 0;
    poller.now();
  });
  $("#prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    poller.now();
  });
  $("#next").addEventListener("click", () => {
    state.offset += PAGE_SIZE;
    poller.now();
  });

  // -- the form -------------------------------------------------------------------------------

  function ids(text) {
    return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  }

  /** A datetime-local value read as UTC, as ISO 8601 with a Z. */
  function utc(value) {
    if (!value) return undefined;
    const withSeconds = value.length === 16 ? value + ":00" : value;
    return withSeconds + "Z";
  }

  function positive(value) {
    if (value === "") return undefined;
    const n = Number(value);
    return Number.isInteger(n) && n > 0 ? n : NaN;
  }

  function body(form) {
    const v = (name) => form.elements[name].value.trim();
    const request = {
      stream_ids: ids(v("stream_ids")),
      connection_ids: ids(v("connection_ids")),
      where: v("where").split("\n").map((s) => s.trim()).filter(Boolean),
    };
    if (v("path")) request.path = v("path");
    if (v("s3_path")) request.s3_path = v("s3_path");
    if (v("sink")) request.sink = v("sink");
    const from = utc(v("date_from"));
    const to = utc(v("date_to"));
    if (from) request.date_from = from;
    if (to) request.date_to = to;
    const workers = positive(v("max_workers"));
    const batch = positive(v("batch_size"));
    if (workers !== undefined) request.max_workers = workers;
    if (batch !== undefined) request.batch_size = batch;
    return request;
  }

  /** What is wrong with the form, field by field: [[field name, message], ...]. */
  function problems(request) {
    const found = [];
    if (!request.path === !request.s3_path) {
      found.push(["path", "Give a local path or an S3 path (one of them)."]);
    }
    if (Number.isNaN(request.max_workers)) found.push(["max_workers", "A whole number above 0."]);
    if (Number.isNaN(request.batch_size)) found.push(["batch_size", "A whole number above 0."]);
    if (request.date_from && request.date_to && request.date_from > request.date_to) {
      found.push(["date_to", "Before date from."]);
    }
    const bad = request.where.find((p) => !p.includes("="));
    if (bad) found.push(["where", "Not a field=value predicate: " + bad]);
    return found;
  }

  /** The field an error from the API is about: the first invalid one it names, else
   *  the one its message is about, else the source (what most refusals concern). */
  function fieldOf(exc, request) {
    const named = ((exc.detail && exc.detail.problems) || [])
      .map((p) => String(p.location || "").replace(/^body\./, "").split(".")[0])
      .find((name) => form.elements[name]);
    if (named) return named;
    const text = (exc.code + " " + exc.message).toLowerCase();
    for (const name of ["sink", "date_from", "date_to", "where", "max_workers", "batch_size"]) {
      if (text.includes(name) || (name === "sink" && text.includes("credentials"))) return name;
    }
    return request.s3_path ? "s3_path" : "path";
  }

  const form = $("#new-job");

  function clearErrors() {
    for (const node of form.querySelectorAll(".field-error")) node.remove();
    for (const input of form.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }

  /** The message under its field, which is marked invalid and takes the focus (the first). */
  function showErrors(found) {
    clearErrors();
    found.forEach(([name, message], i) => {
      const input = form.elements[name];
      const id = "error-" + name;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", id);
      input.closest(".field").append(el("div", { class: "field-error", id, role: "alert" }, message));
      if (i === 0) input.focus();
    });
  }

  form.addEventListener("input", (event) => {
    const input = event.target;
    if (!input.hasAttribute("aria-invalid")) return;
    input.removeAttribute("aria-invalid");
    const note = document.getElementById("error-" + input.name);
    if (note) note.remove();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const request = body(form);
    const found = problems(request);
    if (found.length) {
      showErrors(found);
      return;
    }
    clearErrors();
    const button = $("#start-job");
    button.disabled = true;
    $("#form-note").textContent = "Listing files and starting workers…";
    try {
      const job = await TR.post("/api/admin/reprocessing/jobs", request, { quiet: true });
      location.assign("/ui/jobs/" + encodeURIComponent(job.id));
    } catch (exc) {
      button.disabled = false;
      $("#form-note").textContent = "";
      if (exc instanceof TR.ApiError && exc.status >= 400 && exc.status < 500 && exc.status !== 401) {
        showErrors([[fieldOf(exc, request), exc.message]]);
      } else if (exc instanceof TR.ApiError && exc.status !== 401) {
        TR.toast(exc.message, "error", exc.code);
      }
    }
  });

  // ?new=1 (or an empty list) opens the form
  if (new URLSearchParams(location.search).get("new")) $("#new-job-card").open = true;
})();

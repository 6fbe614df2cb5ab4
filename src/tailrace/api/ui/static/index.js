/* The jobs page: a paged, filterable list refreshed every 2 s, and the form that starts a job. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const PAGE_SIZE = 20;
  const REFRESH_MS = 2000;
  const state = { offset: 0, total: 0, status: "" };
  // job id -> {lines, at}: the previous poll, to compute events/s in the browser
  const seen = new Map();

  TR.nav("jobs");

  // -- the list -------------------------------------------------------------------------------

  function rate(job, now) {
    const before = seen.get(job.id);
    seen.set(job.id, { lines: job.total_lines, at: now });
    if (job.status !== "running") {
      // a finished job: its average rate over its run
      const start = TR.parseTime(job.started_at);
      const end = TR.parseTime(job.completed_at);
      if (start !== null && end !== null && end > start) {
        return { value: job.total_lines / ((end - start) / 1000), average: true };
      }
      return { value: null, average: false };
    }
    if (!before || now <= before.at) return { value: null, average: false };
    return { value: (job.total_lines - before.lines) / ((now - before.at) / 1000), average: false };
  }

  function row(job, now) {
    const href = "/ui/jobs/" + encodeURIComponent(job.id);
    const r = rate(job, now);
    const source = (job.config && job.config.source) || "";
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
      el("td", { class: "num" }, TR.fmtNum(job.processed_files) + " / " + TR.fmtNum(job.total_files)),
      el("td", { class: "num" }, TR.fmtNum(job.total_lines)),
      el(
        "td",
        { class: "num rate" + (r.average ? " muted" : ""), title: r.average ? "average over the run" : "" },
        TR.fmtRate(r.value),
      ),
      el("td", { class: "num" }, TR.fmtNum(job.error_count)),
      el("td", { class: "num" }, TR.fmtNum(job.total_workers)),
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
      fill(body, el("tr", {}, el("td", { class: "empty", colspan: "10" }, none)));
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

  function problem(request) {
    if (!request.path === !request.s3_path) return "Give a local path or an S3 path (one of them).";
    if (Number.isNaN(request.max_workers)) return "Max workers must be a whole number above 0.";
    if (Number.isNaN(request.batch_size)) return "Batch size must be a whole number above 0.";
    if (request.date_from && request.date_to && request.date_from > request.date_to) {
      return "Date from is after date to.";
    }
    const bad = request.where.find((p) => !p.includes("="));
    if (bad) return "Not a field=value predicate: " + bad;
    return null;
  }

  $("#new-job").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const request = body(form);
    const error = problem(request);
    if (error) {
      TR.toast(error, "error");
      return;
    }
    const button = $("#start-job");
    button.disabled = true;
    $("#form-note").textContent = "Listing files and starting workers…";
    try {
      const job = await TR.post("/api/admin/reprocessing/jobs", request);
      location.assign("/ui/jobs/" + encodeURIComponent(job.id));
    } catch (exc) {
      button.disabled = false;
      $("#form-note").textContent = "";
    }
  });

  // ?new=1 (or an empty list) opens the form
  if (new URLSearchParams(location.search).get("new")) $("#new-job-card").open = true;
})();

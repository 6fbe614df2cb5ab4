/* The engine's jobs: filters and search, keyset pages (newest first, "older" follows the last
   id), live refresh of the page in view, and bulk actions on every job the filter selects,
   counted first and confirmed. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const REFRESH_MS = 2000;
  const LIMIT = 50;
  let filter = {};
  let pages = [null]; // the `after` of each page seen; the last one is in view
  let next = null;
  let lastDrawn = "";

  TR.nav("engine");

  // a link may carry the filter (?queue=emails&state=dead), as the queues page's do
  for (const [key, value] of new URLSearchParams(location.search)) {
    const field = $("#filters [name='" + key.replace(/[^a-z_]/g, "") + "']");
    if (field) field.value = value;
  }

  function readFilter() {
    const form = new FormData($("#filters"));
    const found = {};
    for (const [key, value] of form.entries()) if (String(value).trim()) found[key] = String(value).trim();
    return found;
  }

  function query(extra) {
    const params = new URLSearchParams({ ...filter, ...(extra || {}) });
    return params.toString();
  }

  function lastError(job) {
    const errors = job.errors || [];
    if (!errors.length) return "";
    const e = errors[errors.length - 1];
    return String((e && (e.error || e.message)) || "").split("\n")[0];
  }

  function row(job) {
    const error = lastError(job);
    return el(
      "tr",
      { dataset: { jobId: String(job.id), state: job.state } },
      el("td", { class: "num mono" }, el("a", { href: "/ui/engine/jobs/" + job.id }, job.id)),
      el("td", {}, TR.jobStateBadge(job)),
      el("td", { class: "mono" }, job.task),
      el("td", {}, job.queue),
      el("td", {}, el("span", { class: "badge prio" }, job.priority)),
      el("td", { class: "num" }, job.attempts + " / " + job.max_attempts),
      el("td", { class: "nowrap" }, TR.fmtTime(job.run_at)),
      el("td", { class: "nowrap" }, TR.fmtTime(job.finished_at)),
      el("td", { class: "small", title: error }, error.length > 90 ? error.slice(0, 89) + "…" : error),
    );
  }

  async function refresh() {
    const after = pages[pages.length - 1];
    const extra = { limit: String(LIMIT) };
    if (after) extra.after = String(after);
    const page = await TR.get("/api/admin/jobs?" + query(extra), { quiet: true });
    next = page.next_after;
    const text = JSON.stringify(page.jobs);
    if (text !== lastDrawn) {
      lastDrawn = text;
      const body = $("#engine-jobs tbody");
      if (!page.jobs.length) fill(body, el("tr", {}, el("td", { class: "empty", colspan: "9" }, "No jobs match.")));
      else fill(body, page.jobs.map(row));
    }
    $("#older").disabled = next === null || next === undefined;
    $("#newest").disabled = pages.length === 1;
    $("#page-info").textContent = "Page " + pages.length + (page.jobs.length ? " · ids " + page.jobs[0].id + "–" + page.jobs[page.jobs.length - 1].id : "");
    $("#updated").textContent = "Updated " + TR.fmtClock(Date.now());
  }

  filter = readFilter();
  const poller = TR.every(REFRESH_MS, refresh);

  $("#filters").addEventListener("submit", (e) => {
    e.preventDefault();
    filter = readFilter();
    pages = [null];
    lastDrawn = "";
    poller.now();
  });
  $("#older").addEventListener("click", () => {
    if (next === null || next === undefined) return;
    pages.push(next);
    poller.now();
  });
  $("#newest").addEventListener("click", () => {
    pages = [null];
    poller.now();
  });
  $("#live").addEventListener("change", (e) => (e.target.checked ? poller.start() : poller.stop()));

  // -- bulk actions by filter -----------------------------------------------------------------

  const DEFAULT_STATE = { retry: "dead", discard: "dead", cancel: "" };

  async function bulk(button, action) {
    const current = readFilter();
    delete current.q; // a bulk action takes the structured filter, never the free search
    const state = current.state || DEFAULT_STATE[action];
    const selection = { ...current };
    if (state) selection.state = state;
    else delete selection.state;
    let counted;
    try {
      counted = await TR.get("/api/admin/jobs/count?" + new URLSearchParams(selection));
    } catch (exc) {
      return;
    }
    const n = counted.count;
    const described = Object.entries(selection).map(([k, v]) => k + "=" + v).join(", ") || "every job";
    if (!n) {
      TR.toast("No job matches (" + described + ")", "ok");
      return;
    }
    const amount = (counted.capped ? "at least " : "") + TR.fmtNum(n);
    if (!confirm(action[0].toUpperCase() + action.slice(1) + " " + amount + " job" + (n === 1 ? "" : "s") + " (" + described + ")?")) return;
    button.disabled = true;
    try {
      const result = await TR.post("/api/admin/jobs/bulk", { action, ...selection, confirm: true });
      TR.toast(action + ": " + TR.fmtNum(result.count) + " job" + (result.count === 1 ? "" : "s"), "ok");
    } catch (exc) {
      /* shown by TR.api */
    } finally {
      button.disabled = false;
    }
    lastDrawn = "";
    poller.now();
  }

  for (const button of document.querySelectorAll("[data-bulk]")) {
    button.addEventListener("click", () => bulk(button, button.dataset.bulk));
  }
})();

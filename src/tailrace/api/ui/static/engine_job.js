/* One engine job: its arguments, metadata, timings (enqueued, waited, ran), dedup key, and
   every attempt's error with its traceback; retry, cancel or discard it. Live until it ends. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const REFRESH_MS = 2000;
  const match = location.pathname.match(/\/ui\/engine\/jobs\/([^/]+)/);
  const jobId = match ? decodeURIComponent(match[1]) : "";
  let lastDrawn = "";
  let job = null;

  TR.nav("engine");
  $("#job-id").textContent = jobId;
  document.title = "Engine job " + jobId + " · tailrace";

  function kv(rows) {
    return rows.map(([label, value, key]) =>
      el("tr", { dataset: { field: key || label.toLowerCase() } }, el("th", {}, label), el("td", {}, value === null || value === undefined || value === "" ? "–" : value)),
    );
  }

  function seconds(s) {
    if (s === null || s === undefined) return null;
    return s < 10 ? s.toFixed(3) + " s" : TR.fmtDuration(s);
  }

  function render(j) {
    fill($("#job-state"), TR.jobStateBadge(j));
    fill($("#details tbody"), kv([
      ["Task", el("span", { class: "mono" }, j.task)],
      ["Queue", j.queue],
      ["Priority", el("span", { class: "badge prio" }, j.priority)],
      ["Attempts", j.attempts + " / " + j.max_attempts],
      ["Dedup key", j.dedup_key ? el("span", { class: "mono" }, j.dedup_key) : null, "dedup"],
      ["Worker", j.worker_id ? el("span", { class: "mono" }, j.worker_id) : null, "worker"],
      ["Timeout", j.timeout_s === null ? null : j.timeout_s + " s", "timeout"],
      ["Cancel requested", j.cancel_requested ? "yes" : "no", "cancel-requested"],
    ]));
    const t = j.timings || {};
    const runningFor = j.state === "running" && j.started_at ? (Date.now() - TR.parseTime(j.started_at)) / 1000 : null;
    fill($("#timings tbody"), kv([
      ["Enqueued", TR.fmtTime(j.created_at), "enqueued"],
      ["Due (run at)", TR.fmtTime(j.run_at), "run-at"],
      ["Started", TR.fmtTime(j.started_at), "started"],
      ["Finished", TR.fmtTime(j.finished_at), "finished"],
      ["Waited", seconds(t.waited_s), "waited"],
      ["Ran", runningFor !== null ? "running for " + seconds(runningFor) : seconds(t.ran_s), "ran"],
    ]));
    $("#args").textContent = JSON.stringify(j.args, null, 2);
    const errors = j.errors || [];
    $("#attempt-count").textContent = "(" + errors.length + " failed)";
    if (!errors.length) {
      fill($("#attempts"), el("p", { class: "muted" }, j.state === "succeeded" ? "Succeeded on its first attempt." : "No failed attempt."));
    } else {
      fill($("#attempts"), errors.map((e, i) =>
        el("div", { class: "attempt", dataset: { attempt: String(e.attempt ?? i + 1) } },
          el("div", { class: "head" },
            el("b", {}, "Attempt " + (e.attempt ?? i + 1)),
            el("span", { class: "muted small" }, " · " + TR.fmtTime(e.at) + (e.worker_id ? " · " + e.worker_id : "")),
          ),
          el("div", { class: "error mono" }, e.error || ""),
          e.traceback
            ? el("details", {}, el("summary", {}, "Traceback"), el("pre", { class: "code traceback" }, e.traceback))
            : el("div", { class: "muted small" }, "no traceback"),
        ),
      ));
    }
    $("#retry").disabled = !["dead", "cancelled"].includes(j.state);
    $("#cancel").disabled = !["pending", "failed", "running"].includes(j.state) || j.cancel_requested;
    $("#discard").disabled = j.state !== "dead";
  }

  async function refresh() {
    try {
      job = await TR.get("/api/admin/jobs/" + encodeURIComponent(jobId), { quiet: true });
    } catch (exc) {
      if (exc instanceof TR.ApiError && (exc.status === 404 || exc.status === 422)) {
        fill($("#not-found"), el("h2", {}, "Not found"), el("p", {}, "There is no engine job " + jobId + " (it may have been pruned or discarded). "), el("a", { href: "/ui/engine" }, "All engine jobs"));
        $("#not-found").classList.remove("hidden");
        for (const id of ["#job-body"]) $(id).classList.add("hidden");
        poller.stop();
        return;
      }
      throw exc;
    }
    const text = JSON.stringify(job);
    if (text !== lastDrawn || job.state === "running") {
      lastDrawn = text;
      render(job);
    }
    $("#updated").textContent = "Updated " + TR.fmtClock(Date.now());
  }

  const poller = TR.every(REFRESH_MS, refresh);

  async function act(button, path, done) {
    button.disabled = true;
    try {
      await TR.post("/api/admin/jobs/" + encodeURIComponent(jobId) + path);
      TR.toast(done, "ok");
    } catch (exc) {
      button.disabled = false;
      return;
    }
    poller.now();
  }
  $("#retry").addEventListener("click", (e) => act(e.currentTarget, "/replay", "Job " + jobId + " retried"));
  $("#cancel").addEventListener("click", (e) => {
    if (confirm("Cancel job " + jobId + "?")) act(e.currentTarget, "/cancel", "Job " + jobId + " cancelled");
  });
  $("#discard").addEventListener("click", (e) => {
    if (confirm("Delete dead job " + jobId + "? This cannot be undone.")) act(e.currentTarget, "/discard", "Job " + jobId + " discarded");
  });
})();

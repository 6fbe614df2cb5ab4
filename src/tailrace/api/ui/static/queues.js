/* The engine's queues: depth by priority, pause and resume, and the dead jobs to replay or
   discard. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const REFRESH_MS = 2000;
  const PRIORITIES = ["CRITICAL", "HIGH", "DEFAULT", "LOW", "BULK"];
  const DEPTH_STATES = ["pending", "running", "failed", "dead"];
  const DEAD_LIMIT = 100;
  const last = { queues: "", dead: "" }; // what was drawn, so an unchanged poll redraws nothing
  let queueFilter = "";

  TR.nav("queues");

  function q(name) {
    return "/api/admin/queues/" + encodeURIComponent(name);
  }

  function priorityName(p) {
    return typeof p === "number" ? PRIORITIES[p] || String(p) : String(p);
  }

  // -- actions --------------------------------------------------------------------------------

  async function act(button, request, done) {
    button.disabled = true;
    try {
      const result = await request();
      if (done) TR.toast(done(result), "ok");
    } catch (exc) {
      button.disabled = false;
      return;
    }
    poller.now();
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  // -- queues ---------------------------------------------------------------------------------

  function depthTable(queue) {
    const byPriority = queue.by_priority || {};
    const names = PRIORITIES.filter((p) => p in byPriority).concat(
      Object.keys(byPriority).filter((p) => !PRIORITIES.includes(p)),
    );
    const rows = names.map((p) =>
      el(
        "tr",
        { dataset: { priority: p } },
        el("td", {}, el("span", { class: "badge prio" }, p)),
        DEPTH_STATES.map((s) => el("td", { class: "num", dataset: { state: s } }, TR.fmtNum(byPriority[p][s] || 0))),
      ),
    );
    return el(
      "table",
      { class: "depth" },
      el("thead", {}, el("tr", {}, el("th", {}, "Priority"), DEPTH_STATES.map((s) => el("th", { class: "num" }, s)))),
      el(
        "tbody",
        {},
        rows.length ? rows : el("tr", {}, el("td", { class: "empty", colspan: String(DEPTH_STATES.length + 1) }, "Empty")),
      ),
    );
  }

  function queueCard(queue) {
    const counts = queue.counts || {};
    const dead = counts.dead || 0;
    const toggle = queue.paused
      ? el("button", { class: "ok small", type: "button", dataset: { action: "resume" },
          onclick: (e) => act(e.currentTarget, () => TR.post(q(queue.name) + "/resume"), () => queue.name + " resumed") }, "Resume")
      : el("button", { class: "warn small", type: "button", dataset: { action: "pause" },
          onclick: (e) => act(e.currentTarget, () => TR.post(q(queue.name) + "/pause"), () => queue.name + " paused") }, "Pause");
    const replayAll = el("button", {
      class: "secondary small", type: "button", disabled: !dead, dataset: { action: "replay-all" },
      onclick: (e) => act(e.currentTarget, () => TR.post("/api/admin/jobs/replay", { queue: queue.name }),
        (r) => plural(r.count, "job") + " replayed in " + queue.name),
    }, "Replay all dead");
    const discardAll = el("button", {
      class: "danger small", type: "button", disabled: !dead, dataset: { action: "discard-all" },
      onclick: (e) => {
        if (!confirm("Delete every dead job in " + queue.name + "? This cannot be undone.")) return;
        act(e.currentTarget, () => TR.post("/api/admin/jobs/discard", { queue: queue.name }),
          (r) => plural(r.count, "job") + " discarded in " + queue.name);
      },
    }, "Discard all dead");
    return el(
      "section",
      { class: "card queue", dataset: { queue: queue.name, paused: String(!!queue.paused) } },
      el(
        "h2",
        {},
        el("span", { class: "mono" }, queue.name),
        TR.badge(queue.paused ? "paused" : "active"),
        el("span", { class: "spacer" }),
        toggle,
      ),
      el(
        "div",
        { class: "stats" },
        stat("Pending", counts.pending, "blue"),
        stat("Running", counts.running, "green"),
        stat("Failed", counts.failed, "amber"),
        stat("Dead", dead, "red", "dead"),
      ),
      el("div", { class: "muted small queue-cap" },
        "Capacity: " + (queue.capacity === null || queue.capacity === undefined ? "unlimited" : TR.fmtNum(queue.capacity)) +
        " · succeeded " + TR.fmtNum(counts.succeeded || 0) + " · cancelled " + TR.fmtNum(counts.cancelled || 0)),
      depthTable(queue),
      el("div", { class: "form-actions queue-actions" }, replayAll, discardAll),
    );
  }

  function stat(label, value, colour, key) {
    return el(
      "div",
      { class: "stat " + colour, dataset: { counter: key || label.toLowerCase() } },
      el("div", { class: "label" }, label),
      el("div", { class: "value" }, TR.fmtNum(value || 0)),
    );
  }

  function renderQueues(queues) {
    const box = $("#queues");
    if (!queues.length) fill(box, el("div", { class: "card muted" }, "No queues yet: enqueue a job to create one."));
    else fill(box, queues.map(queueCard));
    const select = $("#queue-filter");
    const names = queues.map((x) => x.name);
    const current = [...select.options].slice(1).map((o) => o.value);
    if (names.join("\n") !== current.join("\n")) {
      fill(select, el("option", { value: "" }, "all"), names.map((n) => el("option", { value: n }, n)));
      select.value = names.includes(queueFilter) ? queueFilter : "";
    }
  }

  // -- dead jobs ------------------------------------------------------------------------------

  function lastError(job) {
    const errors = job.errors || [];
    if (!errors.length) return "";
    const e = errors[errors.length - 1];
    const text = typeof e === "string" ? e : e.error || e.message || JSON.stringify(e);
    return String(text).split("\n")[0];
  }

  function deadRow(job) {
    const error = lastError(job);
    return el(
      "tr",
      { dataset: { jobId: String(job.id) } },
      el("td", { class: "num mono" }, job.id),
      el("td", { class: "mono" }, job.task),
      el("td", {}, job.queue),
      el("td", {}, el("span", { class: "badge prio" }, priorityName(job.priority))),
      el("td", { class: "num" }, job.attempts + " / " + job.max_attempts),
      el("td", { class: "small", title: error }, error.length > 120 ? error.slice(0, 119) + "…" : error),
      el("td", { class: "nowrap", title: TR.fmtTime(job.finished_at) }, TR.fmtAge(job.finished_at)),
      el(
        "td",
        { class: "nowrap right" },
        el("button", {
          class: "secondary small", type: "button", dataset: { action: "replay" },
          onclick: (e) => act(e.currentTarget, () => TR.post("/api/admin/jobs/" + job.id + "/replay"),
            () => "Job " + job.id + " replayed"),
        }, "Replay"),
        " ",
        el("button", {
          class: "danger small", type: "button", dataset: { action: "discard" },
          onclick: (e) => {
            if (!confirm("Delete dead job " + job.id + "?")) return;
            act(e.currentTarget, () => TR.post("/api/admin/jobs/" + job.id + "/discard"),
              () => "Job " + job.id + " discarded");
          },
        }, "Discard"),
      ),
    );
  }

  function renderDead(jobs) {
    const body = $("#dead-jobs tbody");
    if (!jobs.length) fill(body, el("tr", {}, el("td", { class: "empty", colspan: "8" }, "No dead jobs.")));
    else fill(body, jobs.map(deadRow));
    $("#dead-count").textContent = jobs.length >= DEAD_LIMIT ? "(first " + DEAD_LIMIT + ")" : "(" + jobs.length + ")";
  }

  // -- polling --------------------------------------------------------------------------------

  async function refresh() {
    const query = new URLSearchParams({ state: "dead", limit: String(DEAD_LIMIT) });
    if (queueFilter) query.set("queue", queueFilter);
    const [queues, dead] = await Promise.all([
      TR.get("/api/admin/queues", { quiet: true }),
      TR.get("/api/admin/jobs?" + query, { quiet: true }),
    ]);
    const queuesText = JSON.stringify(queues.queues);
    if (queuesText !== last.queues) {
      last.queues = queuesText;
      renderQueues(queues.queues || []);
    }
    const deadText = JSON.stringify(dead.jobs);
    if (deadText !== last.dead) {
      last.dead = deadText;
      renderDead(dead.jobs || []);
    }
    $("#updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }

  const poller = TR.every(REFRESH_MS, refresh);

  $("#queue-filter").addEventListener("change", (e) => {
    queueFilter = e.target.value;
    last.dead = "";
    poller.now();
  });
})();

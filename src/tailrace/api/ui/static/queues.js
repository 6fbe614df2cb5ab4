/* The engine's queues: depth by priority, pause and resume (of a queue or a worker pool), and
   the dead jobs to replay or discard. */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const REFRESH_MS = 2000;
  const PRIORITIES = ["CRITICAL", "HIGH", "DEFAULT", "LOW", "BULK"];
  const DEAD_LIMIT = 100;
  const last = { queues: "", dead: "", pools: "" }; // what was drawn, so an unchanged poll redraws nothing
  let queueFilter = "";
  let pausedPools = new Set(); // the pools paused now, and the live engine workers, as last polled
  let liveWorkers = [];
  let windowS = 300; // the server's window for waits and throughput, as it answers

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

  const LINE_COLUMNS = [
    ["pending", "due", (x) => TR.fmtNum(x.pending)],
    ["scheduled", "scheduled", (x) => TR.fmtNum(x.scheduled)],
    ["running", "running", (x) => TR.fmtNum(x.running)],
    ["dead", "dead", (x) => TR.fmtNum(x.dead)],
    ["oldest", "oldest wait", (x) => wait(x.oldest_wait_s)],
    ["p50", "wait p50", (x) => wait(x.wait_p50_s)],
    ["p95", "wait p95", (x) => wait(x.wait_p95_s)],
    ["throughput", "per min", (x) => x.throughput_per_min.toFixed(1)],
  ];

  function wait(s) {
    if (s === null || s === undefined) return "–";
    return s < 10 ? s.toFixed(2) + " s" : TR.fmtDuration(s);
  }

  function depthTable(queue) {
    const rows = (queue.priorities || []).map((x) =>
      el(
        "tr",
        { dataset: { priority: x.priority } },
        el("td", {}, el("span", { class: "badge prio" }, x.priority)),
        LINE_COLUMNS.map(([key, , show]) => el("td", { class: "num", dataset: { state: key } }, show(x))),
      ),
    );
    return el(
      "div",
      { class: "table-wrap" },
      el(
        "table",
        { class: "depth" },
        el("thead", {}, el("tr", {}, el("th", {}, "Priority"), LINE_COLUMNS.map(([, label]) => el("th", { class: "num" }, label)))),
        el(
          "tbody",
          {},
          rows.length ? rows : el("tr", {}, el("td", { class: "empty", colspan: String(LINE_COLUMNS.length + 1) }, "Empty")),
        ),
      ),
    );
  }

  /** The paused pools of the live workers that claim from `name`, and whether every such
   *  worker is in one (then nothing claims its jobs though the queue itself is active). */
  function poolsHolding(name) {
    const serving = liveWorkers.filter((w) => !w.queues || w.queues.includes(name));
    const paused = [...new Set(serving.filter((w) => w.pool && pausedPools.has(w.pool)).map((w) => w.pool))].sort();
    const held = serving.length > 0 && serving.every((w) => w.pool && pausedPools.has(w.pool));
    return { paused, held };
  }

  function poolNotice(queue, pools) {
    if (!pools.paused.length) return null;
    const named = pools.paused.join(", ");
    const text = pools.held
      ? "No live worker claims these jobs: every worker of this queue is in a paused pool (" + named + "). Resume the pool under Worker pools."
      : "Paused pool " + named + " claims nothing from this queue; its other workers still do.";
    return el("div", { class: "small pool-notice" + (pools.held ? " held" : ""), dataset: { field: "pool-notice" } }, text);
  }

  function queueCard(queue) {
    const t = queue.total;
    const dead = t.dead || 0;
    const pools = poolsHolding(queue.name);
    const toggle = queue.paused
      ? el("button", { class: "ok small", type: "button", dataset: { action: "resume" },
          onclick: (e) => act(e.currentTarget, () => TR.post(q(queue.name) + "/resume"), () => queue.name + " resumed") }, "Resume")
      : el("button", { class: "warn small", type: "button", dataset: { action: "pause" },
          onclick: (e) => {
            // as the bulk actions: one click must not stop a queue by mistake
            if (!confirm("Pause queue " + queue.name + "? No worker claims its jobs until it is resumed; running jobs finish.")) return;
            act(e.currentTarget, () => TR.post(q(queue.name) + "/pause"), () => queue.name + " paused");
          } }, "Pause");
    const replayAll = el("button", {
      class: "secondary small", type: "button", disabled: !dead, dataset: { action: "replay-all" },
      onclick: (e) => {
        if (!confirm("Retry all " + dead + " dead jobs in " + queue.name + "?")) return;
        act(e.currentTarget, () => TR.post("/api/admin/jobs/replay", { queue: queue.name }),
          (r) => plural(r.count, "job") + " replayed in " + queue.name);
      },
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
      { class: "card queue", dataset: { queue: queue.name, paused: String(!!queue.paused), poolPaused: pools.paused.join(",") } },
      el(
        "h2",
        {},
        el("a", { class: "mono", href: "/ui/engine?queue=" + encodeURIComponent(queue.name) }, queue.name),
        TR.badge(queue.paused ? "paused" : "active"),
        pools.paused.map((name) => el("span", { class: "badge paused", dataset: { pool: name } }, "pool " + name + " paused")),
        el("span", { class: "spacer" }),
        toggle,
      ),
      poolNotice(queue, pools),
      el(
        "div",
        { class: "stats" },
        stat("Pending", t.pending, "blue"),
        stat("Scheduled", t.scheduled, "purple"),
        stat("Running", t.running, "green"),
        stat("Dead", dead, "red", "dead"),
      ),
      el("div", { class: "muted small queue-cap" },
        "Oldest due job waited " + wait(t.oldest_wait_s) +
        " · wait p50 " + wait(t.wait_p50_s) + ", p95 " + wait(t.wait_p95_s) +
        " · " + t.throughput_per_min.toFixed(1) + " succeeded/min over the last " + Math.round(windowS / 60) + " min" +
        " · capacity " + (queue.capacity === null || queue.capacity === undefined ? "unlimited" : TR.fmtNum(queue.capacity))),
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

  function renderInternal(internal) {
    const body = $("#internal-queues tbody");
    if (!internal.length) {
      fill(body, el("tr", {}, el("td", { class: "empty", colspan: "4" }, "None.")));
      return;
    }
    fill(body, internal.map((x) => el(
      "tr",
      { dataset: { queue: x.name } },
      el("td", { class: "mono" }, el("a", { href: "/ui/jobs/" + encodeURIComponent(x.reprocessing_job) }, x.reprocessing_job)),
      el("td", { class: "num" }, TR.fmtNum(x.total.pending + x.total.scheduled)),
      el("td", { class: "num" }, TR.fmtNum(x.total.running)),
      el("td", { class: "num" }, TR.fmtNum(x.total.dead)),
    )));
  }

  // -- worker pools ---------------------------------------------------------------------------

  function poolPath(name) {
    return "/api/admin/pools/" + encodeURIComponent(name);
  }

  function poolRow(pool, live) {
    const toggle = pool.paused
      ? el("button", { class: "ok small", type: "button", dataset: { action: "resume-pool" },
          onclick: (e) => act(e.currentTarget, () => TR.post(poolPath(pool.name) + "/resume"), () => "pool " + pool.name + " resumed") }, "Resume")
      : el("button", { class: "warn small", type: "button", dataset: { action: "pause-pool" },
          onclick: (e) => {
            // a pool spans queues and schedules: one click must not stop them by mistake
            if (!confirm("Pause worker pool " + pool.name + "? Its " + plural(live, "live worker") +
              " stop claiming jobs and firing schedules; running jobs finish.")) return;
            act(e.currentTarget, () => TR.post(poolPath(pool.name) + "/pause"), () => "pool " + pool.name + " paused");
          } }, "Pause");
    return el(
      "tr",
      { dataset: { pool: pool.name, paused: String(!!pool.paused) } },
      el("td", { class: "mono" }, pool.name),
      el("td", {}, TR.badge(pool.paused ? "paused" : "active")),
      el("td", { class: "num", dataset: { field: "live" } }, TR.fmtNum(live)),
      el("td", { class: "right" }, toggle),
    );
  }

  function renderPools(pools, workers) {
    const body = $("#pools tbody");
    if (!pools.length) {
      fill(body, el("tr", {}, el("td", { class: "empty", colspan: "4" }, "No pool: start workers with --pool NAME to pause them together.")));
      return;
    }
    const live = new Map();
    for (const w of workers) if (w.alive && w.pool) live.set(w.pool, (live.get(w.pool) || 0) + 1);
    fill(body, pools.map((p) => poolRow(p, live.get(p.name) || 0)));
  }

  // -- history (server-side, one point a minute) ------------------------------------------

  let history = [];

  function drawHistory() {
    const metric = $("#history-metric").value;
    const byMinute = new Map();
    for (const p of history) {
      const t = TR.parseTime(p.at);
      const v = p[metric];
      if (v === null || v === undefined) continue;
      // several queues in one minute: rates and depths add up, a percentile takes the worst
      const prev = byMinute.get(t);
      byMinute.set(t, prev === undefined ? v : metric.startsWith("wait") ? Math.max(prev, v) : prev + v);
    }
    const points = [...byMinute.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({ t, v }));
    TR.drawChart($("#history-chart"), points, { unit: "", empty: "No history yet: workers write a point a minute." });
    $("#history-chart").dataset.points = String(points.length);
  }

  async function refreshHistory() {
    const found = await TR.get("/api/admin/queues/history?since_s=21600", { quiet: true });
    history = found.points || [];
    drawHistory();
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
    const [queues, dead, pools, workers] = await Promise.all([
      TR.get("/api/admin/queues/lines", { quiet: true }),
      TR.get("/api/admin/jobs?" + query, { quiet: true }),
      TR.get("/api/admin/pools", { quiet: true }),
      TR.get("/api/admin/workers", { quiet: true }),
    ]);
    const live = (workers.engine || []).filter((w) => w.alive).map((w) => ({ pool: w.pool, queues: w.queues }));
    const paused = (pools.pools || []).filter((p) => p.paused).map((p) => p.name);
    // a card says when a paused pool holds its queue: redrawn when the pools or workers change
    const queuesText = JSON.stringify([queues.queues, queues.internal, live, paused]);
    if (queuesText !== last.queues) {
      last.queues = queuesText;
      liveWorkers = live;
      pausedPools = new Set(paused);
      windowS = queues.window_s || windowS;
      renderQueues(queues.queues || []);
      renderInternal(queues.internal || []);
    }
    const engineWorkers = (workers.engine || []).map((w) => ({ pool: w.pool, alive: w.alive }));
    const poolsText = JSON.stringify([pools.pools, engineWorkers]);
    if (poolsText !== last.pools) {
      last.pools = poolsText;
      renderPools(pools.pools || [], engineWorkers);
    }
    const deadText = JSON.stringify(dead.jobs);
    if (deadText !== last.dead) {
      last.dead = deadText;
      renderDead(dead.jobs || []);
    }
    $("#updated").textContent = "Updated " + TR.fmtClock(Date.now());
  }

  const poller = TR.every(REFRESH_MS, refresh);
  TR.every(60000, refreshHistory);
  $("#history-metric").addEventListener("change", drawHistory);

  $("#queue-filter").addEventListener("change", (e) => {
    queueFilter = e.target.value;
    last.dead = "";
    poller.now();
  });
})();

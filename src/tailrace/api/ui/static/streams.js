/* Consumer groups and how far behind they are, per partition (TAILRACE_STREAM_CONSUMERS). */
"use strict";

(function () {
  const { el, $, fill } = TR;
  const REFRESH_MS = 2000;

  TR.nav("streams");

  function partitionRow(p, widest) {
    // the bar shows this partition's lag against the most lagging one
    return el(
      "tr",
      { dataset: { partition: String(p.partition), lag: String(p.lag) } },
      el("td", { class: "num" }, String(p.partition)),
      el("td", { class: "num" }, p.committed === null ? "–" : TR.fmtNum(p.committed)),
      el("td", { class: "num" }, TR.fmtNum(p.end)),
      el("td", { class: "num lag" }, TR.fmtNum(p.lag)),
      el("td", { class: "bar" }, TR.progress(widest ? p.lag / widest : 0, p.lag ? "running" : "completed")),
    );
  }

  function consumerCard(c) {
    const widest = Math.max(0, ...c.partitions.map((p) => p.lag));
    const head = el(
      "h2",
      {},
      el("code", {}, c.group),
      el("span", { class: "muted small" }, " on "),
      el("code", {}, c.topic),
      el("span", { class: "spacer" }),
      c.error
        ? TR.badge("unavailable", "failed")
        : el("span", { class: "badge " + (c.lag ? "running" : "completed"), dataset: { total: String(c.lag) } },
          "lag " + TR.fmtNum(c.lag)),
    );
    if (c.error) return el("section", { class: "card consumer" }, head, el("p", { class: "error" }, c.error));
    const table = el(
      "table",
      { class: "depth" },
      el("thead", {}, el("tr", {},
        el("th", { class: "num" }, "Partition"),
        el("th", { class: "num" }, "Committed"),
        el("th", { class: "num" }, "End"),
        el("th", { class: "num" }, "Lag"),
        el("th", {}, ""))),
      el("tbody", {}, c.partitions.map((p) => partitionRow(p, widest))),
    );
    return el("section", { class: "card consumer", dataset: { group: c.group, topic: c.topic } }, head, table);
  }

  async function refresh() {
    const data = await TR.get("/api/admin/streams");
    fill($("#source"), data.bootstrap_servers
      ? "Broker " + data.bootstrap_servers + "; groups from TAILRACE_STREAM_CONSUMERS (group@topic)."
      : "No broker: set KAFKA_BOOTSTRAP_SERVERS and TAILRACE_STREAM_CONSUMERS on the service.");
    fill($("#consumers"), data.consumers.length
      ? data.consumers.map(consumerCard)
      : el("div", { class: "card muted" }, "No consumer groups to show."));
    fill($("#updated"), "Updated " + TR.fmtClock(Date.now()));
  }

  TR.every(REFRESH_MS, refresh);
})();

/* The not-found page (served with status 404): what was not found, from the address. */
"use strict";

(function () {
  const { $ } = TR;
  const path = location.pathname;
  const reprocessing = /^\/ui\/jobs\/([^/]+)(\/logs)?\/?$/.exec(path);
  const engine = /^\/ui\/engine\/jobs\/([^/]+)\/?$/.exec(path);
  TR.nav(engine ? "engine" : "jobs");
  if (reprocessing) {
    $("#what").textContent =
      "There is no reprocessing job " + decodeURIComponent(reprocessing[1]) + ".";
  } else if (engine) {
    $("#what").textContent =
      "There is no engine job " + decodeURIComponent(engine[1]) + " (it may have been pruned or discarded).";
    $("#back").href = "/ui/engine";
    $("#back").textContent = "All engine jobs";
  } else {
    $("#what").textContent = "There is no page at " + path + ".";
  }
})();

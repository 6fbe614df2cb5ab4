/* tailrace admin UI: what every page shares. Plain browser JavaScript, no build step and
   nothing fetched from elsewhere; pages call these through the global `TR`. */
"use strict";

(function () {
  const CSRF_COOKIE = "tailrace_csrf";

  // -- DOM ------------------------------------------------------------------------------------

  /** el("td", {class: "num"}, "12"): builds nodes from text only, so data from the API is
   *  never parsed as HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value);
      } else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  // -- cookies and the API --------------------------------------------------------------------

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const eq = part.indexOf("=");
      if (eq < 0) continue;
      if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
    }
    return "";
  }

  class ApiError extends Error {
    constructor(status, code, message, detail) {
      super(message);
      this.status = status;
      this.code = code;
      this.detail = detail || {}; // the error body's other fields (problems, ...)
    }
  }

  function toLogin() {
    const here = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(here));
  }

  /** One request to the admin API. Non-GET requests carry the CSRF header; a 401 means the
   *  session ended and sends the browser to the login page. Errors are shown in a toast
   *  (unless `quiet`) and thrown as ApiError. */
  async function api(method, path, body, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = cookie(CSRF_COOKIE);
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (exc) {
      const error = new ApiError(0, "network", "The admin service cannot be reached");
      if (!opts.quiet) toast(error.message, "error");
      throw error;
    }
    if (response.status === 401) {
      toLogin();
      throw new ApiError(401, "unauthorized", "The session has ended");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (exc) {
        data = null;
      }
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      const error = new ApiError(
        response.status,
        err.code || "http_" + response.status,
        err.message || response.statusText || "Request failed (" + response.status + ")",
        err,
      );
      if (!opts.quiet) toast(error.message, "error", error.code);
      throw error;
    }
    return data;
  }

  const get = (path, options) => api("GET", path, undefined, options);
  const post = (path, body, options) => api("POST", path, body === undefined ? {} : body, options);

  // -- toasts ---------------------------------------------------------------------------------

  function toast(message, kind, code) {
    let box = document.getElementById("toasts");
    if (!box) {
      box = el("div", { id: "toasts", role: "status", "aria-live": "polite" });
      document.body.append(box);
    }
    const node = el(
      "div",
      { class: "toast " + (kind || "") },
      code ? el("span", { class: "code" }, code) : null,
      message,
    );
    box.append(node);
    setTimeout(() => node.remove(), kind === "error" ? 8000 : 4000);
  }

  // -- navigation bar --------------------------------------------------------------------------

  function nav(active) {
    const link = (href, label, key) =>
      el("a", { href, class: key === active ? "active" : null }, label);
    // A plain form, so logging out works even when a script failed; the CSRF value goes in a
    // field because a form cannot send headers.
    const logout = el(
      "form",
      { method: "post", action: "/logout", id: "logout-form" },
      el("input", { type: "hidden", name: "csrf_token", value: cookie(CSRF_COOKIE) }),
      el("button", { type: "submit", class: "small logout" }, "Logout"),
    );
    const bar = el(
      "header",
      { class: "topbar" },
      el("a", { class: "brand", href: "/" }, el("span", { class: "dot" }), "tailrace"),
      el(
        "nav",
        {},
        link("/", "Jobs", "jobs"),
        link("/ui/engine", "Engine", "engine"),
        link("/ui/queues", "Queues", "queues"),
        link("/ui/workers", "Workers", "workers"),
        link("/ui/streams", "Streams", "streams"),
        link("/docs", "API", "docs"),
      ),
      logout,
    );
    document.body.prepend(bar);
    if (!document.getElementById("toasts")) {
      document.body.append(el("div", { id: "toasts", role: "status", "aria-live": "polite" }));
    }
  }

  // -- formatting -----------------------------------------------------------------------------

  const numberFormat = new Intl.NumberFormat("en-US");

  function fmtNum(n) {
    return n === null || n === undefined ? "–" : numberFormat.format(n);
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)) + " " + units[unit];
  }

  function fmtRate(perSecond) {
    if (perSecond === null || perSecond === undefined || !isFinite(perSecond)) return "–";
    if (perSecond >= 10000) return (perSecond / 1000).toFixed(1) + "k/s";
    return Math.round(perSecond) + "/s";
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function parseTime(iso) {
    if (!iso) return null;
    const ms = Date.parse(iso);
    return isNaN(ms) ? null : ms;
  }

  function fmtAge(iso) {
    const ms = parseTime(iso);
    return ms === null ? "–" : fmtDuration((Date.now() - ms) / 1000) + " ago";
  }

  function fmtTime(iso) {
    const ms = parseTime(iso);
    if (ms === null) return "–";
    const d = new Date(ms);
    return d.toLocaleString("en-GB", {
      year: "numeric", month: "short", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
  }

  /** 24-hour clock time (14:05:09), whatever the browser's locale would choose. */
  function fmtClock(ms) {
    return new Date(ms).toLocaleTimeString("en-GB", { hourCycle: "h23" });
  }

  function pct(fraction) {
    const f = Math.max(0, Math.min(1, fraction || 0));
    return (Math.floor(f * 1000) / 10).toFixed(1) + "%";
  }

  // -- widgets --------------------------------------------------------------------------------

  /** An engine job's state as the queues page counts it: a waiting job due later is
   *  scheduled, not pending (coloured as pending). */
  function jobStateBadge(job) {
    const later = job.state === "pending" && job.run_at && parseTime(job.run_at) > Date.now();
    return later ? badge("scheduled", "pending") : badge(job.state);
  }

  function badge(status, extraClass) {
    return el("span", { class: "badge " + (extraClass || status || "") }, status || "–");
  }

  /** A progress bar with its percentage; `status` colours it. data-progress carries the
   *  fraction in per cent for tests and for screen readers. */
  function progress(fraction, status, large) {
    const f = Math.max(0, Math.min(1, fraction || 0));
    const value = Math.floor(f * 1000) / 10;
    return el(
      "div",
      { class: "progress-row" },
      el(
        "div",
        {
          class: "progress " + (status || "") + (large ? " lg" : ""),
          role: "progressbar",
          "aria-valuemin": "0",
          "aria-valuemax": "100",
          "aria-valuenow": String(value),
          dataset: { progress: String(value) },
        },
        el("div", { class: "fill", style: { width: value + "%" } }),
      ),
      el("span", { class: "pct" }, pct(f)),
    );
  }

  /** Update a bar made by progress() in place, so its width animates from the old value. */
  function setProgress(row, fraction, status, large) {
    const f = Math.max(0, Math.min(1, fraction || 0));
    const value = Math.floor(f * 1000) / 10;
    const bar = row.querySelector(".progress");
    bar.className = "progress " + (status || "") + (large ? " lg" : "");
    bar.setAttribute("aria-valuenow", String(value));
    bar.dataset.progress = String(value);
    bar.querySelector(".fill").style.width = value + "%";
    row.querySelector(".pct").textContent = pct(f);
  }

  /** Calls `fn` now and then every `ms` milliseconds after it settles (so slow requests never
   *  pile up). `fn` should make its requests quiet: a failure is shown here, once until the
   *  next success. Returns {stop, start, now, paused}. */
  function every(ms, fn) {
    let timer = null;
    let stopped = false;
    let running = false;
    let again = false; // asked to run while running: go again as soon as this run ends
    let failing = false; // one toast per run of failures, not one a second
    async function tick() {
      timer = null;
      running = true;
      try {
        await fn();
        failing = false;
      } catch (exc) {
        if (!(exc instanceof ApiError)) console.error(exc);
        else if (!failing && exc.status !== 401) toast(exc.message, "error", exc.code);
        failing = true;
      } finally {
        running = false;
      }
      if (stopped) return;
      if (again) {
        again = false;
        tick();
      } else {
        timer = setTimeout(tick, ms);
      }
    }
    // never two chains of timers: a request in flight is followed, not joined
    function kick() {
      if (running) {
        again = true;
        return;
      }
      if (timer) clearTimeout(timer);
      tick();
    }
    kick();
    return {
      stop() {
        stopped = true;
        again = false;
        if (timer) clearTimeout(timer);
        timer = null;
      },
      start() {
        if (!stopped) return;
        stopped = false;
        kick();
      },
      now() {
        if (!stopped) kick();
      },
      get paused() {
        return stopped;
      },
    };
  }

  /** The job id in /ui/jobs/{id} or /ui/jobs/{id}/logs (or ?id= when a page is opened as a
   *  plain static file). */
  function jobIdFromPath() {
    const match = location.pathname.match(/\/ui\/jobs\/([^/]+)/);
    if (match) return decodeURIComponent(match[1]);
    return new URLSearchParams(location.search).get("id") || "";
  }

  function jobApi(id, suffix) {
    return "/api/admin/reprocessing/jobs/" + encodeURIComponent(id) + (suffix || "");
  }

  /** Replace the children of `node` (keeping the node, so scroll positions and listeners
   *  on it survive). */
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  window.TR = {
    el, $, fill, cookie, api, get, post, ApiError, toast, nav, toLogin,
    fmtNum, fmtBytes, fmtRate, fmtDuration, fmtAge, fmtTime, fmtClock, parseTime, pct,
    badge, jobStateBadge, progress, setProgress, every, jobIdFromPath, jobApi,
  };
})();

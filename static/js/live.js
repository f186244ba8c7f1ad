/* AMS Cluster Wizard: live updates on a wizard step page. Vanilla JS, no build step.
 *
 * Contract with the server (app/events/views.py):
 *   GET <data-events-json>?after=N&limit=M -> {events: [...], next_after, more}  (history, paginated)
 *   GET <data-events-url>?after=N          -> text/event-stream; id: = seq, data: = event JSON
 * Each event: {seq, kind, step, node, step_run, action, payload, at}; seq is per deployment and gap-free.
 *
 * Guarantees: every event is applied once (dedupe by seq); after any reconnect the stream resumes after the
 * last seq seen (EventSource sends Last-Event-ID itself; a manual reconnect passes ?after=); a hole in the
 * sequence is back-filled from the JSON history. The log keeps every line in memory and renders only the
 * visible window (fixed line height), with DOM writes batched per animation frame.
 */
(function () {
  "use strict";

  /* ------------------------------------------------------------------ print: open folded details */
  var reopened = [];
  window.addEventListener("beforeprint", function () {
    reopened = Array.prototype.filter.call(document.querySelectorAll("details:not([open])"), function (d) {
      d.open = true;
      return true;
    });
  });
  window.addEventListener("afterprint", function () {
    reopened.forEach(function (d) { d.open = false; });
    reopened = [];
  });

  var root = document.querySelector(".wizard-layout[data-events-url]");
  if (!root) return;

  var STEP = root.getAttribute("data-step") || "";
  var DEPLOYMENT = root.getAttribute("data-deployment") || "";
  var STREAM_URL = root.getAttribute("data-events-url");
  var HISTORY_URL = root.getAttribute("data-events-json");
  var LOGIN_URL = root.getAttribute("data-login-url");
  var PAGE = 1000;
  var TERMINAL = { "step.finished": 1, "step.paused": 1, "step.cancelled": 1 };
  var ACTIVE_RUN = { queued: 1, running: 1 };

  /* ------------------------------------------------------------------ small helpers */
  function $(sel, scope) { return (scope || document).querySelector(sel); }
  function $all(sel, scope) { return Array.prototype.slice.call((scope || document).querySelectorAll(sel)); }
  function words(status) { return String(status || "").replace(/_/g, " "); }
  function safeClass(s) { return String(s || "").replace(/[^a-z0-9_-]/gi, "_"); }
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function parseTime(iso) {
    if (!iso) return NaN;
    // The server sends aware ISO times; treat a naive one as UTC.
    var s = /[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + "Z";
    return Date.parse(s);
  }
  function clock(iso) {
    var t = parseTime(iso);
    if (isNaN(t)) return "--:--:--";
    var d = new Date(t);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s = s % 60;
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s);
  }

  // A finished attempt's length: seconds (tenths under 10 s) below a minute, so a quick check
  // does not read "took 0:00"; m:ss or h:mm:ss above.
  function tookText(ms) {
    if (ms < 10000) return (Math.max(0, ms) / 1000).toFixed(1) + " s";
    if (ms < 60000) return Math.floor(ms / 1000) + " s";
    return duration(ms);
  }

  function badge(status) {
    var span = document.createElement("span");
    span.className = "badge badge-" + safeClass(status);
    span.textContent = words(status);
    return span;
  }

  /* ------------------------------------------------------------------ screen-reader announcements */
  var announcer = document.createElement("p");
  announcer.className = "sr-only";
  announcer.setAttribute("aria-live", "polite");
  announcer.setAttribute("data-announce", "");
  document.body.appendChild(announcer);
  var announceTimer = null;
  function announce(text) {
    clearTimeout(announceTimer);
    announceTimer = setTimeout(function () { announcer.textContent = text; }, 150);
  }

  /* ------------------------------------------------------------------ the virtual log */
  function LogView(view) {
    this.view = view;
    this.lines = [];          // {seq, time, node, kind, text, cls}, ordered by seq
    this.dirty = false;
    this.sizer = document.createElement("div");
    this.sizer.className = "log-sizer";
    this.win = document.createElement("div");
    this.win.className = "log-window";
    this.win.setAttribute("role", "presentation");
    this.sizer.appendChild(this.win);
    this.empty = document.createElement("div");
    this.empty.className = "log-empty";
    this.empty.textContent = "Waiting for events\u2026";
    view.textContent = "";
    view.appendChild(this.empty);
    view.appendChild(this.sizer);
    view.setAttribute("role", "region");
    if (!view.hasAttribute("aria-label") && !view.hasAttribute("aria-labelledby")) {
      view.setAttribute("aria-label", "Live log");
    }
    this.follow = $("[data-follow]");
    this.count = $("[data-log-count]");
    this.lineHeight = parseFloat(getComputedStyle(view).getPropertyValue("--log-line")) || 18;
    this.overscan = 30;
    this.fullHeight = view.clientHeight; // the CSS height; a short log shrinks to fit, up to this
    this.programmatic = false;
    var self = this;
    view.addEventListener("scroll", function () { self.onScroll(); }, { passive: true });
    if (this.follow) {
      this.follow.addEventListener("change", function () {
        if (self.follow.checked) self.schedule();
      });
    }
    window.addEventListener("resize", function () { self.schedule(); });
  }

  LogView.prototype.add = function (line) {
    var lines = this.lines;
    var n = lines.length;
    if (!n || lines[n - 1].seq < line.seq) {
      lines.push(line);
    } else {
      // Out of order (a back-filled gap): binary insert; equal seq never happens (deduped upstream).
      var lo = 0, hi = n;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (lines[mid].seq < line.seq) lo = mid + 1; else hi = mid;
      }
      lines.splice(lo, 0, line);
    }
    this.schedule();
  };

  LogView.prototype.following = function () { return !this.follow || this.follow.checked; };

  LogView.prototype.schedule = function () {
    if (this.dirty) return;
    this.dirty = true;
    var self = this;
    requestAnimationFrame(function () { self.dirty = false; self.render(); });
  };

  LogView.prototype.onScroll = function () {
    if (this.programmatic) { this.programmatic = false; this.schedule(); return; }
    var v = this.view;
    var atBottom = v.scrollTop + v.clientHeight >= v.scrollHeight - this.lineHeight;
    if (this.follow && this.follow.checked !== atBottom && this.lines.length) {
      // Scrolling up pauses following; scrolling back to the end resumes it.
      this.follow.checked = atBottom;
    }
    this.schedule();
  };

  LogView.prototype.render = function () {
    var v = this.view, lines = this.lines, h = this.lineHeight;
    this.empty.hidden = lines.length > 0;
    this.sizer.style.height = lines.length * h + "px";
    var fit = (Math.max(lines.length, 4) + 1) * h;
    var height = this.fullHeight && fit < this.fullHeight ? fit + "px" : "";
    if (v.style.height !== height) v.style.height = height;
    if (this.following()) {
      var bottom = Math.max(0, lines.length * h - v.clientHeight);
      if (Math.abs(v.scrollTop - bottom) > 1) {
        this.programmatic = true;
        v.scrollTop = bottom;
      }
    }
    var first = Math.max(0, Math.floor(v.scrollTop / h) - this.overscan);
    var last = Math.min(lines.length, Math.ceil((v.scrollTop + v.clientHeight) / h) + this.overscan);
    var frag = document.createDocumentFragment();
    for (var i = first; i < last; i++) frag.appendChild(this.lineElement(lines[i]));
    this.win.style.transform = "translateY(" + first * h + "px)";
    this.win.textContent = "";
    this.win.appendChild(frag);
    if (this.count) this.count.textContent = lines.length.toLocaleString() + (lines.length === 1 ? " line" : " lines");
  };

  LogView.prototype.lineElement = function (line) {
    var div = document.createElement("div");
    div.className = "log-line " + line.cls;
    div.setAttribute("data-seq", line.seq);
    var t = document.createElement("span");
    t.className = "t";
    t.textContent = line.time + " ";
    div.appendChild(t);
    if (line.node) {
      var n = document.createElement("span");
      n.className = "n";
      n.textContent = line.node + " ";
      div.appendChild(n);
    }
    var k = document.createElement("span");
    k.className = "k";
    k.textContent = line.label + " ";
    div.appendChild(k);
    div.appendChild(document.createTextNode(line.text));
    div.title = line.text.length > 120 ? line.text.slice(0, 2000) : "";
    return div;
  };

  LogView.prototype.asText = function () {
    return this.lines.map(function (l) {
      return "#" + l.seq + " " + l.time + " " + (l.node ? l.node + " " : "") + l.label + " " + l.text;
    }).join("\n") + "\n";
  };

  /* ------------------------------------------------------------------ event -> log line */
  var LABELS = {
    "node.output": "out", "node.information": "info", "node.warning": "WARN", "node.error": "ERROR",
    "node.progress": "progress", "node.started": "start", "node.finished": "end",
    "phase.started": "phase", "phase.waiting": "phase", "phase.finished": "phase", "step.started": "step",
    "node.retrying": "retry", "node.verbose": "verbose", "node.debug": "debug", "step.skipped": "skipped",
    "step.cancel_requested": "cancel", "deployment.completed": "completed", "deployment.aborted": "aborted",
    "nodes.excluded": "excluded", "step.finished": "step", "step.paused": "paused",
    "step.cancelled": "cancel", "action.interrupted": "interrupted", "note.added": "note",
    "deployment.created": "created", "deployment.updated": "updated"
  };

  function payloadText(p) {
    if (!p || typeof p !== "object") return p == null ? "" : String(p);
    var text = p.text || p.message || p.line || p.summary || p.title || "";
    if (text) return String(text);
    if (!Object.keys(p).length) return "";
    try { return JSON.stringify(p).slice(0, 500); } catch (e) { return ""; }
  }

  var lastProgress = {}; // action id -> "activity|status" already logged
  function lineFor(ev) {
    var p = ev.payload || {};
    var text, extra = "";
    switch (ev.kind) {
      case "node.progress": {
        var key = (p.activity || "") + "|" + (p.status || "") + "|" + (p.operation || "");
        var id = ev.action || ev.node || "";
        if (lastProgress[id] === key) return null; // percent ticks update the bar, not the log
        lastProgress[id] = key;
        text = [p.activity, p.status, p.operation].filter(Boolean).join(": ");
        if (p.percent != null && p.percent >= 0) text += " (" + p.percent + "%)";
        break;
      }
      case "node.started":
        text = "Started " + (p.script ? p.script + ".ps1" : "") + (p.phase ? " [" + p.phase + "]" : "");
        break;
      case "node.finished":
        text = words(p.status || "finished") +
          (p.category || p.error_category ? " (" + (p.category || p.error_category) + ")" : "") +
          (p.duration != null ? " after " + p.duration + " s" : "") +
          (p.message ? ": " + p.message : "") + (p.remediation ? " \u2192 " + p.remediation : "") +
          (p.output_lost_notice ? " \u2014 " + p.output_lost_notice : "");
        extra = p.status ? " k-" + safeClass(p.status) : "";
        break;
      case "step.started":
        text = "Step started" + (p.attempt ? ", attempt " + p.attempt : "");
        break;
      case "step.finished":
        text = (p.status === "passed" ? "Attempt passed; the step continues with another" :
          "Step finished" + (p.status ? ": " + words(p.status) : "")) + (p.summary ? ". " + p.summary : "");
        extra = p.status === "done" || p.status === "passed" ? " k-succeeded" : p.status ? " k-interrupted" : "";
        break;
      case "step.paused":
        text = (p.interrupted ? "Interrupted, paused for a decision" :
          p.passed ? "Waiting for the next attempt" : "Paused for a decision") +
          (p.summary || p.reason ? ": " + (p.summary || p.reason) : "");
        break;
      case "step.skipped":
        text = "Step skipped" + (p.reason ? ": " + p.reason : "");
        break;
      case "phase.started":
        text = "Phase: " + (p.title || p.phase || "") +
          (p.actions ? " on " + p.actions.length + " node(s)" : "") + (p.changes_state ? " (changes state)" : "");
        break;
      case "phase.waiting":
        text = "Waiting " + (p.seconds || 0) + " s before " + (p.title || p.phase || "the next phase");
        break;
      case "phase.finished":
        text = "Phase " + (p.phase || "") + " finished" + (p.nodes ? ": " + Object.keys(p.nodes).map(function (n) {
          return n + " " + words(p.nodes[n]);
        }).join(", ") : "");
        break;
      case "node.retrying":
        text = "Retrying in " + (p.delay || 0) + " s (try " + ((p.try || 0) + 1) + ")" +
          (p.category ? " after " + p.category : "") + (p.message ? ": " + p.message : "") +
          (p.output_lost_notice ? " \u2014 " + p.output_lost_notice : "");
        break;
      case "note.added":
        text = p.text || "";
        break;
      case "deployment.created":
        text = "Deployment " + (p.name || "") + " created";
        break;
      case "deployment.completed":
        text = "Every step is done: the deployment is complete";
        break;
      default:
        text = payloadText(p);
        if (p.category) text += " (" + p.category + ")";
    }
    return {
      seq: ev.seq,
      time: clock(ev.at),
      node: ev.node || "",
      label: LABELS[ev.kind] || ev.kind,
      text: String(text).replace(/\r?\n/g, " \u21b5 "),
      cls: "k-" + safeClass(ev.kind.replace(".", "-")) + extra
    };
  }

  /* ------------------------------------------------------------------ live page state */
  var logEl = $("[data-log]");
  var log = logEl ? new LogView(logEl) : null;
  var conn = $("[data-conn]");
  var runBox = $(".run-status[data-run]");
  var renderedRun = runBox ? parseInt(runBox.getAttribute("data-run"), 10) : null;
  var renderedRunStatus = runBox ? runBox.getAttribute("data-run-status") || "" : "";
  var seen = new Set();
  var lastSeq = 0;       // highest seq applied
  var contiguous = 0;    // every seq <= contiguous has been applied
  var live = false;      // false while replaying history
  var formsDirty = false;
  var PHASE_TOTAL = (function () {
    var plan = $(".plan");
    return plan ? String($all("details", plan).length) : "0";
  })();

  // Typing a user name or password chooses "Enter other credentials" over the stored ones.
  document.addEventListener("input", function (e) {
    var box = e.target && e.target.closest && e.target.closest("[data-credentials]");
    var other = box && $("[data-credentials-other]", box);
    if (other && e.target.value) other.checked = true;
  });

  document.addEventListener("input", function (e) {
    if (e.target && e.target.form && !e.target.closest("[data-log]")) formsDirty = true;
  });

  function setConn(state, text) {
    if (!conn) return;
    conn.setAttribute("data-state", state);
    conn.textContent = text || state;
  }

  function setStepState(key, status) {
    var title = key === STEP && $("[data-title-state]");
    if (title) { title.textContent = ""; title.appendChild(badge(status)); } // the heading agrees with the sidebar
    var el = $('[data-step-state="' + (window.CSS && CSS.escape ? CSS.escape(key) : key) + '"]');
    if (!el) return;
    el.textContent = words(status);
    var item = el.closest(".step-item");
    if (item) {
      item.className = item.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + safeClass(status);
    }
  }

  function nodesBody() {
    var body = $(".nodes-grid tbody");
    if (body) return body;
    // No run was rendered yet (a run started after this page loaded): build the grid.
    var panel = $("#run-panel");
    if (!panel) return null;
    var box = document.createElement("div");
    box.className = "run-status";
    box.innerHTML = '<h3>Current attempt</h3><div class="table-wrap"><table class="table compact nodes-grid">' +
      "<thead><tr><th>Node</th><th>Phase</th><th>Script</th><th>Status</th><th>Progress</th><th>Detail</th>" +
      "</tr></thead><tbody></tbody></table></div>";
    var logBox = $(".log", panel);
    panel.insertBefore(box, logBox || null);
    return $("tbody", box);
  }

  // The row of one node action; created (queued) when the page does not show it yet.
  function actionRow(ev) {
    if (ev.action == null) return null;
    var row = $('tr[data-action="' + ev.action + '"]');
    if (row) return row;
    var body = nodesBody();
    if (!body) return null;
    var p = ev.payload || {};
    row = document.createElement("tr");
    row.setAttribute("data-action", ev.action);
    row.className = "is-new is-queued";
    var cells = [ev.node || "", p.phase || "", "", "", "", ""];
    cells.forEach(function (value, i) {
      var td = document.createElement("td");
      if (i === 2) {
        var code = document.createElement("code");
        code.textContent = p.script || "";
        td.appendChild(code);
      } else if (i === 3) {
        td.className = "action-status";
        td.appendChild(badge("queued"));
      } else if (i === 4) {
        var bar = document.createElement("progress");
        bar.max = 100;
        bar.value = 0;
        bar.setAttribute("aria-label", "Progress on " + (ev.node || "node"));
        td.appendChild(bar);
      } else if (i === 5) {
        td.className = "action-detail";
      } else {
        td.textContent = value;
      }
      row.appendChild(td);
    });
    body.appendChild(row);
    return row;
  }

  function setRowStatus(row, status) {
    var cell = $(".action-status", row);
    if (cell) { cell.textContent = ""; cell.appendChild(badge(status)); }
    row.className = row.className.replace(/\bis-\S+/g, "").trim() + " is-" + safeClass(status);
  }

  // Rows belong to one attempt: the rendered one, or a newer one that started after the page loaded.
  var rowsRun = renderedRun;
  function onStepStarted(ev) {
    if (ev.step_run == null || (rowsRun != null && ev.step_run <= rowsRun)) return;
    rowsRun = ev.step_run;
    var body = nodesBody();
    if (body) body.textContent = "";
    var box = body && body.closest(".run-status");
    var head = box && $("h3", box);
    if (head) {
      head.textContent = "Attempt " + ((ev.payload || {}).attempt || "") + " ";
      head.appendChild(badge("running"));
      var elapsed = document.createElement("span");
      elapsed.className = "elapsed";
      elapsed.setAttribute("data-started", ev.at || new Date().toISOString());
      elapsed.setAttribute("data-finished", "");
      head.appendChild(elapsed);
    }
    $all(".run-status .outcome, .run-panel .decide, [data-phase-count]").forEach(function (el) { el.remove(); });
  }

  // "Phase 2 of 4: title" for the attempt the rows show. The page renders the phases its actions
  // reached so far and the plan's count; each phase.started of the attempt adds its phase.
  function phaseLine() {
    var line = $("[data-phase-count]");
    if (line) return line;
    // Only for an attempt still running: the rendered one if active, or one started since.
    if (rowsRun === renderedRun && !ACTIVE_RUN[renderedRunStatus]) return null;
    var box = $(".run-status");
    if (!box) return null;
    line = document.createElement("p");
    line.className = "phase-count";
    line.setAttribute("data-phase-count", "");
    line.setAttribute("data-phase-names", "[]");
    line.setAttribute("data-phase-total", PHASE_TOTAL);
    line.setAttribute("role", "status");
    var head = $("h3", box);
    box.insertBefore(line, head ? head.nextSibling : box.firstChild);
    return line;
  }

  function phaseCount(p) {
    var line = phaseLine();
    if (!line || !p.phase) return;
    var names = [];
    try { names = JSON.parse(line.getAttribute("data-phase-names") || "[]"); } catch (e) { names = []; }
    if (names.indexOf(p.phase) < 0) names.push(p.phase);
    line.setAttribute("data-phase-names", JSON.stringify(names));
    var number = names.indexOf(p.phase) + 1;
    var total = Math.max(parseInt(line.getAttribute("data-phase-total"), 10) || 0, names.length);
    line.textContent = "Phase " + number + " of " + total + ": " + (p.title || p.phase);
  }

  function updateRow(ev) {
    if (ev.kind === "step.started") { onStepStarted(ev); return; }
    if (ev.step_run != null && rowsRun != null && ev.step_run !== rowsRun) return; // another attempt
    var p0 = ev.payload || {};
    if (ev.kind === "phase.started") phaseCount(p0);
    if (ev.kind === "phase.started" && p0.actions) {
      p0.actions.forEach(function (a) {
        actionRow({ action: a.id, node: a.node, payload: { phase: p0.phase, script: a.script } });
      });
      return;
    }
    var row = actionRow(ev);
    if (!row) return;
    var p = ev.payload || {};
    var bar = $("progress", row);
    var detail = $(".action-detail", row);
    if (ev.kind === "node.started") {
      setRowStatus(row, "running");
      var code = $("code", row);
      if (code && p.script && !code.textContent) code.textContent = p.script;
    } else if (ev.kind === "node.progress") {
      if (bar && typeof p.percent === "number" && p.percent >= 0) bar.value = Math.min(100, p.percent);
      if (detail) detail.textContent = [p.activity, p.status].filter(Boolean).join(": ");
    } else if (ev.kind === "node.finished") {
      var status = p.status || "succeeded";
      setRowStatus(row, status);
      if (bar && status === "succeeded") bar.value = 100;
      if (detail) detail.textContent = p.message || (status === "succeeded" ? "" : words(status));
      if (detail && p.remediation && status !== "succeeded") detail.textContent += " \u2192 " + p.remediation;
      if (detail && p.output_lost_notice) detail.textContent += (detail.textContent ? " " : "") + p.output_lost_notice;
      if (live) announce((ev.node || "A node") + ": " + words(status));
    } else if (ev.kind === "node.retrying") {
      setRowStatus(row, "retrying");
      if (detail) detail.textContent = "Retrying in " + (p.delay || 0) + " s: " + (p.message || "");
    } else if (ev.kind === "action.interrupted") {
      setRowStatus(row, "interrupted");
      if (detail) detail.textContent = p.message || "Interrupted";
    } else if (ev.kind === "node.error" && detail && !detail.textContent) {
      detail.textContent = payloadText(p);
    }
  }

  var STEP_STATE = {
    "step.started": "in_progress", "step.paused": "needs_attention", "step.cancelled": "needs_attention",
    "step.finished": "done", "step.skipped": "skipped"
  };
  var STEP_WORDS = { not_started: 1, in_progress: 1, needs_attention: 1, done: 1, skipped: 1 };
  var RUN_TO_STEP = { succeeded: "done", passed: "needs_attention", failed: "needs_attention", interrupted: "needs_attention",
    cancelled: "needs_attention", completed: "done" };
  function stepStatus(ev) {
    if (!STEP_STATE[ev.kind]) return null;
    var p = ev.payload || {};
    var s = p.step_status || p.status;
    if (STEP_WORDS[s]) return s;
    return RUN_TO_STEP[s] || STEP_STATE[ev.kind];
  }

  /* ------------------------------------------------------------------ elapsed ticker */
  function tick() {
    var now = Date.now();
    $all(".elapsed[data-started]").forEach(function (el) {
      var start = parseTime(el.getAttribute("data-started"));
      if (isNaN(start)) return;
      var end = parseTime(el.getAttribute("data-finished"));
      var text = isNaN(end) ? "elapsed " + duration(now - start) : "took " + tookText(end - start);
      if (el.textContent !== text) el.textContent = text;
    });
  }
  tick();
  setInterval(tick, 1000);

  /* ------------------------------------------------------------------ reload once when the step ends */
  // True when the page no longer shows the truth about this step's latest run.
  function pageIsStale(ev) {
    if (renderedRun == null || ev.step_run == null) return live;
    if (ev.step_run < renderedRun) return false;                 // an older attempt
    if (ev.step_run === renderedRun) return !!ACTIVE_RUN[renderedRunStatus];
    return true;                                                  // a newer attempt than the page shows
  }

  var pendingReload = false;
  var RELOAD_DELAYS = [300, 1000, 3000]; // ms before the 1st, 2nd and 3rd reload for one event
  function maybeReload(ev) {
    if (!TERMINAL[ev.kind] || ev.step !== STEP) return;
    $all(".elapsed[data-started]").forEach(function (el) {
      if (!el.getAttribute("data-finished") && (ev.step_run == null || ev.step_run === rowsRun)) {
        el.setAttribute("data-finished", ev.at || new Date().toISOString());
      }
    });
    if (pendingReload || !pageIsStale(ev)) return;
    // Never loop: at most three reloads per event, further apart each time. A reloaded page that
    // still shows the attempt running (seen once in CI, cause unknown) gets another chance.
    var key = "amsw-reloaded:" + DEPLOYMENT + ":" + STEP + ":" + ev.seq;
    var tries = 0;
    try {
      tries = parseInt(sessionStorage.getItem(key) || "0", 10) || 0;
      if (tries >= RELOAD_DELAYS.length) return;
      sessionStorage.setItem(key, String(tries + 1));
    } catch (e) { /* storage disabled: the staleness check above still stops a loop */ }
    if (formsDirty) {
      showReloadNotice();
      return;
    }
    pendingReload = true;
    setTimeout(function () { window.location.reload(); }, RELOAD_DELAYS[tries]);
  }

  function showReloadNotice() {
    if ($("[data-reload-notice]")) return;
    var p = document.createElement("p");
    p.className = "notice";
    p.setAttribute("data-reload-notice", "");
    p.setAttribute("role", "status");
    p.appendChild(document.createTextNode("This step has finished. "));
    var b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = "Reload to see the outcome";
    b.addEventListener("click", function () { window.location.reload(); });
    p.appendChild(b);
    var panel = $("#run-panel") || $(".step-body");
    if (panel) panel.insertBefore(p, panel.firstChild);
  }

  /* ------------------------------------------------------------------ applying events */
  function apply(ev) {
    if (!ev || typeof ev.seq !== "number" || seen.has(ev.seq)) return;
    seen.add(ev.seq);
    if (ev.seq > lastSeq) lastSeq = ev.seq;
    while (seen.has(contiguous + 1)) contiguous++;
    var status = ev.step && stepStatus(ev);
    if (status) setStepState(ev.step, status);
    if (ev.step === STEP || ev.step == null) {
      if (ev.step === STEP) updateRow(ev);
      var line = log && lineFor(ev);
      if (line) log.add(line);
      if (live && ev.step === STEP && (ev.kind === "step.finished" || ev.kind === "step.paused")) {
        announce(lineFor(ev).text);
      }
    }
    maybeReload(ev);
  }

  /* ------------------------------------------------------------------ history + stream */
  function isLoginPage(url) {
    if (!LOGIN_URL || !url) return false;
    return new URL(url, location.href).pathname === new URL(LOGIN_URL, location.href).pathname;
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.redirected && isLoginPage(r.url)) {
          var out = new Error("signed out");
          out.signedOut = true; // the session ended: disabled account, new password, sign-out
          throw out;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      });
  }

  // The session ended while the page was open: say so once and stop reconnecting.
  function showSignedOut() {
    if (source) source.close();
    clearTimeout(retryTimer);
    setConn("offline", "signed out");
    if ($("[data-signed-out]")) return;
    var p = document.createElement("p");
    p.className = "notice";
    p.setAttribute("data-signed-out", "");
    p.setAttribute("role", "alert");
    p.appendChild(document.createTextNode(
      "Your session has ended (you signed out elsewhere, or an administrator disabled the account " +
      "or reset its password), so this page no longer receives live updates. "));
    var a = document.createElement("a");
    a.href = LOGIN_URL;
    a.textContent = "Sign in again";
    p.appendChild(a);
    var head = $(".step-head"); // at the top, where the reader's eye starts
    if (head) head.parentNode.insertBefore(p, head.nextSibling);
    else root.insertBefore(p, root.firstChild);
  }

  function withAfter(url, after, extra) {
    return url + (url.indexOf("?") < 0 ? "?" : "&") + "after=" + after + (extra || "");
  }

  // Load every event after `after`, one page at a time.
  function loadHistory(after) {
    if (!HISTORY_URL) return Promise.resolve();
    return getJSON(withAfter(HISTORY_URL, after, "&limit=" + PAGE)).then(function (page) {
      (page.events || []).forEach(apply);
      if (page.more && page.next_after > after) return loadHistory(page.next_after);
    });
  }

  var backfilling = false;
  function checkGap() {
    if (backfilling || contiguous >= lastSeq || !HISTORY_URL) return;
    backfilling = true;
    setTimeout(function () {
      if (contiguous >= lastSeq) { backfilling = false; return; }
      loadHistory(contiguous).catch(function () {}).then(function () { backfilling = false; });
    }, 1500);
  }

  var source = null, retryDelay = 1000, retryTimer = null, failures = 0, opened = false;

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    if (pendingReload) return;
    setConn(opened ? "reconnecting" : "connecting", opened ? "reconnecting\u2026" : "connecting\u2026");
    source = new EventSource(withAfter(STREAM_URL, lastSeq));
    source.onopen = function () {
      failures = 0;
      retryDelay = 1000;
      opened = true;
      setConn("connected", "live");
    };
    source.onmessage = function (msg) {
      if (conn && conn.getAttribute("data-state") !== "connected") setConn("connected", "live");
      var ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      apply(ev);
      checkGap();
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CONNECTING) {
        // The browser retries by itself and sends Last-Event-ID; the server resumes after it.
        failures++;
        setConn(navigator.onLine === false ? "offline" : "reconnecting",
          navigator.onLine === false ? "offline" : "reconnecting\u2026");
        return;
      }
      // CLOSED (e.g. an HTTP error or a proxy cut): reconnect ourselves with ?after= and back off.
      failures++;
      var wait = retryDelay;
      retryDelay = Math.min(retryDelay * 2, 30000);
      setConn(navigator.onLine === false || failures > 3 ? "offline" : "reconnecting",
        (navigator.onLine === false ? "offline" : "disconnected") + ", retrying in " + Math.round(wait / 1000) + " s");
      retryTimer = setTimeout(function () {
        loadHistory(lastSeq).then(connect, function (err) {
          if (err && err.signedOut) showSignedOut();
          else connect();
        });
      }, wait);
    };
  }

  window.addEventListener("online", function () {
    if (!source || source.readyState === EventSource.CLOSED) connect();
    else if (source.readyState === EventSource.OPEN) setConn("connected", "live");
  });
  window.addEventListener("offline", function () { setConn("offline", "offline"); });
  window.addEventListener("pagehide", function () { if (source) source.close(); });

  /* ------------------------------------------------------------------ log tools */
  var saveButton = $("[data-log-save]");
  if (saveButton && log) {
    saveButton.addEventListener("click", function () {
      var blob = new Blob([log.asText()], { type: "text/plain" });
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "deployment-" + DEPLOYMENT + "-" + STEP + ".log";
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    });
  }

  // Exposed for tests and for debugging in the browser console.
  window.amswLive = {
    lines: function () { return log ? log.lines.length : 0; },
    lastSeq: function () { return lastSeq; },
    seen: function () { return seen.size; },
    text: function () { return log ? log.asText() : ""; },
    ready: false
  };

  setConn("connecting", "connecting\u2026");
  loadHistory(0)
    .catch(function () { /* the stream replays from 0 anyway */ })
    .then(function () {
      window.amswLive.ready = true;
      if (log) log.render();
      live = true;
      connect();
    });
})();

/* Driver lease: renew it every 30 s while this page is open, and switch the page to read-only the
 * moment someone takes over (the `lease.taken_over` event on the deployment's stream, or a ping that
 * says the lease is held by someone else). Progressive enhancement: the server refuses stale POSTs. */
(function () {
  "use strict";
  var banner = document.querySelector("[data-lease]");
  if (!banner) return;
  var url = banner.getAttribute("data-lease-url");
  var layout = document.querySelector("[data-events-url]");
  var token = document.querySelector('input[name="csrf_token"]');
  var me = banner.getAttribute("data-mine") === "true";

  function readOnly(text) {
    banner.classList.add("watching");
    var p = banner.querySelector("p") || banner.appendChild(document.createElement("p"));
    p.textContent = text;
    document.querySelectorAll("fieldset.lease-scope").forEach(function (f) { f.disabled = true; });
  }

  function ping() {
    if (!me || document.hidden) return;
    fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "", "Accept": "application/json" }
    }).then(function (r) { return r.ok ? r.json() : null; }).then(function (s) {
      if (s && !s.mine && s.holder) { me = false; stop(); readOnly(s.holder + " is driving this deployment now. You are watching it read-only."); }
    }).catch(function () { /* offline: the next ping retries */ });
  }

  // The deployment's stream, reopened after it closes (a server at its cap of live streams answers
  // 503, which EventSource never retries by itself): 2 s doubling to 30 s, with jitter so the pages a
  // busy server refused do not all come back at once. It resumes after the last event seen.
  var stream = null, lastSeq = Number(banner.getAttribute("data-seq")) || 0, retryDelay = 2000, retryTimer = null;

  function listen() {
    stream = new EventSource(layout.getAttribute("data-events-url") + "?after=" + lastSeq);
    stream.onopen = function () { retryDelay = 2000; };
    stream.onmessage = function (msg) {
      var ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      if (ev.seq > lastSeq) lastSeq = ev.seq;
      if (ev.kind === "lease.taken_over" && me) {
        me = false;
        readOnly(ev.payload.to + " took over this deployment: " + ev.payload.reason + ". Your credentials were wiped; you are watching read-only.");
        stop();
      }
    };
    stream.onerror = function () {
      if (stream.readyState !== EventSource.CLOSED || !me) return; // CONNECTING: the browser retries
      stream.close();
      var wait = retryDelay / 2 + Math.random() * retryDelay / 2;
      retryDelay = Math.min(retryDelay * 2, 30000);
      retryTimer = setTimeout(listen, wait);
    };
  }

  function stop() {
    clearTimeout(retryTimer);
    if (stream) stream.close();
  }

  if (me && layout && window.EventSource) {
    listen();
    window.addEventListener("pagehide", stop);
  }
  setInterval(ping, 30000);
  document.addEventListener("visibilitychange", ping);
})();

/* firelink dashboard: live updates from the server-sent event stream, no polling, no build step.
 *
 * - One EventSource on /api/v1/events per page. An event names a job (and a run): every element
 *   with data-live-job="<job>" and a data-src is replaced by a fresh server-rendered fragment
 *   (a job's row, a job's facts), graph nodes data-graph-job="<job>" take the run's state as
 *   their colour, and data-run-state="<run id>" badges show the run's new state. Elements
 *   with data-live-run="<run id>" follow that run, data-live-any="1" (the newest runs) any run.
 * - A run page's <pre data-follow="URL"> follows the run's log on its own stream
 *   (/api/v1/runs/{id}/log with Accept: text/event-stream) and appends text as it is written.
 */
(function () {
  "use strict";
  var pending = {};

  function parse(data) {
    try { return JSON.parse(data); } catch (e) { return null; }
  }

  function field(msg, name) {
    if (!msg) return null;
    if (msg[name] != null) return msg[name];
    if (msg.run && msg.run[name] != null) return msg.run[name];
    if (msg.data && msg.data[name] != null) return msg.data[name];
    return null;
  }

  function setState(el, state) {
    // Through the attribute: an SVG element's className is not a string.
    var cls = (el.getAttribute("class") || "").replace(/(^|\s)s-[a-z_]+/g, " ").trim();
    el.setAttribute("class", (cls ? cls + " " : "") + "s-" + state);
  }

  // Replace every element whose attribute `attr` is `key` by its data-src fragment (debounced).
  function refresh(attr, key, delay) {
    var id = attr + "\u0000" + key;
    if (pending[id]) return;
    pending[id] = setTimeout(function () {
      delete pending[id];
      document.querySelectorAll("[" + attr + "]").forEach(function (el) {
        if (el.getAttribute(attr) !== key || !el.getAttribute("data-src")) return;
        fetch(el.getAttribute("data-src"), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) { if (html != null && el.parentNode) el.outerHTML = html; });
      });
    }, delay || 200);
  }

  function onRunEvent(msg) {
    var job = field(msg, "job");
    var runId = field(msg, "run_id") || field(msg, "id");
    var state = field(msg, "state");
    if (runId) refresh("data-live-run", runId);
    refresh("data-live-any", "1", 1000);
    if (job) {
      refresh("data-live-job", job);
      if (state) {
        document.querySelectorAll("[data-graph-job]").forEach(function (g) {
          if (g.getAttribute("data-graph-job") === job) {
            setState(g, state);
            var label = g.querySelector(".graph-state");
            if (label) label.textContent = state;
          }
        });
      }
    }
    if (runId && state) {
      document.querySelectorAll("[data-run-state]").forEach(function (b) {
        if (b.getAttribute("data-run-state") === runId) { b.textContent = state; setState(b, state); }
      });
    }
  }

  function connect() {
    if (!window.EventSource) return;
    var live = document.getElementById("live");
    var source = new EventSource("/api/v1/events");
    source.onopen = function () { if (live) { live.classList.add("on"); live.textContent = "live"; } };
    source.onerror = function () { if (live) { live.classList.remove("on"); live.textContent = "reconnecting"; } };
    source.onmessage = function (e) { onRunEvent(parse(e.data)); };
    // Named events (event: run.started ...) arrive as their own types.
    ["run", "run_event", "queued", "started", "succeeded", "failed", "finished", "retrying", "waiting",
     "skipped", "cancelled", "timed_out", "interrupted", "paused", "resumed"].forEach(function (name) {
      source.addEventListener(name, function (e) { onRunEvent(parse(e.data)); });
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  function follow(pre) {
    if (!window.EventSource) return;
    var source = new EventSource(pre.getAttribute("data-follow"));
    var runId = pre.getAttribute("data-run");
    function handle(msg) {
      if (!msg) return;
      if (typeof msg.log === "string") {
        var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.appendChild(document.createTextNode(msg.log));
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
      if (msg.attempt != null && pre.textContent) {
        pre.appendChild(document.createTextNode("\n── attempt " + msg.attempt + " ──\n"));
      }
      var state = msg.state || (msg.run && msg.run.state);
      if (state && runId) onRunEvent({ run_id: runId, state: state, job: pre.getAttribute("data-job") });
      if (msg.done) { source.close(); pre.setAttribute("data-done", "1"); }
    }
    var opened = false;
    source.onopen = function () {
      // A reconnection replays the log from its start: start the text again with it.
      if (opened) pre.textContent = "";
      opened = true;
    };
    source.onmessage = function (e) { handle(parse(e.data)); };
    ["log", "attempt", "state", "done"].forEach(function (name) {
      source.addEventListener(name, function (e) {
        var msg = parse(e.data);
        if (msg && typeof msg !== "object") { var o = {}; o[name] = msg; msg = o; }
        if (msg && name === "done" && msg.done == null) msg.done = true;
        handle(msg);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    document.querySelectorAll("pre[data-follow]").forEach(follow);
    var box = document.querySelector("input[data-autosubmit]");
    if (box) {
      var timer = null;
      box.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { box.form.submit(); }, 400);
      });
    }
  });
})();

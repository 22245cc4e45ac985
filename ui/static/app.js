// The app page's live parts: the log tail and the deploy progress, both
// read from streams the console proxies under /ui/apps/:app/ with the
// session cookie (the token never reaches JavaScript).
(function () {
  "use strict";
  var root = document.querySelector("[data-app]");
  if (!root) { return; }
  var app = root.getAttribute("data-app");
  var base = "/ui/apps/" + encodeURIComponent(app);

  var logs = document.getElementById("logs");
  var logState = document.getElementById("logs-state");
  // An app that is not deployed has no logs yet: the tail starts when
  // the page loads on a deployed app, or when a deploy reaches running.
  var following = false;
  var aborter = null; // ends the log stream when the page is left
  function followLogs() {
    if (following || !logs || !window.fetch || !window.TextDecoder) { return; }
    following = true;
    aborter = window.AbortController ? new AbortController() : null;
    fetch(base + "/logs?follow=true", { credentials: "same-origin", signal: aborter ? aborter.signal : undefined }).then(function (resp) {
      if (!resp.ok || !resp.body) { following = false; logState.textContent = "Logs are not available (" + resp.status + ")."; return; }
      logState.textContent = "Following…";
      var reader = resp.body.getReader();
      var dec = new TextDecoder();
      var buf = "";
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) { following = false; logState.textContent = "The log stream ended."; return; }
          buf += dec.decode(r.value, { stream: true });
          var lines = buf.split("\n");
          buf = lines.pop();
          lines.forEach(function (line) {
            if (!line) { return; }
            var text = line;
            try {
              var o = JSON.parse(line);
              text = [o.time || "", (o.proc || "") + "." + (o.instance || 0), o.line || ""].join(" ").trim();
            } catch (e) { /* a plain line */ }
            logs.appendChild(document.createTextNode(text + "\n"));
          });
          while (logs.childNodes.length > 1000) { logs.removeChild(logs.firstChild); }
          logs.scrollTop = logs.scrollHeight;
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      following = false;
      if (!left) { logState.textContent = "The log stream was interrupted."; }
    });
  }

  var progress = document.getElementById("deploy-progress");
  var es = null;
  function followDeploys() {
    if (es || !progress || !window.EventSource) { return; }
    es = new EventSource(base + "/events");
    function show(ev) {
      try {
        var d = JSON.parse(ev.data);
        var rec = d; // the app's deploy record (api.Deploy)
        progress.textContent = (rec.operation || "") + ": " + (rec.state || ev.type) + (rec.message ? " (" + rec.message + ")" : "");
        if (rec.state === "running") { followLogs(); }
      } catch (e) { progress.textContent = ev.type; }
    }
    ["pending", "deploying", "running", "failed", "undeployed", "message"].forEach(function (t) { es.addEventListener(t, show); });
  }

  // Leaving the page (for another page, or into the browser's back-forward
  // cache) closes both streams: a browser keeps only a few connections to
  // a host, and the streams of pages left behind would hold them all.
  // Coming back from that cache opens them again.
  var left = false;
  window.addEventListener("pagehide", function () {
    left = true;
    if (aborter) { aborter.abort(); aborter = null; }
    following = false;
    if (es) { es.close(); es = null; }
  });
  function start() {
    left = false;
    if (root.getAttribute("data-deployed") === "true") {
      followLogs();
    } else if (logState) {
      logState.textContent = "No logs: the app is not deployed.";
    }
    followDeploys();
  }
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted) {
      if (logs) { logs.textContent = ""; } // the tail starts again from its recent lines
      start();
    }
  });
  start();
})();

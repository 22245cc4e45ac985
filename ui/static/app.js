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
  function followLogs() {
    if (following || !logs || !window.fetch || !window.TextDecoder) { return; }
    following = true;
    fetch(base + "/logs?follow=true", { credentials: "same-origin" }).then(function (resp) {
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
    }).catch(function () { following = false; logState.textContent = "The log stream was interrupted."; });
  }

  var progress = document.getElementById("deploy-progress");
  function followDeploys() {
    if (!progress || !window.EventSource) { return; }
    var es = new EventSource(base + "/events");
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

  if (root.getAttribute("data-deployed") === "true") {
    followLogs();
  } else if (logState) {
    logState.textContent = "No logs: the app is not deployed.";
  }
  followDeploys();
})();

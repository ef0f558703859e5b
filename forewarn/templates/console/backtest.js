// forewarn's backtest page: while a run goes, ask for its progress and show it; when it
// ends, load the page again (the server draws the result). Without this script the page
// refreshes itself every 2 s instead (<noscript> meta refresh).
"use strict";
(function () {
  var box = document.getElementById("backtest-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-progress-url");
  var bar = document.getElementById("backtest-bar");
  var percent = document.getElementById("backtest-percent");
  var phase = document.getElementById("backtest-phase");
  var names = {
    queued: "waiting for the backtest before it",
    history: "reading history",
    current: "replaying the current rules",
    draft: "replaying the draft",
    report: "comparing"
  };
  var failures = 0;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (run) {
        failures = 0;
        if (run.status === "done" || run.status === "failed") {
          window.location.reload();
          return;
        }
        bar.value = run.progress;
        percent.textContent = Math.round(run.progress * 100) + " %";
        phase.textContent = names[run.phase] || run.phase;
        window.setTimeout(poll, 500);
      })
      .catch(function () {
        failures += 1;
        phase.textContent = "waiting for the server…";
        window.setTimeout(poll, Math.min(10000, 500 * Math.pow(2, failures)));
      });
  }
  window.setTimeout(poll, 300);
})();

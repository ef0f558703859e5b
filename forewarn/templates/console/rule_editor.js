// forewarn's rule editor: check the draft and run its backtest without leaving the page.
// The server does every check again when the form is saved; this only saves a round trip.
(function () {
  "use strict";
  var form = document.getElementById("rule-form");
  var button = document.getElementById("run-backtest");
  if (!form || !button) { return; }
  var rule = button.getAttribute("data-rule");
  var result = document.getElementById("backtest-result");
  var progress = document.getElementById("backtest-progress");
  var phase = document.getElementById("backtest-phase");
  var general = document.getElementById("general-errors");

  function showErrors(errors, lines) {
    form.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
    form.querySelectorAll(".invalid").forEach(function (el) { el.classList.remove("invalid"); });
    Object.keys(errors || {}).forEach(function (name) {
      var box = document.getElementById("error-" + name);
      if (box) { box.textContent = errors[name]; }
      var input = form.querySelector('[name="' + name + '"]');
      if (input) { input.classList.add("invalid"); }
    });
    general.textContent = "";
    (lines || []).forEach(function (line) {
      var div = document.createElement("div");
      div.textContent = line;
      general.appendChild(div);
    });
    general.hidden = !(lines && lines.length);
  }

  function post(url) {
    // URL-encoded, as the browser posts the form itself (the console reads no multipart).
    var body = new URLSearchParams(new FormData(form));
    return fetch(url, { method: "POST", body: body, credentials: "same-origin" });
  }

  function poll(url) {
    fetch(url, { credentials: "same-origin" }).then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    }).then(function (answer) {
      var body = answer.body;
      if (answer.status >= 400 || body.status === "failed") {
        phase.textContent = "backtest failed: " + (body.error || body.detail || answer.status);
        progress.hidden = true;
        button.disabled = false;
        return;
      }
      progress.value = body.progress || 0;
      phase.textContent = body.phase ? body.phase + "…" : "";
      if (body.status === "done") {
        progress.hidden = true;
        phase.textContent = "";
        result.innerHTML = body.html;
        document.getElementById("backtest-id").value = body.id;
        var warning = document.getElementById("budget-warning");
        var lines = document.getElementById("budget-lines");
        if (warning && lines) {
          lines.textContent = "";
          (body.exceeded || []).forEach(function (line) {
            var div = document.createElement("div");
            div.textContent = line;
            lines.appendChild(div);
          });
          warning.hidden = !(body.exceeded && body.exceeded.length);
          document.getElementById("over-budget").checked = false;
        }
        button.disabled = false;
        return;
      }
      window.setTimeout(function () { poll(url); }, 300);
    }).catch(function () {
      phase.textContent = "lost contact with the console; try again";
      button.disabled = false;
    });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    result.innerHTML = "";
    document.getElementById("backtest-id").value = "";
    phase.textContent = "checking the draft…";
    post("/rules/" + encodeURIComponent(rule) + "/backtest").then(function (response) {
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    }).then(function (answer) {
      if (answer.status === 422) {
        showErrors(answer.body.errors, answer.body.general);
        phase.textContent = "fix the draft first";
        button.disabled = false;
        return;
      }
      if (answer.status >= 400) {
        phase.textContent = answer.body.detail || "the backtest could not start";
        button.disabled = false;
        return;
      }
      showErrors({}, []);
      progress.hidden = false;
      progress.value = 0;
      poll(answer.body.poll);
    }).catch(function () {
      phase.textContent = "lost contact with the console; try again";
      button.disabled = false;
    });
  });
})();

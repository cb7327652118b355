// Lap entry without page reloads. The page also works without this script
// (plain form posts), so everything here is an enhancement.
(function () {
  "use strict";
  var form = document.getElementById("lap-form");
  if (!form) return;
  var field = document.getElementById("start_number");
  var feedback = document.getElementById("feedback");
  var recent = document.querySelector("#recent tbody");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var queue = Promise.resolve();
  var pendingConfirm = null;   // {number, runnerId} awaiting a second Enter

  function newKey() {
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  function show(kind, html) {
    feedback.hidden = false;
    feedback.className = "feedback " + kind;
    feedback.innerHTML = html;
  }

  function esc(text) {
    var d = document.createElement("div");
    d.textContent = String(text);
    return d.innerHTML;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  }

  function since(ms) {
    if (ms === null || ms === undefined) return "first lap";
    var s = Math.round(ms / 1000), m = Math.floor(s / 60);
    return (m ? m + " min " : "") + (s % 60) + " s since last lap";
  }

  function post(url, data) {
    data.append("csrf_token", csrf);
    return fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"Accept": "application/json", "X-CSRFToken": csrf}
    }).then(function (resp) {
      return resp.json().catch(function () {
        return {error: "http_" + resp.status, message: "The laptop app answered " + resp.status + "."};
      });
    });
  }

  function addRow(result) {
    var r = result.runner, tr = document.createElement("tr");
    tr.dataset.lap = result.lap.id;
    tr.innerHTML = "<td>" + clock(result.lap.time) + "</td><td>" + esc(r.start_number) +
      "</td><td>" + esc(r.name) + "</td><td>" + esc(r["class"]) + "</td><td>" +
      '<form method="post" class="inline void-form" action="/laps/' + encodeURIComponent(result.lap.id) +
      '/void"><button type="submit" class="small">Void</button></form></td>';
    recent.insertBefore(tr, recent.firstChild);
  }

  function record(number, confirm, runnerId) {
    var data = new FormData();
    data.append("start_number", number);
    data.append("client_key", newKey());
    if (confirm) data.append("confirm", "1");
    if (runnerId) data.append("runner_id", runnerId);
    show("busy", "Saving " + esc(number) + " …");
    return post(form.action, data).then(function (res) {
      if (res.lap) {
        if (!res.duplicate) addRow(res);
        show("good", '<span class="count">' + esc(res.count) + "</span> " + esc(res.runner.name) +
          " (" + esc(res.runner.start_number) + ", " + esc(res.runner["class"]) + ") – " +
          esc(since(res.since_previous_ms)));
      } else if (res.error === "too_soon") {
        pendingConfirm = {number: number, runnerId: res.runner.id};
        field.value = number;
        show("warn", esc(res.message) + " <strong>Press Enter to count it, Esc to skip.</strong>");
      } else {
        show("bad", esc(res.message || "Not recorded."));
      }
    }).catch(function () {
      show("bad", "The laptop app did not answer: lap " + esc(number) + " was NOT recorded. Type it again.");
    });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var number = field.value.trim();
    field.value = "";
    field.focus();
    if (!number) return;
    var confirm = pendingConfirm && pendingConfirm.number === number;
    var runnerId = confirm ? pendingConfirm.runnerId : null;
    pendingConfirm = null;
    queue = queue.then(function () { return record(number, confirm, runnerId); });
  });

  field.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && pendingConfirm) {
      pendingConfirm = null;
      field.value = "";
      show("info", "Skipped: nothing was recorded.");
    }
  });

  recent.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (!f.classList.contains("void-form")) return;
    ev.preventDefault();
    post(f.action, new FormData()).then(function (res) {
      if (res.error) { show("bad", esc(res.message)); return; }
      var row = f.closest("tr"), button = f.querySelector("button");
      row.classList.toggle("voided", res.voided);
      f.action = f.action.replace(/\/(void|restore)$/, res.voided ? "/restore" : "/void");
      button.textContent = res.voided ? "Restore" : "Void";
      show("info", res.voided ? "Lap voided: it no longer counts." : "Lap restored.");
      field.focus();
    });
  });
})();

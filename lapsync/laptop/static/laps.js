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
  // The page's texts in its language (laps.js_strings); English if the block is missing.
  var texts = {};
  try { texts = JSON.parse(document.getElementById("i18n").textContent); } catch (e) { texts = {}; }

  function t(key, fallback, values) {
    var text = texts[key] || fallback;
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(values[name]));
    });
    return text;
  }

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
    if (ms === null || ms === undefined) return t("first_lap", "first lap");
    var s = Math.round(ms / 1000), m = Math.floor(s / 60);
    return t("since_last_lap", "{time} since last lap", {time: (m ? m + " min " : "") + (s % 60) + " s"});
  }

  function post(url, data) {
    data.append("csrf_token", csrf);
    return fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"Accept": "application/json", "X-CSRFToken": csrf}
    }).then(function (resp) {
      return resp.json().catch(function () {
        return {error: "http_" + resp.status,
                message: t("http_error", "The laptop app answered {status}.", {status: resp.status})};
      });
    });
  }

  function addRow(result) {
    var r = result.runner, tr = document.createElement("tr");
    tr.dataset.lap = result.lap.id;
    tr.innerHTML = "<td>" + clock(result.lap.time) + "</td><td>" + esc(r.start_number) +
      "</td><td>" + esc(r.name) + "</td><td>" + esc(r["class"]) + "</td><td>" +
      '<form method="post" class="inline void-form" action="/laps/' + encodeURIComponent(result.lap.id) +
      '/void"><button type="submit" class="small">' + esc(t("void", "Void")) + "</button></form></td>";
    recent.insertBefore(tr, recent.firstChild);
  }

  function record(number, confirm, runnerId) {
    var data = new FormData();
    data.append("start_number", number);
    data.append("client_key", newKey());
    if (confirm) data.append("confirm", "1");
    if (runnerId) data.append("runner_id", runnerId);
    show("busy", esc(t("saving", "Saving {number} …", {number: number})));
    return post(form.action, data).then(function (res) {
      if (res.lap) {
        if (!res.duplicate) addRow(res);
        show("good", '<span class="count">' + esc(res.count) + "</span> " + esc(res.runner.name) +
          " (" + esc(res.runner.start_number) + ", " + esc(res.runner["class"]) + ") – " +
          esc(since(res.since_previous_ms)));
      } else if (res.error === "too_soon") {
        pendingConfirm = {number: number, runnerId: res.runner.id};
        field.value = number;
        show("warn", esc(res.message) + " <strong>" +
          esc(t("confirm_hint", "Press Enter to count it, Esc to skip.")) + "</strong>");
      } else {
        show("bad", esc(res.message || t("not_recorded", "Not recorded.")));
      }
    }).catch(function () {
      show("bad", esc(t("no_answer", "The laptop app did not answer: lap {number} was NOT recorded. " +
        "Type it again.", {number: number})));
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
      show("info", esc(t("skipped", "Skipped: nothing was recorded.")));
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
      button.textContent = res.voided ? t("restore", "Restore") : t("void", "Void");
      show("info", esc(res.voided ? t("voided", "Lap voided: it no longer counts.")
                                  : t("restored", "Lap restored.")));
      field.focus();
    });
  });
})();

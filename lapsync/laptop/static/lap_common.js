// What the lap page's scripts share (laps.js types laps, lap_voids.js voids them): the
// page's texts, escaping, times, the feedback panel and posts with the page's CSRF token.
// Loaded before both (laps.html).
window.LapPage = (function () {
  "use strict";
  var feedback = document.getElementById("feedback");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.content : "";
  var sounds = window.LapsyncSounds || {play: function () {}};
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

  function esc(text) {
    var d = document.createElement("div");
    d.textContent = String(text);
    return d.innerHTML;
  }

  // Show feedback, flash the whole area in its colour and play its tone (kind: good,
  // warn, bad, info, busy; only the first three flash and sound).
  function show(kind, html) {
    feedback.hidden = false;
    feedback.innerHTML = html;
    feedback.className = "feedback " + kind;
    if (kind === "good" || kind === "warn" || kind === "bad") {
      void feedback.offsetWidth;  // restart the flash animation for a repeat of the same kind
      feedback.classList.add("flash-" + kind);
      sounds.play(kind);
    }
  }

  // A button that takes two presses (Void, Remove): the first arms it for a few seconds, and
  // a second press sooner than READ_MS after it (a double tap, a bounce) does nothing.
  var ARM_MS = 4000, READ_MS = 300;
  function arm(button, label) {
    button.dataset.armed = String(Date.now());
    button.dataset.label = button.textContent;
    button.textContent = label;
    button.classList.add("armed");
    button.armTimer = setTimeout(function () { disarm(button); }, ARM_MS);
  }

  function disarm(button) {
    clearTimeout(button.armTimer);
    if (!button.dataset.armed) return;
    delete button.dataset.armed;
    button.textContent = button.dataset.label;
    button.classList.remove("armed");
  }

  function armedLongEnough(button) {
    return Date.now() - Number(button.dataset.armed) >= READ_MS;
  }

  // A key held down repeats: only a fresh press confirms an armed button (Enter acts on keydown).
  document.addEventListener("keydown", function (ev) {
    var target = ev.target;
    if (ev.repeat && (ev.key === "Enter" || ev.key === " ") && target.dataset && target.dataset.armed) {
      ev.preventDefault();
    }
  }, true);

  // How the last button was pressed: a finger's tap leaves the focus (no on-screen keyboard
  // popping up), and so does the keyboard's (a click with no mouse clicks: its second press
  // comes on the button).
  var pressed = {touch: false, keys: false};
  document.addEventListener("pointerdown", function (ev) { pressed.touch = ev.pointerType === "touch"; }, true);
  document.addEventListener("click", function (ev) { pressed.keys = ev.detail === 0; }, true);

  // After a button's first press (Void, Remove) or Sound, back to typing numbers: a lone Enter
  // meant for a warning (or to count the next number) must not reach that button.
  function backToField(evenAfterKeys) {
    var field = document.getElementById("start_number");
    if (field && !pressed.touch && (evenAfterKeys || !pressed.keys)) field.focus();
  }
  var soundToggle = document.getElementById("sound-toggle");
  if (soundToggle) soundToggle.addEventListener("click", function () { backToField(true); });

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  }

  // The day of a time long ago, beside its clock time ("Sun, Dec 6").
  function day(ms) {
    return new Date(ms).toLocaleDateString([], {weekday: "short", day: "numeric", month: "short"});
  }

  function duration(ms) {
    var s = Math.round(ms / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (h) return h + " h " + (m % 60) + " min";  // a relay's night: not "740 min 50 s"
    return (m ? m + " min " : "") + (s % 60) + " s";
  }

  // The same words as laps.flash_lap: "first lap" only when the count is 1.
  function since(res) {
    if (res.duplicate) return t("already_recorded", "already recorded");
    if (res.count === 1) return t("first_lap", "first lap");
    if (res.since_unknown) {
      return t("since_unknown", "time since the last lap unknown: the laptop's clock was changed");
    }
    if (res.since_previous_ms === null || res.since_previous_ms === undefined) {
      return t("previous_elsewhere", "previous lap on another laptop");
    }
    var text = t("since_last_lap", "{time} since last lap", {time: duration(res.since_previous_ms)});
    return res.previous_elsewhere ? text + " (" + t("elsewhere", "on another laptop") + ")" : text;
  }

  // POST a form (urlencoded: the server answers a lap post of this kind ahead of its framework);
  // resolve with the JSON answer (lost: true for a 5xx, whose fate is unknown),
  // reject when no answer came (connection closed, or none within timeoutMs).
  function post(url, data, timeoutMs) {
    data.append("csrf_token", csrf);
    var abort = timeoutMs && window.AbortController ? new AbortController() : null;
    var timer = abort ? setTimeout(function () { abort.abort(); }, timeoutMs) : null;
    return fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"Accept": "application/json", "X-CSRFToken": csrf},
      signal: abort ? abort.signal : undefined
    }).then(function (resp) {
      return resp.json().catch(function () {
        return {error: "http_" + resp.status,
                message: t("http_error", "The laptop app answered {status}.", {status: resp.status})};
      }).then(function (res) {
        clearTimeout(timer);
        if (resp.status >= 500) { res.lost = true; res.status = resp.status; }
        return res;
      });
    }, function (error) {
      clearTimeout(timer);
      throw error;
    });
  }

  return {
    t: t, newKey: newKey, esc: esc, show: show, clock: clock, day: day, since: since, post: post,
    arm: arm, disarm: disarm, armedLongEnough: armedLongEnough, backToField: backToField,
    // Counted by both scripts: a recent list fetched before a change of this page is stale.
    state: {changed: 0, voiding: 0}
  };
})();

// Keeps the top bar's sync state fresh on pages that never reload (lap entry), and
// says within seconds when the laptop app itself stops answering.
(function () {
  "use strict";
  var el = document.getElementById("sync-status"), said = document.getElementById("sync-said");
  if (!el || !window.fetch) { return; }
  var POLL_MS = 2000, TIMEOUT_MS = 2500;
  var busy = false, down = false;

  // Offline is the normal state at a track: calm grey, not an alarm (see _sync_status.html).
  function levelClass(state, level) {
    return "sync-status sync-" + (state === "offline" ? "calm" : level);
  }

  function announce(name) {
    document.dispatchEvent(new CustomEvent(name));
  }

  // The live region speaks when the state or its level changes, not at every poll.
  function tell(state, text) {
    if (said && said.dataset.state !== state) { said.dataset.state = state; said.textContent = text; }
  }

  function show(s) {
    tell(s.state + "/" + s.level, s.text);
    el.textContent = s.text;
    el.className = levelClass(s.state, s.level);
    el.dataset.state = s.state;
    if (down) { down = false; announce("lapsync:app-up"); }
    document.dispatchEvent(new CustomEvent("lapsync:status", {detail: s}));  // e.g. clock jumps
  }

  function fail() {
    tell("app_down", el.dataset.downText);
    el.textContent = el.dataset.downText;
    el.className = "sync-status sync-bad";
    el.dataset.state = "app_down";
    if (!down) { down = true; announce("lapsync:app-down"); }
  }

  function refresh() {
    if (busy) { return; }
    busy = true;
    var abort = window.AbortController ? new AbortController() : null;
    var timer = setTimeout(function () { if (abort) { abort.abort(); } }, TIMEOUT_MS);
    fetch(el.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin",
                            cache: "no-store", signal: abort ? abort.signal : undefined })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(show, fail)
      .then(function () { clearTimeout(timer); busy = false; });
  }

  el.className = levelClass(el.dataset.state, el.dataset.level);
  if (said) said.dataset.state = el.dataset.state + "/" + el.dataset.level;
  document.addEventListener("lapsync:lap-recorded", refresh);  // the badge follows each lap at once
  setInterval(refresh, POLL_MS);
})();

/* lapsync central, live view: poll /live/feed every few seconds and put new laps on top.
 * The server hands out commit-ordered cursors (see sync/live.py), so asking for
 * "everything after my cursor" never skips a lap that committed late.
 * No framework, no build step: this file is served as it is. */
(function () {
  "use strict";
  var table = document.getElementById("live-laps");
  var status = document.getElementById("live-status");
  var empty = document.getElementById("live-empty");
  if (!table || !window.fetch) { return; }
  var body = table.tBodies[0];
  var cursor = Number(table.dataset.cursor) || 0;
  var voidCursor = Number(table.dataset.voidCursor) || 0;
  var pollMs = Number(table.dataset.pollMs) || 2000;
  var keep = Number(table.dataset.keep) || 50;
  var stopped = false;

  function cell(row, text, className) {
    var td = row.insertCell(-1);
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) { td.className = className; }
    return td;
  }

  function nameCell(row, lap) {
    var td = row.insertCell(-1);
    if (!lap.name) { td.textContent = table.dataset.unknown; return; }
    var link = document.createElement("a");
    link.href = table.dataset.runnerUrl.replace("RUNNER_ID", encodeURIComponent(lap.runner_id));
    link.textContent = lap.name;
    td.appendChild(link);
  }

  function rowOf(lap) {
    var row = document.createElement("tr");
    row.dataset.lap = lap.id;
    if (lap.voided) { row.className = "voided"; }
    cell(row, lap.received);
    cell(row, lap.start_number === null ? "?" : lap.start_number);
    nameCell(row, lap);
    cell(row, lap["class"]);
    cell(row, lap.runner_laps, "num");
    cell(row, lap.device || lap.device_id);
    return row;
  }

  function addLaps(laps, reset) {
    if (reset) { body.textContent = ""; }
    laps.forEach(function (lap) {  // oldest first: each new one goes on top
      if (body.querySelector('tr[data-lap="' + CSS.escape(lap.id) + '"]')) { return; }
      var row = rowOf(lap);
      row.classList.add("new");
      body.insertBefore(row, body.firstChild);
    });
    while (body.rows.length > keep) { body.deleteRow(-1); }
    empty.hidden = body.rows.length > 0;
  }

  function applyVoids(voids) {
    voids.forEach(function (change) {
      var row = body.querySelector('tr[data-lap="' + CSS.escape(change.lap_id) + '"]');
      if (row) { row.classList.toggle("voided", change.voided); }
    });
  }

  function say(text) { status.textContent = text; }

  function schedule(delay) {
    if (!stopped) { window.setTimeout(poll, delay); }
  }

  function received(data) {
    addLaps(data.laps, data.reset);
    applyVoids(data.voids);
    cursor = data.cursor;
    voidCursor = data.void_cursor;
    say(status.dataset.ok.replace("{time}", new Date().toLocaleTimeString()));
    schedule(data.more ? 0 : pollMs);
  }

  function poll() {
    var url = table.dataset.feed + "?after=" + cursor + "&voids=" + voidCursor;
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (response.redirected || response.status === 401) {
          stopped = true;
          say(status.dataset.loggedOut);
          return null;
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) { if (data) { received(data); } })
      .catch(function () {
        say(status.dataset.failed);
        schedule(pollMs * 2);
      });
  }

  schedule(pollMs);
}());

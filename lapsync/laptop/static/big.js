// The big screen refreshes itself: it asks the laptop app for the latest laps every
// poll interval and redraws the table; a failed request is shown, never hidden.
(function () {
  "use strict";
  var main = document.getElementById("big");
  if (!main || !window.fetch) return;
  var body = document.querySelector("#big-laps tbody");
  var empty = document.getElementById("big-empty");
  var state = document.getElementById("big-state");
  var texts = {};
  try { texts = JSON.parse(document.getElementById("big-i18n").textContent); } catch (e) { texts = {}; }
  var busy = false;

  function cell(cls, text) {
    var td = document.createElement("td");
    td.className = cls;
    td.textContent = String(text);
    return td;
  }

  function row(lap, known) {
    var tr = document.createElement("tr");
    tr.dataset.lap = lap.id;
    if (!known[lap.id]) tr.className = "fresh";
    [["count", lap.count], ["number", lap.start_number], ["name", lap.name], ["class", lap["class"]]]
      .forEach(function (c) { tr.appendChild(cell(c[0], c[1])); });
    return tr;
  }

  function draw(data) {
    var known = {};
    Array.prototype.forEach.call(body.rows, function (tr) { known[tr.dataset.lap] = true; });
    var rows = data.laps.map(function (lap) { return row(lap, known); });
    body.replaceChildren.apply(body, rows);
    empty.hidden = rows.length > 0;
    state.textContent = "";
  }

  function refresh() {
    if (busy) return;
    busy = true;
    fetch(main.dataset.url, {headers: {Accept: "application/json"}, credentials: "same-origin", cache: "no-store"})
      .then(function (r) {
        // The app answers, with its login page: the session ended, the app is fine.
        if (r.status === 401 || (r.redirected && new URL(r.url).pathname === "/login")) {
          throw new Error("logged out");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(draw)
      .catch(function (e) {
        state.textContent = e.message === "logged out"
          ? texts.logged_out || "The login has ended: log in again on this screen to see new laps."
          : texts.down || "The laptop app is not answering";
      })
      .then(function () { busy = false; });
  }

  setInterval(refresh, Number(main.dataset.pollMs) || 1500);
})();

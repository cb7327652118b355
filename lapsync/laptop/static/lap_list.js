// The lap page's list of recent laps: rows for laps counted here, a lap's "checking…" row,
// rows for numbers left uncounted (with a button that counts them), and other helpers'
// laps and voids fetched every few seconds. laps.js types the laps; lap_voids.js voids.
//
// A row for a number left uncounted is kept in the browser's localStorage until it is counted
// or removed (a week at most): a reload, a new login after the old one ended, another tab or a
// tab opened again shows it. So is a warning or a choice on screen not answered yet, and a
// row's number whose count is on its way (until it is answered). Its key makes counting it
// from two tabs count it once. Every such row has a Remove button (two presses, as Void): a
// number nobody has any more (central gave the runner another) would otherwise stay listed
// for the week.
window.LapPage.list = (function () {
  "use strict";
  var page = window.LapPage, t = page.t, esc = page.esc, clock = page.clock;
  var recent = document.querySelector("#recent tbody");
  if (!recent) return null;
  var RECENT_ROWS = Number(recent.dataset.limit) || 30;  // as many as the page shows after a reload
  var RECENT_URL = recent.dataset.url || "/laps/recent";
  var RECENT_POLL_MS = 3000; // how often other helpers' laps and voids are fetched
  var STORE = "lapsync.uncounted";
  // The app takes a typing time up to a day ago: a row typed before this counts when clicked,
  // and says so.
  var MAX_TYPED_AGO_MS = 23 * 3600 * 1000;
  var kept = true;           // the last write to localStorage worked
  var KEEP_MS = 7 * 24 * 3600 * 1000;

  function rowFor(key) {
    return recent.querySelector('tr[data-check="' + key + '"]');
  }

  // A lap whose answer was lost keeps its place in the list as "checking…".
  function checkingRow(item) {
    if (rowFor(item.key)) return;
    var tr = document.createElement("tr");
    tr.className = "checking";
    tr.dataset.check = item.key;
    tr.innerHTML = "<td>…</td><td>" + esc(item.number) + '</td><td colspan="3">' +
      esc(t("checking_row", "checking…")) + "</td>";
    recent.insertBefore(tr, recent.firstChild);
  }

  // A lap's row as the page renders it: a Void (or Restore) button, or who voided it at central.
  function lapRow(lap) {
    var tr = document.createElement("tr"), voided = Boolean(lap.voided_at);
    tr.dataset.lap = lap.id;
    if (voided) tr.className = "voided";
    tr.innerHTML = '<td class="t" data-ms="' + Number(lap.time) + '">' + clock(lap.time) +
      "</td><td>" + esc(lap.start_number) +
      "</td><td>" + esc(lap.name) + "</td><td>" + esc(lap["class"]) + "</td><td>" +
      (lap.central ? '<span class="central-void">' + esc(lap.central) + "</span>" :
       '<form method="post" class="inline void-form" action="/laps/' + encodeURIComponent(lap.id) +
       (voided ? "/restore" : "/void") + '"><button type="submit" class="small">' +
       esc(voided ? t("restore", "Restore") : t("void", "Void")) + "</button></form>") + "</td>";
    return tr;
  }

  function addRow(result, key) {
    counted(key);
    if (recent.querySelector('tr[data-lap="' + result.lap.id + '"]')) return;
    var r = result.runner;
    place(lapRow({id: result.lap.id, time: result.lap.time, start_number: r.start_number,
                  name: r.name, "class": r["class"]}), key);
  }

  // A new row goes where its number's "checking…" row is (its place in typing order), else
  // on top; the list keeps as many rows as the page shows after a reload.
  function place(tr, key) {
    var placeholder = key && rowFor(key);
    if (placeholder) recent.replaceChild(tr, placeholder);
    else recent.insertBefore(tr, recent.firstChild);
    trim();
  }

  // The list keeps as many laps as the page shows after a reload; a number not counted
  // that a button counts stays until it is counted, however many there are (one that none
  // counts, an unknown number, goes with the laps).
  function trim() {
    var rows = recent.querySelectorAll("tr:not(.not-counted), tr.not-counted.plain");
    for (var i = rows.length - 1; i >= RECENT_ROWS; i--) rows[i].parentNode.removeChild(rows[i]);
  }

  function stored() {
    var specs;
    try { specs = JSON.parse(localStorage.getItem(STORE)) || []; } catch (e) { specs = []; }
    return specs.filter(function (spec) { return Date.now() - spec.at < KEEP_MS; });
  }

  function keep(specs) {
    try {
      localStorage.setItem(STORE, JSON.stringify(specs));
      kept = true;
    } catch (e) {
      kept = false;  // full, or blocked: the page says so where it promises to keep them
    }
  }

  function remember(spec) {
    keep(stored().filter(function (s) { return s.id !== spec.id; }).concat([spec]));
  }

  function forget(spec) {
    if (spec) keep(stored().filter(function (s) { return s.id !== spec.id; }));
  }

  // A typed number's lap is recorded: none of its kept rows (its key's) is wanted any more.
  function counted(key) {
    var specs = stored();
    if (specs.some(function (s) { return s.key === key; })) {
      keep(specs.filter(function (s) { return s.key !== key; }));
    }
  }

  // What is kept of a number not counted. One typed number keeps one entry (ITEM.spec's id)
  // as it goes from a warning or choice on screen to a row, to a count from the row.
  function specFor(item, text, runners, tooSoon, again) {
    return {id: item.spec ? item.spec.id : page.newKey(), number: String(item.number), text: text,
            tooSoon: Boolean(tooSoon), again: Boolean(again), at: Date.now(),
            typedAt: item.late || item.typedAt || Date.now(),
            key: item.key || page.newKey(),  // counted from the row at most once
            runners: (runners || []).map(function (r) {
              return {id: r.id, name: r.name, "class": r["class"], start_number: r.start_number};
            })};
  }

  // A number left uncounted whose message the next answer replaces (a burst's, a warning or
  // choice typed over, or one refused because the login ended) keeps a row in the list: why,
  // and a button to count it for its runner (too soon: asked again if it still is), for each
  // runner who shares the number, or (again: the number was never asked) for the number.
  function uncounted(item, text, runners, tooSoon, again) {
    var spec = specFor(item, text, runners, tooSoon, again);
    if (countable(spec)) remember(spec); else forget(spec);
    place(uncountedRow(spec), item.key);
  }

  // A warning or a shared number's choice on screen, not answered yet: kept as a row would be
  // (but not listed: the panel shows it), so that a reload, a closed tab or the end of the
  // login lists it with its button instead of losing it.
  function asking(item, text, runners, tooSoon) {
    var spec = specFor(item, text, runners, tooSoon, false);
    remember(spec);
    return spec;
  }

  function countable(spec) {
    return spec.runners.length > 0 || spec.again;
  }

  function uncountedRow(spec) {
    var tr = document.createElement("tr"), runners = spec.runners;
    var one = runners.length === 1 ? runners[0] : null;
    tr.className = countable(spec) ? "not-counted" : "not-counted plain";
    tr.spec = spec;
    var buttons = runners.length ? runners.map(function (r, i) {
      return button(i, spec.tooSoon ? t("count_anyway", "Count it anyway")
                                    : t("count_for", "Count for {name}", {name: r.name}));
    }) : spec.again ? [button(0, t("count_number", "Count {number}", {number: spec.number}))] : [];
    tr.innerHTML = "<td>" + clock(spec.at) + "</td><td>" + esc(spec.number) + "</td><td>" +
      (one ? esc(one.name) + "</td><td>" + esc(one["class"]) : "</td><td>") +
      '</td><td><span class="why">' + esc(spec.text) + "</span>" + oldNote(spec) + buttons.join("") +
      ' <button type="button" class="small remove-row">' + esc(t("remove", "Remove")) + "</button></td>";
    return tr;
  }

  // The number of a typed number's row not counted (by its key) while it is listed, or null.
  function listedNumber(key) {
    var rows = recent.querySelectorAll("tr.not-counted");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].spec && rows[i].spec.key === key) return rows[i].spec.number;
    }
    return null;
  }

  function tooOld(spec) {
    return Date.now() - spec.typedAt >= MAX_TYPED_AGO_MS;
  }

  // A row whose button no longer counts it at the time it was typed says so, with that time.
  function oldNote(spec) {
    if (!countable(spec) || !tooOld(spec)) return "";
    return ' <small class="too-old">' + esc(t("too_old_row", "Typed {date} {time}: too long ago " +
      "to count at the time it was typed. Its button counts it at the time of the click.",
      {date: page.day(spec.typedAt), time: clock(spec.typedAt)})) + "</small>";
  }

  // A row listed while it grows too old gets the note too.
  function markOld() {
    Array.prototype.forEach.call(recent.querySelectorAll("tr.not-counted"), function (tr) {
      var note = tr.spec && !tr.querySelector(".too-old") && oldNote(tr.spec);
      if (note) tr.querySelector(".why").insertAdjacentHTML("afterend", note);
    });
  }

  function button(index, label) {
    return ' <button type="button" class="small count-row" data-index="' + index + '">' +
      esc(label) + "</button>";
  }

  // A row whose lap was refused again goes back on top, kept as before.
  function putBack(row) {
    recent.insertBefore(row, recent.firstChild);
    if (row.spec) remember(row.spec);
    trim();
  }

  // Counting from a row: the number as typed then. It counts at the time it was typed, or,
  // typed too long ago for that, at the time of the click (late: when it was typed; laps.js
  // says so when it counted).
  recent.addEventListener("click", function (ev) {
    var remove = ev.target.closest("button.remove-row");
    if (remove) { removeRow(remove); return; }
    var button = ev.target.closest("button.count-row"), row = button && button.closest("tr");
    if (!row || !row.spec || !page.submit) return;
    var spec = row.spec, runner = spec.runners[Number(button.dataset.index)], late = tooOld(spec);
    row.parentNode.removeChild(row);  // still kept until its lap is recorded (a reload lists it)
    // Not confirmed: a lap counted meanwhile makes it too soon again, and the helper is asked.
    page.submit({number: runner ? String(runner.start_number) : spec.number, spec: spec,
                 runnerId: runner ? runner.id : undefined, fromRow: row, key: spec.key,
                 typedAt: late ? undefined : spec.typedAt, late: late ? spec.typedAt : undefined});
    page.focusField();
  });

  // Removing a row not counted takes two presses, as a void does: the first arms the button
  // (a digit typed disarms it: lap_voids.js), a second one too soon after it does nothing.
  function removeRow(button) {
    var row = button.closest("tr");
    if (!button.dataset.armed) {
      page.arm(button, t("really_remove", "Really remove?"));
      page.backToField();
      return;
    }
    if (!page.armedLongEnough(button)) return;
    page.disarm(button);
    row.parentNode.removeChild(row);
    forget(row.spec);
    // As a void, shown as a warning (flash and tone): one removed by mistake is not missed.
    page.show("warn", esc(t("removed", "Removed from the list: {number} was not counted.",
                            {number: row.spec ? row.spec.number : ""})) +
                      (page.heldNote ? page.heldNote() : ""));
    if (page.focusField) page.focusField();
  }

  // A row counted or removed in another tab of this browser leaves this tab's list too: a
  // number removed as wrong by one helper is not counted by another.
  window.addEventListener("storage", function (ev) {
    if ((ev.key !== STORE && ev.key !== null) || !kept) return;
    var ids = {};
    stored().forEach(function (spec) { ids[spec.id] = true; });
    Array.prototype.forEach.call(recent.querySelectorAll("tr.not-counted"), function (tr) {
      if (tr.spec && countable(tr.spec) && !ids[tr.spec.id]) tr.parentNode.removeChild(tr);
    });
  });

  // Other helpers on this laptop (a second screen, a tablet): their laps and voids reach
  // the list every few seconds. Never while a lap or a void is on its way, nor with an
  // answer older than this page's latest lap or void, nor over an armed Void button.
  function sameState(row, lap) {
    var central = row.querySelector(".central-void");
    return row.classList.contains("voided") === Boolean(lap.voided_at) &&
      (central ? central.textContent : null) === (lap.central || null);
  }

  function merge(laps) {
    var older = null;
    for (var i = laps.length - 1; i >= 0; i--) {  // oldest first: each goes above the one before
      var lap = laps[i], row = recent.querySelector('tr[data-lap="' + lap.id + '"]');
      if (!row) {
        row = lapRow(lap);
        if (older) recent.insertBefore(row, older); else recent.appendChild(row);
      } else if (!sameState(row, lap) && !row.querySelector("button[data-armed]")) {
        var fresh = lapRow(lap);
        recent.replaceChild(fresh, row);
        row = fresh;
      }
      older = row;
    }
    if (laps.length < RECENT_ROWS) {  // the laptop has no other laps: a row not listed is gone
      var listed = {};                // (central started the next event and it emptied them)
      laps.forEach(function (lap) { listed[lap.id] = true; });
      Array.prototype.forEach.call(recent.querySelectorAll("tr[data-lap]"), function (tr) {
        if (!listed[tr.dataset.lap]) tr.parentNode.removeChild(tr);
      });
    }
    trim();
  }

  function busy() {
    return (page.busy && page.busy()) || page.state.voiding || document.hidden;
  }

  function refreshRecent() {
    if (busy()) return;
    var asked = page.state.changed;
    fetch(RECENT_URL, {headers: {Accept: "application/json"}, credentials: "same-origin",
                       cache: "no-store"})
      .then(function (resp) {
        if (resp.status === 401) document.dispatchEvent(new CustomEvent("lapsync:logged-out"));
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) {
        if (data && data.laps && asked === page.state.changed && !busy()) merge(data.laps);
      }, function () {});
  }
  setInterval(function () { markOld(); refreshRecent(); }, RECENT_POLL_MS);

  // Times as this browser's clock reads them, like the rows this page adds; rows kept from
  // before the reload come back on top.
  Array.prototype.forEach.call(recent.querySelectorAll("td.t[data-ms]"), function (td) {
    td.textContent = clock(Number(td.dataset.ms));
  });
  var restored = stored();
  restored.forEach(function (spec) { recent.insertBefore(uncountedRow(spec), recent.firstChild); });
  trim();
  // Every number kept is one a button counts (held, too soon, shared): each is named once.
  var held = restored.map(function (spec) { return spec.number; }).filter(function (number, i, all) {
    return all.indexOf(number) === i;
  });
  if (held.length) {  // after a new login: say so where the helper looks, not below the fold
    page.show("warn", esc(t("held_waiting", "Typed before and not counted yet: {numbers}. Count " +
      "them with their buttons in the list below.", {numbers: held.join(", ")})));
  }

  return {rowFor: rowFor, checkingRow: checkingRow, addRow: addRow, uncounted: uncounted,
          asking: asking, forget: forget, putBack: putBack, listedNumber: listedNumber,
          keeping: function () { return kept; }};
})();

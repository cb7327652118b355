// Lap entry without page reloads. The page also works without this script
// (plain form posts), so everything here is an enhancement.
//
// The helper's rules, also shown on the page:
// - The number field holds only what the helper typed: the script clears it when a
//   number is sent and never writes a number into it; late answers never touch it.
// - Numbers are sent one after another in typing order (one queue).
// - A "too soon" warning for the latest number is counted only by Enter on the EMPTY
//   field (or the button in the warning), pressed once the warning could be read
//   (CONFIRM_WAIT_MS: a double Enter counts nothing twice); Esc skips it; typing anything
//   leaves it uncounted and the new number is handled as itself.
// - A start number shared by several runners shows them with keys 1..n: one of those
//   digits alone and Enter, typed by a person (not a scanner's burst), counts for that
//   runner; Esc cancels. Anything else typed (the next number) leaves the choice
//   uncounted and is handled as itself; the typed digits stay in the field meanwhile.
// - A number left uncounted whose message the next answer replaces (one of a burst, a
//   warning or a choice typed over) keeps a row in the recent list saying why, with a
//   button there that counts it (one a runner for a shared number). A warning or choice
//   still on screen is kept too, so that a reload lists it and the end of the login makes
//   it a row (and names it); so is a row's number until its count is answered.
// - A number typed after the login ended (or changed in another window, which leaves this
//   page's form token stale) is not sent: it is listed uncounted with a button (kept over a
//   reload and a new login: lap_list.js), and the page names the numbers held. The list's
//   poll notices an ended login before the next number.
// - A lost answer (the app died after recording, a timeout, a 5xx) is never "not
//   recorded": the lap shows "checking…", and once the app answers again (a cheap poll
//   with backoff) the same request goes again with the same client key, which records
//   it at most once; then the page says whether it counted. Numbers typed meanwhile wait
//   behind it and go in typing order, each with how long ago it was typed (if it waited
//   WAITED_MS or more): such a lap counts at the time it was typed, so a runner's next lap
//   typed a minute later is not "too soon".
(function () {
  "use strict";
  var form = document.getElementById("lap-form");
  if (!form) return;
  var field = document.getElementById("start_number");
  var feedback = document.getElementById("feedback");
  var page = window.LapPage, list = page.list, t = page.t, esc = page.esc, since = page.since;
  var post = page.post;
  var SCAN_GAP_MS = 25;      // a digit and its Enter closer than this are a scanner's, not a pick
  var CONFIRM_WAIT_MS = 300; // an Enter sooner than this after a warning showed does not confirm it
  var LAP_TIMEOUT_MS = 10000;  // a lap's answer later than this counts as lost (then checked)
  var WAITED_MS = 2000;      // a number queued this long before it is sent carries when it was typed
  var CHECK_FIRST_MS = 250, CHECK_MAX_MS = 2000;  // polls for the app after a lost answer
  var CHECK_FAILURES = 3;    // answered 5xx in a row before the page gives up checking
  var statusEl = document.getElementById("sync-status");
  var STATUS_URL = (statusEl && statusEl.dataset.url) || "/sync/status";
  var queue = Promise.resolve();
  var pending = 0;           // numbers sent and not answered yet
  var lastSeq = 0;           // the latest thing the helper sent
  var warning = null;        // {number, runnerId, runner, seconds}: counted by Enter on the empty field
  var choice = null;         // {number, runners, shownAt}: a digit 1..n and Enter picks
  var lastKeyAt = 0;         // when the field's last key went down (a pick is typed by a person)
  var checking = null;       // the item whose answer was lost: the queue waits for it
  var waiting = [];          // items typed and not sent yet, in typing order
  var downShown = false;     // the feedback says the app is not answering
  var appDown = false;       // the badge's poll found the app not answering
  var held = null;           // why numbers are no longer sent ("login_required", "csrf")
  var heldKeys = [];         // the typed numbers held since (keys): each listed, with its button

  // The feedback panel (lap_common.js), and this page no longer says the app is down.
  function show(kind, html) {
    downShown = false;
    page.show(kind, html);
  }

  function who(runner) {
    return esc(runner.name) + " (" + esc(runner.start_number) + ", " + esc(runner["class"]) + ")";
  }

  // Counted; a number central gave another runner (who may still wear it) warns and says
  // whom, so that the helper voids the lap if that runner passed.
  function counted(item, res) {
    page.state.changed += 1;
    list.addRow(res, item.key);
    var note = item.checks ? '<small class="check-note">' + esc(t("checked_counted",
      "Checked after the laptop app answered again: lap {number} is recorded, once.",
      {number: item.number})) + "</small>" : "";
    if (item.late) {  // a row typed too long ago: counted now, not at the time it was typed
      note += '<small class="check-note late-note">' + esc(t("counted_late", "Counted at the time " +
        "of the click: it was typed {date} {time}, too long ago to count at that time.",
        {date: page.day(item.late), time: page.clock(item.late)})) + "</small>";
    }
    var moved = res.renumbered;
    if (moved) {
      note += '<small class="check-note renumber-note">' + esc(t("renumbered", "Start number " +
        "{number} was also {name}'s until central gave them number {new}: if {name} passed, " +
        "void this lap and type {new}.", {number: res.runner.start_number, name: moved.name,
        "new": moved.start_number})) + "</small>";
    }
    show(moved ? "warn" : "good", '<span class="count">' + esc(res.count) + "</span> " + who(res.runner) +
      " – " + esc(item.checks ? t("counted", "counted") : since(res)) + note + '<small class="count-note">' +
      esc(t("count_note", "Laps of all laptops: this one and the others as last synced.")) + "</small>");
    document.dispatchEvent(new CustomEvent("lapsync:lap-recorded"));
  }

  function choiceText(number, runners) {
    return t("choice_row", "Not counted: start number {number} belongs to {n} runners",
             {number: number, n: runners.length});
  }

  function tooSoonText(seconds) {
    return t("not_counted_row", "Not counted: counted {seconds} s before", {seconds: seconds});
  }

  // A warning is for the helper to decide only while nothing newer was sent or typed.
  function latest(item) {
    return item.seq === lastSeq && field.value === "";
  }

  function warned(item, res) {
    var seconds = Math.max(0, Math.floor((res.since_previous_ms || 0) / 1000));
    if (!latest(item)) {
      list.uncounted(item, tooSoonText(seconds), [res.runner], true);
      show("warn", esc(t("warning_left", "Not counted: {name} ({number}) was counted {seconds} s ago.",
                         {name: res.runner.name, number: res.runner.start_number, seconds: seconds})));
      return;
    }
    warning = {number: item.number, runnerId: res.runner.id, runner: res.runner, seconds: seconds,
               shownAt: Date.now(), key: item.key, typedAt: item.typedAt, late: item.late,
               spec: list.asking(item, tooSoonText(seconds), [res.runner], true)};
    show("warn", esc(res.message) + ' <strong class="keys">' +
      esc(t("confirm_hint", "Press Enter to count it, Esc to skip.")) + "</strong> " +
      esc(t("next_number_hint", "Typing the next number leaves it uncounted.")) +
      ' <button type="button" class="confirm-warning">' + esc(t("count_anyway", "Count it anyway")) +
      "</button>");
  }

  function offerChoice(item, res) {
    if (!latest(item)) {
      list.uncounted(item, choiceText(item.number, res.runners), res.runners, false);
      show("bad", esc(choiceText(item.number, res.runners)) + ". " +
           esc(t("choose_below", "Choose the runner in the list below.")));
      return;
    }
    choice = {number: item.number, runners: res.runners, shownAt: Date.now(), key: item.key,
              typedAt: item.typedAt, late: item.late,
              spec: list.asking(item, choiceText(item.number, res.runners), res.runners, false)};
    var buttons = res.runners.map(function (runner, i) {
      return '<button type="button" class="pick" data-pick="' + i + '"><kbd>' + (i + 1) + "</kbd> " +
        esc(runner.name) + " (" + esc(runner["class"]) + ")</button>";
    }).join(" ");
    show("warn", esc(res.message) + ' <strong class="keys">' +
      esc(t("choose_hint", "Type 1–{n} and Enter to count for that runner, Esc to cancel. " +
            "Typing another number leaves it uncounted (listed below).", {n: res.runners.length})) +
      '</strong><span class="choices">' + buttons + "</span>");
  }

  function answered(item, res) {
    var row = list.rowFor(item.key);
    if (row && !res.lap) row.parentNode.removeChild(row);
    if (res.error === "login_required" || res.error === "csrf") {
      hold(item, res.error);
      return;
    }
    // Refused for good: a row's number stays listed and kept; a warning or choice stands for it.
    if (!res.lap && res.error !== "too_soon" && res.error !== "ambiguous_start_number") {
      if (item.fromRow) list.putBack(item.fromRow); else list.forget(item.spec);
    }
    if (res.lap) counted(item, res);
    else if (res.error === "too_soon") warned(item, res);
    else if (res.error === "ambiguous_start_number") offerChoice(item, res);
    else if (item.checks) show("bad", esc(t("checked_not_recorded", "Checked after the laptop app " +
      "answered again: lap {number} was NOT recorded.", {number: item.number})) + " " + esc(res.message || ""));
    else {
      if (!latest(item) && !item.fromRow) {
        list.uncounted(item, res.message || t("not_recorded", "Not recorded."));
      }
      show("bad", esc(res.message || t("not_recorded", "Not recorded.")));
    }
  }

  // While a lost answer is checked: which lap, and the numbers waiting behind it.
  function showChecking() {
    if (!checking) return;
    var after = waiting.map(function (item) { return item.number; }).join(", ");
    show(appDown ? "bad" : "busy", (appDown ? esc(downText()) + " " : "") +
      esc(t("checking", "Checking lap {number} …: the laptop app did not answer. The page " +
      "asks again as soon as it answers; the lap counts at most once.", {number: checking.number})) +
      (after ? '<small class="check-note">' + esc(t("waiting_after",
        "Typed since, sent in this order after it: {numbers}", {numbers: after})) + "</small>" : ""));
    downShown = appDown;
  }

  function downText() {
    return t("app_down_detail", "The laptop app is not answering. Numbers typed now wait on " +
             "this page and are sent in typing order when it answers again: keep this page " +
             "open, check the laptop and start the app again.");
  }

  // Resolve once the laptop app answers a cheap request again (polled with backoff).
  function whenAnswering() {
    return new Promise(function (resolve) {
      var delay = CHECK_FIRST_MS;
      function again() {
        delay = Math.min(delay * 2, CHECK_MAX_MS);
        setTimeout(probe, delay);
      }
      function probe() {
        fetch(STATUS_URL, {headers: {Accept: "application/json"}, credentials: "same-origin",
                           cache: "no-store"})
          .then(function (r) { if (r.ok) resolve(); else again(); }, again);
      }
      setTimeout(probe, delay);
    });
  }

  // The answer to ITEM was lost (res: a 5xx answer, or null): check, then send it again.
  function lost(item, res) {
    item.checks = (item.checks || 0) + 1;
    item.failures = res ? (item.failures || 0) + 1 : 0;
    if (item.failures >= CHECK_FAILURES) {  // the app answers, and keeps failing: say so
      checking = null;
      show("bad", esc(t("check_failed", "The laptop app keeps answering {status}: it is not known " +
        "whether lap {number} counted. Look for it in the recent laps before typing it again.",
        {status: res.status, number: item.number})));
      return null;
    }
    checking = item;
    list.checkingRow(item);
    showChecking();
    return whenAnswering().then(function () { return send(item); });
  }

  // The login ended (or changed in another window: this page's form token is stale). The
  // number is not sent: it is listed uncounted with a button (kept over a reload and a new
  // login), and so is every number typed or waiting after it.
  function hold(item, why) {
    held = why;
    leaveAsked();
    heldKeys.push(item.key);
    if (item.fromRow) list.putBack(item.fromRow);
    else list.uncounted(item, heldRowText(item, why), [], false, true);
    showHeld();
  }

  // Why a held number's row is not counted, as the panel says it.
  function heldRowText(item, why) {
    if (item.checks) return t("held_unknown", "Not known whether it counted (the login ended " +
      "while it was checked): its button counts it at most once");
    return why === "csrf" ? t("held_row_csrf", "Not counted: this page's login changed in " +
      "another window") : t("held_row", "Not counted: the login ended");
  }

  // The login ended with a warning or a choice on screen: listed as not counted, and named.
  function leaveAsked() {
    var asked = warning || choice;
    if (!asked) return;
    if (warning) leaveWarning(); else leaveChoice();
    heldKeys.push(asked.key);
  }

  // The numbers held that are still listed (one removed is not named), each once.
  function heldListed() {
    var numbers = [];
    heldKeys.forEach(function (key) {
      var number = list.listedNumber(key);
      if (number !== null && numbers.indexOf(number) < 0) numbers.push(number);
    });
    return numbers;
  }

  // What the page says while numbers are held: which, and the way to a login (HTML).
  function heldText() {
    var again = held === "csrf" ?
      esc(t("held_csrf", "This page's login changed (a login or logout in another window).")) +
        ' <a href="/">' + esc(t("reload", "Reload the page")) + "</a>" :
      esc(t("held_login", "Your login has ended.")) + ' <a href="/login?next=%2F">' +
        esc(t("log_in", "Log in")) + "</a>";
    var heldNumbers = heldListed(), numbers = {numbers: heldNumbers.join(", ")};
    return esc(!heldNumbers.length ? t("held_none", "Log in again before the next number: " +
      "numbers typed until then are listed below, not counted.") : list.keeping() ?
      t("held_numbers", "Not counted: {numbers}. They are listed below: count them there once " +
        "you are logged in again.", numbers) :
      t("held_not_kept", "Not counted: {numbers}. Write them down: this browser cannot keep " +
        "them over a new login.", numbers)) + " " + again;
  }

  function showHeld() {
    show("bad", heldText());
  }

  function send(item) {
    var data = new URLSearchParams();
    waiting = waiting.filter(function (other) { return other !== item; });
    if (held) return hold(item, held);
    data.append("start_number", item.number);
    data.append("client_key", item.key);
    // A number that waited here for the app (not answering, or far behind) counts at the
    // time it was typed. A short wait in the queue does not count: the lap before it got
    // the time it reached the app, so its own typing time could fall before that one.
    var waited = Date.now() - item.typedAt;
    if (waited >= WAITED_MS) data.append("typed_ms_ago", String(waited));
    if (item.confirm) data.append("confirm", "1");
    if (item.runnerId) data.append("runner_id", item.runnerId);
    if (item.seq === lastSeq && !item.checks) show("busy", esc(t("saving", "Saving {number} …", {number: item.number})));
    return post(form.action, data, LAP_TIMEOUT_MS).then(function (res) {
      if (res.lost) return lost(item, res);
      if (checking === item) checking = null;
      answered(item, res);
    }, function () { return lost(item, null); });
  }

  function settle() {
    pending -= 1;
    form.dataset.pending = String(pending);
  }

  function submit(item) {
    item.seq = ++lastSeq;
    // One key for every try of a typed number (a retry, its warning, choice or row): the app
    // records it at most once.
    item.key = item.key || page.newKey();
    item.typedAt = item.typedAt || Date.now();  // a row's number: when it was typed first
    pending += 1;
    form.dataset.pending = String(pending);
    waiting.push(item);
    showChecking();
    queue = queue.then(function () { return send(item); }).then(settle, settle);
  }

  function leaveWarning() {
    if (!warning) return;
    var w = warning;
    warning = null;
    list.uncounted(w, tooSoonText(w.seconds), [w.runner], true);
    show("info", esc(t("warning_left", "Not counted: {name} ({number}) was counted {seconds} s ago.",
                       {name: w.runner.name, number: w.runner.start_number, seconds: w.seconds})));
  }

  function confirmWarning() {
    var w = warning;
    warning = null;
    submit({number: w.number, confirm: true, runnerId: w.runnerId, key: w.key, typedAt: w.typedAt,
            late: w.late, spec: w.spec});
  }

  function skip(message) {
    list.forget((warning || choice).spec);  // the helper said no: nothing to keep
    warning = null;
    choice = null;
    show("info", esc(message));
  }

  function pick(index) {
    var c = choice;
    choice = null;
    submit({number: c.number, runnerId: c.runners[index].id, key: c.key, typedAt: c.typedAt,
            late: c.late, spec: c.spec});
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    enter();
  });

  // Enter: the typed number goes; on the empty field it confirms a warning that has shown
  // long enough to be read; one digit of a shared number's choice, typed by a person,
  // picks that runner.
  function enter() {
    var number = field.value.trim();
    field.value = "";
    field.focus();
    if (!number) {
      if (warning && Date.now() - warning.shownAt >= CONFIRM_WAIT_MS) confirmWarning();
      return;
    }
    warning = null;
    var index = /^[1-9]$/.test(number) ? Number(number) - 1 : -1;
    if (choice && index < choice.runners.length && index >= 0
        && Date.now() - lastKeyAt >= SCAN_GAP_MS && lastKeyAt - choice.shownAt >= CONFIRM_WAIT_MS) {
      pick(index);
      return;
    }
    if (choice) leaveChoice();
    submit({number: number});
  }

  function leaveChoice() {
    var c = choice;
    choice = null;
    list.uncounted(c, choiceText(c.number, c.runners), c.runners, false);
    show("info", esc(choiceText(c.number, c.runners)));
  }

  field.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") lastKeyAt = Date.now();
    if (ev.key === "Escape" && choice) skip(t("choice_cancelled", "No runner chosen: nothing was recorded."));
    else if (ev.key === "Escape" && warning) skip(t("skipped", "Skipped: nothing was recorded."));
  });

  // Typing over a choice: the choice stays while the field could still be one of its
  // digits; a longer number, or another digit, leaves it uncounted.
  field.addEventListener("input", function () {
    if (warning && field.value !== "") leaveWarning();
    var typed = field.value.trim();
    if (choice && typed !== "" && !(/^[1-9]$/.test(typed) && Number(typed) <= choice.runners.length)) {
      leaveChoice();
    }
  });

  feedback.addEventListener("click", function (ev) {
    var button = ev.target.closest("button");
    if (!button) return;
    if (button.classList.contains("confirm-warning") && warning) confirmWarning();
    else if (button.dataset.pick && choice) pick(Number(button.dataset.pick));
    field.focus();
  });

  // Digits typed while a button has the focus (a tap on Void or Sound just before a scan)
  // go to the number field (lap_voids.js disarms an armed Void): the scan's Enter then
  // counts its lap instead of voiding one or toggling the sound.
  document.addEventListener("keydown", function (ev) {
    var active = document.activeElement;
    if (!/^[0-9]$/.test(ev.key) || ev.ctrlKey || ev.altKey || ev.metaKey || active === field
        || (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) return;
    ev.preventDefault();
    field.focus();
    lastKeyAt = Date.now();
    field.value += ev.key;
    field.dispatchEvent(new Event("input", { bubbles: true }));
  });

  document.addEventListener("lapsync:logged-out", function () {  // the list's poll found out
    if (held) return;
    held = "login_required";
    leaveAsked();
    showHeld();
  });

  page.submit = function (item) {
    if (warning) leaveWarning();
    if (choice) leaveChoice();
    submit(item);
  };
  page.busy = function () { return pending || checking; };
  page.focusField = function () { field.focus(); };
  // A row removed while numbers are held: the page still says why, and where to log in.
  page.heldNote = function () { return held ? " " + heldText() : ""; };

  document.addEventListener("lapsync:app-down", function () {
    appDown = true;
    if (checking) { showChecking(); return; }
    show("bad", esc(downText()));
    downShown = true;
  });
  document.addEventListener("lapsync:app-up", function () {
    appDown = false;
    if (checking) showChecking();  // its answer follows at once: not "answering again" over it
    else if (downShown) show("info", esc(t("app_back", "The laptop app is answering again.")));
  });

  // A clock jump the laptop noticed: shown until the helper presses OK (sync status poll).
  var notice = document.getElementById("clock-notice");
  function showJumps(jumps) {
    if (!notice || !jumps || !jumps.length) return;
    notice.querySelector(".clock-text").textContent = jumps.map(function (j) { return j.text; }).join(" ");
    notice.querySelector("input[name=ids]").value = jumps.map(function (j) { return j.id; }).join(" ");
    notice.hidden = false;
  }
  document.addEventListener("lapsync:status", function (ev) { showJumps(ev.detail.clock_jumps); });
  if (notice) {
    notice.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var data = new URLSearchParams();
      data.append("ids", notice.querySelector("input[name=ids]").value);
      notice.hidden = true;
      post(notice.querySelector("form").action, data).then(function () {}, function () {});
      field.focus();
    });
  }
  form.dataset.pending = "0";
})();

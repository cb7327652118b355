// Typing sponsor cards without a mouse (/sponsors/entry). The start number finds the
// runner (the answer to an older number is ignored once a newer one is typed); Enter
// moves to the next field and, from a line's last field, to the next line (one is
// added when needed); Enter on an empty sponsor name saves the card, all lines or none,
// and goes back to the start number for the next card. In the kind field r or l means
// per lap, k per km, f fixed. Without JavaScript the same forms work by posting.
(function () {
  "use strict";
  var root = document.getElementById("pledge-entry");
  if (!root) return;
  var number = document.getElementById("start-number");
  var numberForm = document.getElementById("number-form");
  var form = document.getElementById("lines-form");
  var lines = document.getElementById("lines");
  var runnerId = document.getElementById("runner-id");
  var shown = document.getElementById("runner-shown");
  var error = document.getElementById("runner-error");
  var pledges = document.getElementById("runner-pledges");
  var status = document.getElementById("entry-status");
  var linesError = document.getElementById("lines-error");
  var csrf = document.querySelector("meta[name=csrf-token]").content;
  var KINDS = { r: "per_lap", l: "per_lap", k: "per_km", f: "fixed" };
  var asked = 0, foundFor = runnerId.value ? number.value.trim() : null, enterWaiting = false;
  var saving = false;

  function say(node, text) {
    node.textContent = text || "";
    node.hidden = !text;
  }

  function showRunner(body) {
    var r = body.runner;
    runnerId.value = r.id;
    say(error, "");
    say(shown, r.start_number + " – " + r.name + " (" + r["class"] + ")");
    pledges.textContent = "";
    body.pledges.forEach(function (p) {
      var li = document.createElement("li");
      li.textContent = p.sponsor_name + ": " + p.rate + " " + p.kind + " → " + p.amount;
      pledges.appendChild(li);
    });
  }

  function forget(message) {
    runnerId.value = "";
    foundFor = null;
    say(shown, "");
    pledges.textContent = "";
    say(error, message);
  }

  function firstField() {
    return lines.querySelector("[data-field=sponsor_name]");
  }

  function lookup() {
    var text = number.value.trim();
    var mine = ++asked;
    if (!/^[0-9]{1,6}$/.test(text)) {
      forget(text ? root.dataset.badNumber : "");
      return;
    }
    fetch(root.dataset.lookup + "?number=" + encodeURIComponent(text),
          { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (answer) {
        if (mine !== asked) return;  // a newer number was typed meanwhile
        if (!answer.ok) { forget(answer.body.message); enterWaiting = false; return; }
        showRunner(answer.body);
        foundFor = text;
        if (enterWaiting) { enterWaiting = false; firstField().focus(); }
      })
      .catch(function () { if (mine === asked) forget(root.dataset.offline); });
  }

  function newLine() {
    var all = lines.querySelectorAll(".pledge-line");
    var last = all[all.length - 1];
    var copy = last.cloneNode(true);
    var index = all.length;
    copy.setAttribute("data-line", index);
    copy.querySelector("legend").textContent = last.querySelector("legend").textContent.replace(/\d+/, index + 1);
    copy.querySelectorAll("[data-field]").forEach(function (field) {
      field.name = field.getAttribute("data-field") + "_" + index;
      if (field.tagName === "SELECT") field.selectedIndex = 0; else field.value = "";
      field.removeAttribute("aria-invalid");
    });
    copy.querySelector(".line-errors").textContent = "";
    lines.appendChild(copy);
    return copy;
  }

  function clearCard() {
    var all = lines.querySelectorAll(".pledge-line");
    all.forEach(function (line) {
      line.querySelectorAll("[data-field]").forEach(function (field) {
        if (field.tagName === "SELECT") field.selectedIndex = 0; else field.value = "";
        field.removeAttribute("aria-invalid");
      });
      line.querySelector(".line-errors").textContent = "";
    });
    say(linesError, "");
  }

  function showErrors(byLine) {
    var first = null;
    Object.keys(byLine).forEach(function (index) {
      var line = lines.querySelector(".pledge-line[data-line='" + index + "']");
      if (!line) return;
      var texts = [];
      Object.keys(byLine[index]).forEach(function (key) {
        var field = line.querySelector("[data-field=" + key + "]");
        if (field) { field.setAttribute("aria-invalid", "true"); first = first || field; }
        texts.push(byLine[index][key]);
      });
      line.querySelector(".line-errors").textContent = texts.join(" ");
    });
    if (first) first.focus();
  }

  function filled() {
    return Array.prototype.some.call(lines.querySelectorAll("[data-field]"), function (field) {
      return field.tagName !== "SELECT" && field.value.trim();
    });
  }

  function nextCard(message) {
    clearCard();
    forget("");
    number.value = "";
    say(status, message);
    number.focus();
  }

  function save() {
    if (saving) return;
    if (!filled()) { nextCard(""); return; }
    if (!runnerId.value) { say(linesError, root.dataset.badNumber); number.focus(); return; }
    saving = true;
    lines.querySelectorAll("[aria-invalid]").forEach(function (f) { f.removeAttribute("aria-invalid"); });
    lines.querySelectorAll(".line-errors").forEach(function (p) { p.textContent = ""; });
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { Accept: "application/json", "X-CSRFToken": csrf } })
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (answer) {
        saving = false;
        if (answer.ok) { nextCard(answer.body.message); return; }
        say(linesError, answer.body.message);
        if (answer.body.lines) showErrors(answer.body.lines);
      })
      .catch(function () { saving = false; say(linesError, root.dataset.offline); });
  }

  number.addEventListener("input", function () {
    say(status, "");
    enterWaiting = false;  // an Enter pressed on an earlier number does not carry over
    if (number.value.trim() !== foundFor) {
      runnerId.value = "";
      lookup();
    }
  });

  numberForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (foundFor !== null && foundFor === number.value.trim() && runnerId.value) {
      firstField().focus();
    } else {
      enterWaiting = true;
      lookup();
    }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    save();
  });

  lines.addEventListener("keydown", function (event) {
    var field = event.target;
    var key = field.getAttribute && field.getAttribute("data-field");
    if (!key) return;
    if (key === "kind" && event.key.length === 1 && KINDS[event.key.toLowerCase()]) {
      event.preventDefault();
      field.value = KINDS[event.key.toLowerCase()];
      return;
    }
    if (event.key !== "Enter") return;
    event.preventDefault();
    if (key === "sponsor_name" && !field.value.trim()) { save(); return; }
    var line = field.closest(".pledge-line");
    var fields = line.querySelectorAll("[data-field]");
    var at = Array.prototype.indexOf.call(fields, field);
    if (at < fields.length - 1) { fields[at + 1].focus(); return; }
    var next = line.nextElementSibling || newLine();
    next.querySelector("[data-field=sponsor_name]").focus();
  });
})();

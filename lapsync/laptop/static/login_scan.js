// The laptop's login page: a bib scanned into the Name field is a start number, not a name.
// A USB scanner types digits and Enter within a few milliseconds; no person does (a name
// may be all digits, typed by hand it logs in as before). The number is kept as one typed
// after the login ended is (localStorage "lapsync.uncounted", read by lap_list.js): after
// the login the lap page lists it with its button, to count at the time it was scanned.
// The Name field keeps what the helper typed before the scan, and the focus.
(function () {
  "use strict";
  var name = document.querySelector('form input[name="name"]');
  if (!name) return;
  var STORE = "lapsync.uncounted";
  var SCAN_GAP_MS = 50;   // keys closer than this, Enter included, are a scanner's
  var MAX_DIGITS = 12;    // as the lap page's field takes
  var texts = {};
  try { texts = JSON.parse(document.getElementById("login-scan-texts").textContent); } catch (e) { texts = {}; }
  var burst = "", lastAt = -Infinity, kept = [], saved = true, message = null;

  function t(key, fallback, values) {
    var text = texts[key] || fallback;
    Object.keys(values).forEach(function (k) { text = text.split("{" + k + "}").join(values[k]); });
    return text;
  }

  function newKey() {  // as lap_common.js makes a typed number's key
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  // Store the number as the lap page's row of a number held while logged out; say if it failed.
  function store(number, at) {
    var spec = {id: newKey(), number: number, text: t("row", "Not counted: scanned on the login page", {}),
                tooSoon: false, again: true, at: at, typedAt: at, key: newKey(), runners: []};
    try {
      var specs = JSON.parse(localStorage.getItem(STORE)) || [];
      localStorage.setItem(STORE, JSON.stringify(specs.concat([spec])));
      return true;
    } catch (e) {
      return false;  // full, or blocked: the helper is told to write it down
    }
  }

  function say() {
    if (!message) {
      message = document.createElement("p");
      message.id = "kept-numbers";
      message.className = "feedback warn";
      message.setAttribute("role", "alert");
      name.form.parentNode.insertBefore(message, name.form);
    }
    var numbers = kept.join(", ");
    message.textContent = !saved ? t("not_kept", "Not counted: {numbers}. Write them down: this " +
      "browser cannot keep them over a new login.", {numbers: numbers}) : kept.length === 1 ?
      t("kept_one", "Number {number} is kept: log in to count it.", {number: numbers}) :
      t("kept_many", "Numbers {numbers} are kept: log in to count them.", {numbers: numbers});
    if (window.LapsyncSounds) window.LapsyncSounds.play("warn");
  }

  // The scan's digits are the end of the field (the helper may have begun the name); a
  // single digit only when it is all the field holds (a person's last digit and a quick Enter).
  function scanned() {
    var value = name.value;
    return burst.length <= MAX_DIGITS && value.slice(-burst.length) === burst &&
      (burst.length > 1 || value === burst) &&
      name.selectionStart === value.length && name.selectionEnd === value.length;
  }

  // Gaps by the keys' own times (when the keyboard sent them), not by when the page got round
  // to them: a busy page handles a scanner's Enter late.
  name.addEventListener("keydown", function (ev) {
    var quick = ev.timeStamp - lastAt < SCAN_GAP_MS;
    lastAt = ev.timeStamp;
    if (ev.key === "Enter") {
      if (quick && burst && scanned()) {
        ev.preventDefault();  // not a login: the form is not sent, the focus stays here
        name.value = name.value.slice(0, -burst.length);
        kept.push(burst);
        saved = store(burst, Date.now()) && saved;
        say();
      }
      burst = "";
    } else if (/^[0-9]$/.test(ev.key) && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
      burst = (quick ? burst : "") + ev.key;
    } else {
      burst = "";
    }
  });
})();

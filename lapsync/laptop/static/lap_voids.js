// The Void and Restore buttons of the lap page's recent list (the list itself: laps.js).
// Void takes two presses, so that a stray tap or a scan's Enter never voids a lap.
(function () {
  "use strict";
  var list = document.querySelector("#recent tbody"), field = document.getElementById("start_number");
  if (!list || !field || !window.LapPage) return;
  var page = window.LapPage, t = page.t, esc = page.esc, show = page.show, post = page.post;
  var tapped = false; // the last press was a finger's: no focus on the field (no keyboard popping up)

  var arm = page.arm, disarm = page.disarm;

  function voidAnswered(f, res) {
    var row = f.closest("tr"), button = f.querySelector("button");
    page.state.changed += 1;
    disarm(button);
    if (res.error === "central_decision") {
      f.parentNode.replaceChild(document.createTextNode(res.message), f);
      show("bad", esc(res.message));
      return;
    }
    if (res.error) { show("bad", esc(res.message)); return; }
    row.classList.toggle("voided", res.voided);
    f.action = f.action.replace(/\/(void|restore)$/, res.voided ? "/restore" : "/void");
    button.textContent = res.voided ? t("restore", "Restore") : t("void", "Void");
    // A void is shown as a warning (flash and tone): one made by mistake is not missed.
    show(res.voided ? "warn" : "info", esc(res.voided ? t("voided", "Lap voided: it no longer counts.")
                                                    : t("restored", "Lap restored.")));
    document.dispatchEvent(new CustomEvent("lapsync:lap-recorded"));
    if (!tapped) field.focus();  // back to typing numbers
  }

  list.addEventListener("submit", function (ev) {
    var f = ev.target, button = f.querySelector("button");
    if (!f.classList.contains("void-form")) return;
    ev.preventDefault();
    var voids = /\/void$/.test(f.action), data = new URLSearchParams();
    // Void takes two presses (lap_common.js: arm): a double tap does not void.
    if (voids && !button.dataset.armed) {
      arm(button, t("really_void", "Really void?"));
      page.backToField();
      return;
    }
    if (voids && !page.armedLongEnough(button)) return;
    if (voids) data.append("confirm", "1");  // the second press: void, do not ask again
    page.state.voiding += 1;
    post(f.action, data).then(function (res) { page.state.voiding -= 1; voidAnswered(f, res); }, function () {
      page.state.voiding -= 1;
      disarm(button);
      show("bad", esc(t("app_down", "The laptop app is not answering")));
    });
  });

  list.addEventListener("pointerdown", function (ev) { tapped = ev.pointerType === "touch"; });

  // A digit typed (a scan, the next number) disarms every armed button: its Enter counts a lap.
  document.addEventListener("keydown", function (ev) {
    if (/^[0-9]$/.test(ev.key) && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
      Array.prototype.forEach.call(list.querySelectorAll("button[data-armed]"), disarm);
    }
  });
})();

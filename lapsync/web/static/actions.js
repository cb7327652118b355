// Page actions of both apps without inline script (their Content-Security-Policy runs
// none): a button with data-action="print" prints the page; a link to "#back" goes back
// in the browser's history (error pages' "Go back").
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-action='print'], a[href='#back']") : null;
    if (!target) return;
    event.preventDefault();
    if (target.getAttribute("data-action") === "print") {
      window.print();
    } else {
      window.history.back();
    }
  });
})();

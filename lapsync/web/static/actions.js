// Page actions of both apps without inline script (their Content-Security-Policy runs
// none): a button with data-action="print" prints the page; a link to "#back" goes back
// in the browser's history (error pages' "Go back"); a button with data-action="copy"
// copies the text of the element its data-copy selector names (a token, a connect code)
// and then says data-copied. Copy buttons come hidden and show only where this script runs.
// A flash message after a form's redirect gets the focus (below).
(function () {
  "use strict";

  // Select the element's text and copy it the old way (no Clipboard API off https);
  // if even that fails, the text stays selected for Ctrl+C.
  function selectAndCopy(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function copy(button) {
    var element = document.querySelector(button.getAttribute("data-copy"));
    if (!element) return;
    var text = element.textContent.trim();
    var done = function () {
      button.textContent = button.getAttribute("data-copied") || button.textContent;
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        if (selectAndCopy(element)) done();
      });
    } else if (selectAndCopy(element)) {
      done();
    }
  }

  document.querySelectorAll("[data-action='copy'][hidden]").forEach(function (button) {
    button.hidden = false;
  });

  // A page that says what an action did (a flash after the form's redirect) puts the focus
  // on that message, unless a field asks for it: a screen reader reads it, and the next
  // Tab goes on into the page instead of through the menu again.
  // A refusal far down a long page (data-focus) is brought into view the same way.
  var said = document.querySelector("main > .flash, main [data-focus]");
  if (said && !document.querySelector("[autofocus]") && !window.location.hash) {
    said.tabIndex = -1;
    said.focus({preventScroll: !said.hasAttribute("data-focus")});
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-action='print'], [data-action='copy'], a[href='#back']") : null;
    if (!target) return;
    event.preventDefault();
    var action = target.getAttribute("data-action");
    if (action === "print") {
      window.print();
    } else if (action === "copy") {
      copy(target);
    } else {
      window.history.back();
    }
  });
})();

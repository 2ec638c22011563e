// mailgate admin: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Ask before destructive buttons (the server checks again where it matters).
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-confirm]") : null;
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Copy a freshly issued token.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
      });
    }
  });

  // Pages of accounts still connecting or indexing reload themselves, unless the admin has
  // started typing into a form on them.
  var seconds = parseInt(document.body.getAttribute("data-autorefresh") || "0", 10);
  if (seconds > 0) {
    var touched = false;
    document.addEventListener("input", function () { touched = true; });
    document.addEventListener("focusin", function (event) {
      if (event.target.matches("input, select, textarea")) touched = true;
    });
    window.setTimeout(function () {
      if (!touched && !document.querySelector("details[open]")) window.location.reload();
    }, seconds * 1000);
  }
})();

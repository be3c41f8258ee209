// The officer console's only script of its own (htmx does the rest).
// Shows an upload's progress on the Import page; the page works without it.
(function () {
  "use strict";
  document.addEventListener("htmx:xhr:progress", function (evt) {
    var bar = document.getElementById("import-progress");
    if (!bar || !evt.detail || !evt.detail.lengthComputable) { return; }
    bar.max = evt.detail.total;
    bar.value = evt.detail.loaded;
    var text = document.getElementById("import-progress-text");
    if (text) { text.textContent = Math.round((100 * evt.detail.loaded) / evt.detail.total) + " %"; }
  });
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var bar = document.getElementById("import-progress");
    if (bar && evt.detail.elt && evt.detail.elt.id === "import-form") { bar.hidden = false; bar.value = 0; }
  });
})();

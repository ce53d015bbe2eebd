// Sortable leaderboard tables and click-to-unblur images. No dependencies, no network, works from file://.
(function () {
  "use strict";
  function value(cell, type) {
    var raw = cell ? cell.getAttribute("data-sort") : "";
    if (type === "number") {
      if (raw === null || raw === "") return null;
      var n = parseFloat(raw);
      return isNaN(n) ? null : n;
    }
    return raw || "";
  }
  function sortBy(table, index, type, th) {
    var current = th.getAttribute("aria-sort");
    var dir = current === "ascending" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a.cells[index], type), y = value(b.cells[index], type);
      if (x === null && y === null) return 0;
      if (x === null) return 1;   // unmeasured cells always last
      if (y === null) return -1;
      if (x < y) return -dir;
      if (x > y) return dir;
      return 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board:not(.single)"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () { sortBy(table, index, th.getAttribute("data-type"), th); });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("img.blurred"), function (img) {
    function reveal() { img.classList.remove("blurred"); img.removeAttribute("title"); }
    img.addEventListener("click", reveal);
    img.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") reveal(); });
  });
})();

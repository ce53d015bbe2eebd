// Sortable, filterable leaderboard tables and click-to-unblur images. No dependencies, no network, works from file://.
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
  // Row filters above each table: text (name or method), label, and whether to show the controls.
  Array.prototype.forEach.call(document.querySelectorAll(".filters"), function (box) {
    var table = document.querySelector('table.board[data-task="' + box.getAttribute("data-for") + '"]');
    if (!table) return;
    var text = box.querySelector('[data-filter="text"]'), label = box.querySelector('[data-filter="label"]');
    var controls = box.querySelector('[data-filter="controls"]'), count = box.querySelector('[data-filter="count"]');
    function apply() {
      var q = text ? text.value.trim().toLowerCase() : "", want = label ? label.value : "", shown = 0;
      var rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (r) {
        var ok = (!q || (r.getAttribute("data-text") || "").indexOf(q) !== -1) &&
                 (!want || r.getAttribute("data-label") === want) &&
                 (!controls || controls.checked || r.getAttribute("data-control") !== "yes");
        r.classList.toggle("filtered", !ok);
        if (ok) shown += 1;
      });
      if (count) count.textContent = shown + " of " + rows.length + " rows";
    }
    [text, label, controls].forEach(function (el) {
      if (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); }
    });
    apply();
  });
  Array.prototype.forEach.call(document.querySelectorAll("img.blurred"), function (img) {
    function reveal() { img.classList.remove("blurred"); img.removeAttribute("title"); }
    img.addEventListener("click", reveal);
    img.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") reveal(); });
  });
})();

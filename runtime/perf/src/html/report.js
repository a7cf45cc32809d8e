// The HTML report's script (runtime/perf/src/html.rs): draws the functions
// table and the selected function's latency histogram from the JSON block
// #ax-report-data, sorts and filters the table, and puts a search box in
// front of inferno's flame graph search. Columns come from the data
// (`columns`: key, label, kind, help); nothing here names one except the
// default sort and the percentile marks of the histogram.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ax-report-data").textContent);
  var columns = data.columns, rows = data.rows;
  var table = document.getElementById("ax-functions-table");
  var filterBox = document.getElementById("ax-filter");
  var sortColumn = Math.max(0, indexOf(data.sort));
  var descending = true;
  var selected = rows.length ? 0 : -1;
  var order = [];
  // Rows drawn at once: the sort and the filter cover every row, the table
  // shows the first ROWS_SHOWN of them, and ROWS_SHOWN more at each ask
  // (a table of 10 000 rows takes seconds to lay out on a small machine).
  var ROWS_SHOWN = 500;
  var limit = ROWS_SHOWN;
  var shown = document.getElementById("ax-shown");

  function indexOf(key) {
    for (var i = 0; i < columns.length; i++) if (columns[i].key === key) return i;
    return -1;
  }
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function three(x) {
    return x >= 99.95 ? x.toFixed(0) : x >= 9.995 ? x.toFixed(1) : x.toFixed(2);
  }
  function duration(ns) {
    var units = [[1, "ns"], [1e3, "µs"], [1e6, "ms"], [1e9, "s"]], i = 0;
    while (i + 1 < units.length && ns / units[i][0] >= 999.5) i++;
    return three(ns / units[i][0]) + " " + units[i][1];
  }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0, v = Math.abs(n);
    while (v >= 1024 && i + 1 < units.length) { v /= 1024; i++; }
    return (n < 0 ? "-" : "") + (i === 0 ? v : v.toFixed(1)) + " " + units[i];
  }
  function count(n) {
    if (n < 1000) return String(n);
    var units = [[1e3, "k"], [1e6, "M"], [1e9, "G"]], i = 0;
    while (i + 1 < units.length && n / units[i + 1][0] >= 1) i++;
    return three(n / units[i][0]) + units[i][1];
  }
  var formats = {
    text: function (v) { return v; },
    count: count,
    duration: duration,
    share: function (v) { return (100 * v).toFixed(1) + "%"; },
    bytes: bytes,
  };
  function cell(value, kind) {
    return value === null || value === undefined ? "-" : (formats[kind] || String)(value);
  }

  function header() {
    var html = "<tr>";
    columns.forEach(function (c, i) {
      var sort = i === sortColumn ? (descending ? "descending" : "ascending") : "none";
      html += '<th data-column="' + i + '" title="' + escapeHtml(c.help) + '" aria-sort="' + sort + '"' +
        (c.kind === "text" ? ' class="ax-text"' : "") + ">" + escapeHtml(c.label) + "</th>";
    });
    table.tHead.innerHTML = html + "</tr>";
  }

  function sortOrder() {
    var c = sortColumn, text = columns[c].kind === "text", sign = descending ? -1 : 1;
    var needle = filterBox ? filterBox.value.toLowerCase() : "";
    var name = indexOf("name"), location = indexOf("location");
    order = [];
    for (var i = 0; i < rows.length; i++) {
      if (!needle || String(rows[i][name]).toLowerCase().indexOf(needle) >= 0 ||
          String(rows[i][location]).toLowerCase().indexOf(needle) >= 0) order.push(i);
    }
    order.sort(function (a, b) {
      var x = rows[a][c], y = rows[b][c];
      if (x === null || y === null) return x === y ? a - b : x === null ? 1 : -1; // unknown last
      var d = text ? String(x).localeCompare(String(y)) : x - y;
      return d === 0 ? a - b : sign * d;
    });
  }

  function body() {
    sortOrder();
    var parts = new Array(Math.min(order.length, limit));
    for (var n = 0; n < parts.length; n++) {
      var i = order[n], row = rows[i], html = '<tr data-row="' + i + '"' + (i === selected ? ' class="ax-selected"' : "") + ">";
      for (var c = 0; c < columns.length; c++) {
        var kind = columns[c].kind;
        html += (kind === "text" ? '<td class="ax-text">' : "<td>") + escapeHtml(cell(row[c], kind)) + "</td>";
      }
      parts[n] = html + "</tr>";
    }
    table.tBodies[0].innerHTML = parts.join("");
    if (shown) {
      shown.innerHTML = parts.length < order.length
        ? "Showing the first " + parts.length + " of " + order.length + ' functions in this order. <button type="button" id="ax-show-more">Show ' + Math.min(ROWS_SHOWN, order.length - parts.length) + " more</button>"
        : "";
    }
  }

  function histogram(i) {
    var plot = document.getElementById("ax-histogram-plot");
    var title = document.getElementById("ax-histogram-name");
    if (i < 0) { plot.textContent = "No function was timed."; return; }
    var bins = data.histograms[i] || [];
    title.textContent = "of " + rows[i][indexOf("name")] + " (" + cell(rows[i][indexOf("calls")], "count") + " calls)";
    if (!bins.length) { plot.textContent = "No interval recorded."; return; }
    var w = 720, h = 180, left = 44, bottom = 24, top = 16;
    var lo = Math.max(1, bins[0][0]), hi = Math.max(lo * 1.01, bins[bins.length - 1][1]);
    var x = function (v) { return left + (w - left - 8) * (Math.log(Math.max(v, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)); };
    var most = 0;
    bins.forEach(function (b) { most = Math.max(most, b[2]); });
    var svg = '<svg viewBox="0 0 ' + w + " " + h + '" role="img" aria-label="latency histogram">';
    bins.forEach(function (b) {
      var x0 = x(b[0]), x1 = Math.max(x0 + 1, x(b[1]) - 1), bh = (h - bottom - top) * b[2] / most;
      svg += '<rect class="ax-bin" x="' + x0.toFixed(1) + '" y="' + (h - bottom - bh).toFixed(1) + '" width="' +
        (x1 - x0).toFixed(1) + '" height="' + bh.toFixed(1) + '"><title>' + escapeHtml(duration(b[0]) + " – " +
        duration(b[1]) + ": " + b[2] + " calls") + "</title></rect>";
    });
    svg += '<line class="ax-axis" x1="' + left + '" x2="' + (w - 8) + '" y1="' + (h - bottom) + '" y2="' + (h - bottom) + '"/>';
    svg += '<text x="' + left + '" y="' + (h - 6) + '">' + escapeHtml(duration(lo)) + '</text>';
    svg += '<text x="' + (w - 8) + '" y="' + (h - 6) + '" text-anchor="end">' + escapeHtml(duration(hi)) + "</text>";
    svg += '<text x="4" y="' + (top + 4) + '">' + most + "</text>";
    ["p50_ns", "p95_ns", "p99_ns"].forEach(function (key, n) {
      var c = indexOf(key);
      if (c < 0 || rows[i][c] === null) return;
      var px = x(rows[i][c]).toFixed(1);
      svg += '<line class="ax-mark" x1="' + px + '" x2="' + px + '" y1="' + top + '" y2="' + (h - bottom) + '"/>' +
        '<text x="' + (Number(px) + 3) + '" y="' + (top - 4 + 11 * n) + '">' + key.slice(0, 3) + "</text>";
    });
    plot.innerHTML = svg + "</svg>";
  }

  table.tHead.addEventListener("click", function (e) {
    var th = e.target.closest("th");
    if (!th) return;
    var c = Number(th.getAttribute("data-column"));
    if (c === sortColumn) descending = !descending;
    else { sortColumn = c; descending = columns[c].kind !== "text"; }
    header();
    body();
  });
  table.tBodies[0].addEventListener("click", function (e) {
    var tr = e.target.closest("tr");
    if (!tr) return;
    var previous = table.tBodies[0].querySelector("tr.ax-selected");
    if (previous) previous.classList.remove("ax-selected");
    tr.classList.add("ax-selected");
    selected = Number(tr.getAttribute("data-row"));
    histogram(selected);
  });
  if (filterBox) filterBox.addEventListener("input", body);
  if (shown) {
    shown.addEventListener("click", function (e) {
      if (e.target.id === "ax-show-more") { limit += ROWS_SHOWN; body(); }
    });
  }

  // inferno's own search asks with prompt(), which webviews do not allow.
  var search = document.getElementById("ax-flame-search");
  if (search) {
    search.addEventListener("change", function () {
      var term = search.value;
      if (typeof window.search !== "function") return;
      if (term) {
        try { new RegExp(term); } catch (err) { document.getElementById("ax-flame-matched").textContent = "not a regular expression"; return; }
        window.search(term);
        document.getElementById("ax-flame-matched").textContent = "";
      } else if (typeof window.reset_search === "function") {
        window.reset_search();
      }
    });
  }

  header();
  if (rows.length) {
    // The hottest function first; its histogram is shown from the start.
    sortOrder();
    selected = order[0];
  }
  body();
  histogram(selected);
  document.documentElement.setAttribute("data-rendered-ms", performance.now().toFixed(1));
})();

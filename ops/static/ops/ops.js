// Operator dashboard: charts from the page's own JSON (json_script) and live countdowns.
// Everything here is an enhancement: the same numbers are in the page's tables.
(function () {
  "use strict";

  var COLORS = ["#417690", "#e07b39", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
                "#ff9da7", "#9c755f", "#bab0ac", "#4e79a7", "#f28e2b"];

  function color(i) { return COLORS[i % COLORS.length]; }

  function datasets(series, opts) {
    return Object.keys(series).map(function (name, i) {
      var ds = { label: name, data: series[name], backgroundColor: color(i), borderColor: color(i) };
      if (opts && opts.stackBy) { ds.stack = opts.stackBy(name); }
      if (opts && opts.line) { ds.fill = false; ds.tension = 0.2; ds.pointRadius = 2; }
      return ds;
    });
  }

  // Builders, so a page builds only the charts it has canvases for.
  function chartConfigs(d) {
    var stacked = { x: { stacked: true }, y: { stacked: true, beginAtZero: true } };
    return {
      sessions: function () { return { type: "bar", data: { labels: d.labels, datasets: datasets(d.sessions, {
        stackBy: function (name) { return name === "started" ? "started" : "ended"; } }) },
        options: { scales: stacked } }; },
      session_minutes: function () { return { type: "line", data: { labels: d.labels, datasets: datasets(d.session_minutes, { line: true }) },
        options: { scales: { y: { beginAtZero: true } } } }; },
      credits: function () { return { type: "bar", data: { labels: d.labels, datasets: datasets(d.credits) }, options: { scales: stacked } }; },
      actions: function () { return { type: "bar", data: { labels: d.action_types, datasets: datasets(d.actions_by_status) },
        options: { scales: stacked } }; },
      latency: function () { return { type: "line", data: { labels: d.labels, datasets: datasets(d.latency_ms, { line: true }) },
        options: { scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } } } }; },
      top_accounts: function () { return { type: "bar", data: {
        labels: d.top_accounts.map(function (a) { return a.name; }),
        datasets: [{ label: "credits", data: d.top_accounts.map(function (a) { return a.spent; }),
                     backgroundColor: color(0) }] },
        options: { indexAxis: "y", scales: { x: { beginAtZero: true } } } }; },
      balance: function () { return { type: "line", data: { labels: d.labels, datasets: datasets({ balance: d.balance }, { line: true }) },
        options: { scales: { y: { beginAtZero: true } } } }; }
    };
  }

  function drawCharts(dataId) {
    var node = document.getElementById(dataId);
    if (!node || typeof window.Chart === "undefined") { return; }
    var configs = chartConfigs(JSON.parse(node.textContent));
    window.opsCharts = window.opsCharts || {};
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var key = canvas.getAttribute("data-chart");
      if (!configs[key]) { return; }
      var config = configs[key]();
      config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { position: "bottom" } } }, config.options);
      window.opsCharts[key] = new window.Chart(canvas, config);
      // The chart shows the numbers now; their table stays one click away.
      var details = canvas.closest(".ops-chart").querySelector("details");
      if (details) { details.open = false; }
    });
  }

  function format(seconds) {
    var sign = seconds < 0 ? "-" : "";
    var s = Math.abs(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (h) { return sign + h + "h " + pad(m) + "m " + pad(r) + "s"; }
    if (m) { return sign + m + "m " + pad(r) + "s"; }
    return sign + r + "s";
  }

  function tick(started) {
    var elapsed = Math.floor((Date.now() - started) / 1000);
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = parseInt(el.getAttribute("data-countdown"), 10) - elapsed;
      el.textContent = format(left);
      el.classList.toggle("ops-overdue", left <= 0);
    });
    document.querySelectorAll("[data-countup]").forEach(function (el) {
      el.textContent = format(parseInt(el.getAttribute("data-countup"), 10) + elapsed);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts("ops-charts-data");
    drawCharts("ops-account-data");
    var started = Date.now();
    window.setInterval(function () { tick(started); }, 1000);
    // Off unless the operator turns it on (remembered in this browser).
    var auto = document.getElementById("ops-autorefresh");
    if (auto) {
      auto.checked = window.localStorage.getItem("opsAutorefresh") === "1";
      auto.addEventListener("change", function () {
        window.localStorage.setItem("opsAutorefresh", auto.checked ? "1" : "0");
      });
      window.setInterval(function () { if (auto.checked) { window.location.reload(); } }, 15000);
    }
  });
})();

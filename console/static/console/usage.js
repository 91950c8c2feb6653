// The Usage page's charts, drawn from the page's own copy of /v1/usage's answer (#usage-data,
// a JSON data block, not a script). The same numbers are in the tables next to each chart.
"use strict";

(function () {
  var COLORS = ["#1e40af", "#e07b39", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
                "#ff9da7", "#9c755f", "#bab0ac", "#4e79a7", "#f28e2b"];

  function configs(d) {
    var kinds = Object.keys(d.credits_by_kind);
    var types = Object.keys(d.credits_by_action_type);
    return {
      buckets: {
        type: "bar",
        data: {
          labels: d.buckets.map(function (b) { return b.start; }),
          datasets: [
            { label: "credits", data: d.buckets.map(function (b) { return b.credits; }),
              backgroundColor: COLORS[0], yAxisID: "y" },
            { label: "session minutes", type: "line", data: d.buckets.map(function (b) { return b.session_minutes; }),
              borderColor: COLORS[1], backgroundColor: COLORS[1], yAxisID: "y1", tension: 0.2, pointRadius: 2 }
          ]
        },
        options: { scales: { y: { beginAtZero: true, position: "left" },
                             y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } }
      },
      kinds: {
        type: "doughnut",
        data: { labels: kinds, datasets: [{ label: "credits", data: kinds.map(function (k) { return d.credits_by_kind[k]; }),
                                            backgroundColor: kinds.map(function (_, i) { return COLORS[i % COLORS.length]; }) }] }
      },
      actions: {
        type: "bar",
        data: { labels: types, datasets: [{ label: "credits", data: types.map(function (t) { return d.credits_by_action_type[t]; }),
                                            backgroundColor: COLORS[2] }] },
        options: { indexAxis: "y", scales: { x: { beginAtZero: true } } }
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("usage-data");
    if (!node || typeof window.Chart === "undefined") { return; }
    var all = configs(JSON.parse(node.textContent));
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    if (dark) { window.Chart.defaults.color = "#e5e7eb"; window.Chart.defaults.borderColor = "#374151"; }
    window.consoleCharts = {};
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var key = canvas.getAttribute("data-chart");
      var config = all[key];
      if (!config) { return; }
      config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
                                       plugins: { legend: { position: "bottom" } } }, config.options || {});
      window.consoleCharts[key] = new window.Chart(canvas, config);
    });
  });
})();

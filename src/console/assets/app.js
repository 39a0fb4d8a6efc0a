// cronhook console: local and relative times, the schedule preview, confirmations, and
// live updates (the page's [data-live] regions are re-read when the daemon signals a change).
"use strict";
(function () {
  function rel(ms) {
    var s = Math.round(ms / 1000), a = Math.abs(s), t;
    if (a === 0) return "now";
    if (a < 60) t = a + " s"; else if (a < 3600) t = Math.round(a / 60) + " min";
    else if (a < 86400) t = Math.round(a / 3600) + " h"; else t = Math.round(a / 86400) + " d";
    return s >= 0 ? "in " + t : t + " ago";
  }
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      var text = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
      if (el.hasAttribute("data-rel")) text = rel(d - Date.now()) + " (" + text + ")";
      el.textContent = text;
      el.title = el.getAttribute("datetime");
    });
  }
  localTimes(document);

  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // The schedule preview: words and next instants from the daemon's own parser.
  var schedule = document.getElementById("schedule"), zone = document.getElementById("timezone");
  var preview = document.getElementById("schedule-preview");
  if (schedule && preview) {
    var timer = null, seq = 0;
    var update = function () {
      var n = ++seq;
      var q = "schedule=" + encodeURIComponent(schedule.value) + "&timezone=" + encodeURIComponent(zone ? zone.value : "");
      ["dst_repeat", "dst_gap"].forEach(function (id) {
        var choice = document.getElementById(id);
        if (choice) q += "&" + id + "=" + encodeURIComponent(choice.value);
      });
      fetch(preview.getAttribute("data-src") + "?" + q, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          if (n !== seq) return;
          preview.textContent = "";
          if (p.detail) {
            var e = document.createElement("p"); e.className = "error"; e.textContent = p.detail;
            preview.appendChild(e); return;
          }
          var w = document.createElement("p"); w.innerHTML = "<strong></strong>";
          w.firstChild.textContent = p.words; preview.appendChild(w);
          var ol = document.createElement("ol"); ol.setAttribute("aria-label", "Next 5 instants");
          p.next.forEach(function (i) {
            var li = document.createElement("li");
            li.textContent = i.zoned + " (" + i.utc + ")"; ol.appendChild(li);
          });
          preview.appendChild(ol);
        })
        .catch(function () {});
    };
    var later = function () { clearTimeout(timer); timer = setTimeout(update, 200); };
    schedule.addEventListener("input", later);
    if (zone) zone.addEventListener("input", later);
    ["dst_repeat", "dst_gap"].forEach(function (id) {
      var choice = document.getElementById(id);
      if (choice) choice.addEventListener("change", later);
    });
    if (schedule.value) update();
  }

  // Live updates: one stream per page; on a change the live regions are fetched again.
  if (document.querySelector("[data-live]") && window.EventSource) {
    var busy = false, again = false;
    var refresh = function () {
      if (busy) { again = true; return; }
      busy = true;
      fetch(location.href, { credentials: "same-origin", headers: { "x-console-live": "1" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          document.querySelectorAll("[data-live]").forEach(function (el) {
            var fresh = doc.getElementById(el.id);
            if (fresh && !el.contains(document.activeElement)) {
              el.innerHTML = fresh.innerHTML; localTimes(el);
            }
          });
        })
        .catch(function () {})
        .then(function () { busy = false; if (again) { again = false; refresh(); } });
    };
    var es = new EventSource(document.body.getAttribute("data-stream"));
    es.addEventListener("change", refresh);
  }
})();

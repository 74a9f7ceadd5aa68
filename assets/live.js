// Live dashboard: when the server says something changed, fetch the cards and swap them.
// The page works without this script (reload by hand); no framework, no CDN.
(function () {
  var cards = document.getElementById("live-cards");
  var dot = document.getElementById("live-dot");
  if (!cards || !window.EventSource) return;
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch("/dashboard/cards", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { cards.innerHTML = html; })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  function connect() {
    var es = new EventSource("/events");
    es.addEventListener("change", refresh);
    es.onopen = function () { if (dot) dot.classList.add("on"); };
    es.onerror = function () { if (dot) dot.classList.remove("on"); };
  }
  connect();
  // Offline status changes with time, not with events: refresh now and then anyway.
  setInterval(refresh, 30000);
})();

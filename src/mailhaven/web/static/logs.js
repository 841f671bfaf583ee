// The live tail of /app/logs: new events arrive as Server-Sent Events of table rows
// (rendered and escaped by the server) and are put at the top. Without JavaScript the
// page still works: reload it.
(function () {
  "use strict";
  var rows = document.getElementById("log-rows");
  if (!rows || !rows.dataset.stream || !window.EventSource) { return; }
  var status = document.getElementById("live-status");
  var source = new EventSource(rows.dataset.stream);
  source.addEventListener("open", function () {
    if (status) { status.textContent = "Live: new events appear at the top."; }
    document.body.classList.add("live");
  });
  source.addEventListener("rows", function (message) {
    var empty = document.querySelector(".empty-log");
    if (empty) { empty.remove(); }
    rows.insertAdjacentHTML("afterbegin", message.data);
  });
  source.addEventListener("error", function () {
    if (status) { status.textContent = "Reconnecting to the live tail…"; }
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();

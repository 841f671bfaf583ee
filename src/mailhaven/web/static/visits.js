// Counts one visit of this page, first-party, with the visitor's consent only: the page
// includes this file when the visitor chose "Accept analytics". It sends the path and
// nothing else; the server counts the route, keeps no cookie and no person.
(function () {
  if (navigator.sendBeacon) {
    navigator.sendBeacon("/visits", location.pathname);
  }
})();

/* The admin page works without this file; it only adds comfort:
   - forms with data-confirm ask before they submit (deleting a recording);
   - the dashboard reloads when a device starts or stops waiting to pair. */
"use strict";

document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

(function pollPending() {
  var box = document.querySelector("[data-poll-pending]");
  if (!box || !window.fetch) {
    return;
  }
  var shown = box.getAttribute("data-codes");
  var busy = function () {
    var active = document.activeElement;
    return active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.value;
  };
  window.setInterval(function () {
    fetch(box.getAttribute("data-poll-pending"), {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.codes.join(" ") !== shown && !busy()) {
          window.location.reload();
        }
      })
      .catch(function () { /* the server restarted or the network dropped: try again later */ });
  }, 5000);
})();

/* Veil wellbeing: keeps the break notice current from the console socket, opens the break screen when a break
 * begins, and shows "welcome back" there when the server ends it. It keeps no clock of its own: the server decides
 * when a break is due, starts and ends (and refuses claims meanwhile); this page only follows what it is told.
 *
 * Messages (see wellbeing/consumers.py): break.state (on connect), break.due, break.started, break.ended.
 */
(function () {
  "use strict";

  function start() {
    var banner = document.getElementById("break-banner");
    var hub = window.veilConsole;
    if (!banner || !hub) {
      return;
    }
    var text = document.getElementById("break-banner-text");
    var breakUrl = banner.getAttribute("data-break-url");
    var stateUrl = banner.getAttribute("data-state-url");
    var onBreakPage = banner.hasAttribute("data-on-break-page");

    function show(message) {
      var phase = message.phase || "";
      banner.setAttribute("data-phase", phase);
      text.textContent = message.message || "";
      banner.querySelectorAll("[data-when-phase]").forEach(function (el) {
        el.hidden = el.getAttribute("data-when-phase").split(" ").indexOf(phase) === -1;
      });
      banner.hidden = onBreakPage || !message.message;
    }

    // On the break screen: once the server says the break is over, show the welcome-back part instead.
    function restOver(message) {
      var resting = document.getElementById("rest-now");
      var over = document.getElementById("rest-over");
      if (!resting || !over || message.phase === "on_break") {
        return;
      }
      resting.hidden = true;
      over.hidden = false;
      var heading = over.querySelector("h2");
      if (heading) {
        heading.setAttribute("tabindex", "-1");
        heading.focus();
      }
    }

    function breakBegan(message) {
      show(message);
      if (!onBreakPage) {
        window.location.assign(breakUrl);
      } else if (!document.getElementById("rest-now")) {
        window.location.reload(); // started from another tab: show the resting screen here too
      }
    }

    hub.onEvent("break.state", function (message) {
      show(message);
      if (message.phase === "on_break" && banner.hasAttribute("data-console-page")) {
        window.location.assign(breakUrl); // a console page during a break: nothing is shown, rest instead
      }
    });
    hub.onEvent("break.due", show);
    hub.onEvent("break.started", breakBegan);
    hub.onEvent("break.ended", function (message) {
      show(message);
      restOver(message);
    });

    if (onBreakPage && stateUrl) {
      // After a reconnect, ask once: the end of the break may have been announced while the socket was down.
      hub.onEvent("socket.open", function () {
        fetch(stateUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
          .then(function (response) {
            return response.ok ? response.json() : null;
          })
          .then(function (message) {
            if (message) {
              restOver(message);
            }
          })
          .catch(function () {
            /* the next push will tell */
          });
      });
    }

    if (banner.hasAttribute("data-redirect")) {
      // The queue list during a break: the break screen is where to be.
      window.location.assign(breakUrl);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

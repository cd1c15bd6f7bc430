/* Veil: tells a reviewer, calmly, when their team lead moved them to a lighter queue or ended their shift early
 * (pushed over the console socket by oversight.team_services). Breaks a lead starts arrive as the usual
 * "break.started" and are handled by wellbeing.js like any other break.
 */
(function () {
  "use strict";

  function start() {
    var hub = window.veilConsole;
    if (!hub) {
      return;
    }
    ["queue.moved", "shift.ended_by_lead"].forEach(function (type) {
      hub.onEvent(type, function (message) {
        if (message && message.message) {
          hub.say(message.message);
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

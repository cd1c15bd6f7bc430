/* Veil live team view: follows /ws/lead/<team>/ and updates each person's row in place. It only shows what the
 * server sends (state, exposure share, time since the last break, queue, which actions make sense); every action is
 * a plain form post. Vanilla JS, no inline code (the Content-Security-Policy forbids it).
 */
(function () {
  "use strict";

  var gettext = window.gettext || function (text) { return text; };

  var FIELDS = ["state_text", "exposure_text", "since_break_text", "queue"];
  var ACTIONS = ["can_send_on_break", "can_move", "can_end_shift"];

  function start() {
    var root = document.getElementById("team-live");
    if (!root) {
      return;
    }
    var path = root.getAttribute("data-socket-path");
    var status = root.querySelector("[data-live-status]");
    var changed = root.querySelector("[data-team-changed]");
    var attempts = 0;
    var socket = null;
    var leaving = false;

    function setText(el, text) {
      if (el && el.textContent !== text) {
        el.textContent = text;
      }
    }

    function applyRow(tr, data) {
      tr.setAttribute("data-state", data.state);
      FIELDS.forEach(function (name) {
        setText(tr.querySelector('[data-field="' + name + '"]'), data[name] || "");
      });
      var state = tr.querySelector('[data-field="state_text"]');
      if (state) {
        state.className = "state state--" + data.state;
      }
      var gauge = tr.querySelector('[data-field="exposure"]');
      if (gauge) {
        gauge.hidden = data.exposure_percent === null;
        gauge.className = "team-gauge gauge--" + data.exposure_level;
        var fill = gauge.querySelector(".gauge__fill");
        if (fill) {
          fill.className = "gauge__fill gauge__fill--" + data.exposure_step;
        }
      }
      ACTIONS.forEach(function (name) {
        var el = tr.querySelector('[data-when="' + name + '"]');
        if (el) {
          el.hidden = !data[name];
        }
      });
    }

    function apply(message) {
      var seen = {};
      (message.reviewers || []).forEach(function (data) {
        var tr = root.querySelector('tr[data-reviewer="' + data.reviewer_id + '"]');
        if (!tr) {
          changed.hidden = false;
          return;
        }
        seen[data.reviewer_id] = true;
        applyRow(tr, data);
      });
      root.querySelectorAll("tr[data-reviewer]").forEach(function (tr) {
        if (!seen[tr.getAttribute("data-reviewer")]) {
          changed.hidden = false;
        }
      });
      setText(root.querySelector('[data-summary="on_shift"]'), String(message.on_shift));
      setText(root.querySelector('[data-summary="generated_at_text"]'), message.generated_at_text || "");
    }

    function connect() {
      if (leaving) {
        return;
      }
      var ws = new WebSocket((location.protocol === "https:" ? "wss" : "ws") + "://" + location.host + path);
      socket = ws;
      ws.addEventListener("open", function () {
        attempts = 0;
        root.setAttribute("data-state", "live");
        setText(status, "· live");
      });
      ws.addEventListener("message", function (event) {
        var message;
        try {
          message = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        if (message && message.type === "team.state") {
          apply(message);
        }
      });
      ws.addEventListener("close", function (event) {
        if (socket === ws) {
          socket = null;
        }
        if (leaving) {
          return;
        }
        root.setAttribute("data-state", "paused");
        if (event.code === 4403 || event.code === 4404) {
          setText(status, "· " + gettext("live updates are not available; reload the page to see the current state"));
          return;
        }
        setText(status, "· " + gettext("live updates paused, reconnecting…"));
        var base = Math.min(30000, 1000 * Math.pow(2, attempts));
        attempts += 1;
        window.setTimeout(connect, base / 2 + Math.random() * (base / 2));
      });
    }

    window.addEventListener("pagehide", function () {
      leaving = true;
      if (socket) {
        socket.close();
      }
    });
    connect();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
